#!/usr/bin/env bash
# tests/e2e/sanitizers.sh: the CPU unit suite under ASan+LSan and UBSan
# (tools/run-sanitizers.sh builds build/asan and build/ubsan with CUDA=0).
# Then the ASan server binary through tests/e2e/load_fault.sh (one round,
# clean SIGTERM exit, LeakSanitizer at exit). Ignores DS_BIN: it builds its
# own sanitized binaries. Fails on any test failure or sanitizer report.
set -uo pipefail
cd "$(dirname "$0")/../.."
bash tools/run-sanitizers.sh || exit 1
# the real server under ASan+LSan through one round of the load/fault mix,
# then SIGTERM: a leak, overflow or use-after-free on any request path
# (disconnects, errors, 413s, timeouts) fails here
unset MAKEFLAGS MFLAGS MAKELEVEL
b=${SAN_BUILD_PREFIX:-build/}asan
make --no-print-directory CUDA=0 MODE=asan BUILD="$b" -j"$(nproc)" "$b/deltaserve" >"$b.server.log" 2>&1 || { tail -20 "$b.server.log"; exit 1; }
DS_BIN=$b/deltaserve LOAD_ROUNDS=1 LOAD_CLIENTS=200 LOAD_CONC=100 RSS_BOUND_MB=400 bash tests/e2e/load_fault.sh
