#!/usr/bin/env bash
# tests/e2e/tokenize_cli.sh: `deltaserve tokenize` / `detokenize` on the bundled
# model's tokenizer (a copy of OLMo Hybrid's tokenizer-think-sft.json): known
# ids, a round trip through special tokens and non-ASCII text, error exits.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${DS_BIN:-build/release/deltaserve}
M=models/olmo-hybrid-tiny
fail() { echo "FAIL: $*"; exit 1; }
got=$(printf '1234567' | "$BIN" tokenize --model "$M")
[ "$got" = "[4513,10961,22]" ] || fail "tokenize 1234567 -> $got"
text=$'Hello <|im_start|>user\n中文 😀 e\u0301  done<|endoftext|>'
ids=$(printf '%s' "$text" | "$BIN" tokenize --model "$M")
back=$(printf '%s' "$ids" | "$BIN" detokenize --model "$M"; echo x)
[ "${back%x}" = "$text" ] || fail "round trip: '$text' -> $ids -> '${back%x}'"
skip=$(printf '%s' "$ids" | "$BIN" detokenize --model "$M" --skip-special-tokens)
[ "$skip" = $'Hello user\n中文 😀 e\u0301  done' ] || fail "skip special -> '$skip'"
if printf '[1, 99999999]' | "$BIN" detokenize --model "$M" 2>/dev/null; then fail "unknown id accepted"; fi
if printf 'x' | "$BIN" tokenize --model /nonexistent 2>/dev/null; then fail "missing model accepted"; fi
if printf 'x' | "$BIN" tokenize 2>/dev/null; then fail "missing --model accepted"; fi
echo "tokenize_cli: ok"
