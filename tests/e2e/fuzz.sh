#!/usr/bin/env bash
# tests/e2e/fuzz.sh: every libFuzzer target in tests/fuzz (request parsing,
# chat template, tokenizers, config.json, safetensors headers) built with
# clang under ASan+UBSan (`make fuzz`, build/fuzz) and run for a bounded
# FUZZ_SECONDS each (default 10) from its committed corpus, after replaying
# every committed crash reproducer. Fails on any crash, leak, sanitizer report
# or timeout (tools/run-fuzz.sh). Ignores DS_BIN.
set -uo pipefail
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL   # a nested make must not inherit the caller's BUILD/MODE
command -v clang >/dev/null || { echo "fuzz: clang not found (apt-get install clang)"; exit 1; }
exec make --no-print-directory -j"$(nproc)" fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-10}" FUZZ_BUILD="${FUZZ_BUILD:-build/fuzz}"
