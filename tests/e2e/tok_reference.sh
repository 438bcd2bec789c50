#!/usr/bin/env bash
# tests/e2e/tok_reference.sh: the committed tokenizer fixture
# (tests/fixtures/tokenizer/expected.json, checked by the tokenizer unit
# suite) still equals what the installed reference, @huggingface/tokenizers in
# tools/node_modules (pinned by tools/package-lock.json), produces today.
# Regenerating takes a few seconds; a difference means the reference moved:
# rerun `node tools/tok-expected.mjs` and make the unit suite pass again.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v node >/dev/null 2>&1 || [ ! -d tools/node_modules/@huggingface/tokenizers ]; then
    echo "tok_reference: SKIP (node or tools/node_modules missing; run tools/setup.sh)"
    exit 0
fi
node tools/tok-expected.mjs --check
