#!/usr/bin/env bash
# tools/bench-tokenizer.sh [TOKENIZER_JSON] [PASSES]: tokenizer benchmark,
# deltaserve's C encoder next to npm tiktoken and @huggingface/tokenizers in
# one run, on the same English text: every license text in
# /usr/share/common-licenses (present on Debian; ~240 KB of prose).
# Every implementation encodes on one thread (one core); not pinned, since a
# fixed core may be busy with other work on a shared machine. Results feed the
# "## Tokenizer" section of docs/benchmarks.md. Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
TOK=${1:-../shared/reference/olmo-hybrid/tokenizer-think-sft.json}
[ -f "$TOK" ] || TOK=models/olmo-hybrid-tiny/tokenizer.json
PASSES=${2:-10}
B=${BUILD:-build/bench-tok}
TEXT=$B/bench-english.txt
mkdir -p "$B"
for f in /usr/share/common-licenses/*; do [ -L "$f" ] || cat "$f"; done > "$TEXT"
OBJS=$(for f in engine/tok_*.c; do echo "$B/$f.o"; done)
# shellcheck disable=SC2086
make --no-print-directory BUILD="$B" $OBJS >/dev/null
# shellcheck disable=SC2046
# shellcheck disable=SC2086
cc -std=c11 -O3 -march=x86-64-v3 -D_GNU_SOURCE -I. tools/bench-tokenizer.c $OBJS \
    -o "$B/bench-tokenizer" $(pkg-config --libs libcjson libpcre2-8) -lpthread
echo "tokenizer: $TOK"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "text: $(wc -c < "$TEXT") bytes ($TEXT), $PASSES passes; cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$B/bench-tokenizer" "$TOK" "$TEXT" "$PASSES"
node tools/bench-tokenizer.mjs "$TOK" "$TEXT" "$PASSES"
