#!/usr/bin/env bash
# tests/e2e/sanitizers.sh: the CPU unit suite under ASan+LSan and UBSan
# (tools/run-sanitizers.sh builds build/asan and build/ubsan with CUDA=0).
# Ignores DS_BIN: it builds its own sanitized runners. Fails on any test
# failure or sanitizer report.
set -uo pipefail
cd "$(dirname "$0")/../.."
exec bash tools/run-sanitizers.sh
