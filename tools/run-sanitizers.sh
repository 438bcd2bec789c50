#!/usr/bin/env bash
# tools/run-sanitizers.sh: build the CPU-only library and the Check unit runner
# under AddressSanitizer (+LeakSanitizer) and UndefinedBehaviorSanitizer and run
# the whole unit suite under each. Fails on any failing test, any sanitizer
# report (ASan, LSan, UBSan "runtime error:") or a build failure.
#
#   tools/run-sanitizers.sh                 both modes, build/asan + build/ubsan
#   SAN_MODES=asan tools/run-sanitizers.sh  one mode
#   SAN_BUILD_PREFIX=build/me- ...          build dirs build/me-asan, build/me-ubsan
#   SAN_JOBS=N                              make -j (default: nproc)
#   CK_RUN_SUITE=name                       one suite, as with the plain runner
#
# Tests can read DS_TEST_SANITIZER (=asan|ubsan, set here) to shrink long
# cases (fewer iterations, shorter sequences) so the sanitized suite stays
# within CI time; they must not skip suites on it.
# Run by tests/e2e/sanitizers.sh in `make test`.
set -uo pipefail
cd "$(dirname "$0")/.."
unset MAKEFLAGS MFLAGS MAKELEVEL   # a nested make must not inherit the caller's BUILD/MODE
PREFIX=${SAN_BUILD_PREFIX:-build/}
MODES=${SAN_MODES:-asan ubsan}
JOBS=${SAN_JOBS:-$(nproc)}
fail=0
for mode in $MODES; do
    b=${PREFIX}${mode}
    t0=$(date +%s)
    echo "== sanitizer $mode: building $b/check_unit (CUDA=0)"
    if ! make --no-print-directory CUDA=0 MODE="$mode" BUILD="$b" -j"$JOBS" "$b/check_unit" >"$b.build.log" 2>&1; then
        tail -40 "$b.build.log"; echo "FAILED: $mode build"; fail=1; continue
    fi
    t1=$(date +%s)
    log=$(mktemp)
    echo "== sanitizer $mode: running $b/check_unit (built in $((t1 - t0))s)"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:protect_shadow_gap=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    DS_TEST_SANITIZER=$mode CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-900} \
        "$b/check_unit" >"$log" 2>&1
    rc=$?
    t2=$(date +%s)
    grep -E "^[0-9]+%: Checks" "$log" | tail -1
    reports=$(grep -cE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)" "$log")
    if [ "$rc" != 0 ] || [ "$reports" != 0 ]; then
        grep -E -B2 -A30 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$log" | head -120
        grep -E ":[EF]:" "$log" | head -40
        echo "FAILED: $mode (exit $rc, $reports sanitizer report line(s))"
        fail=1
    else
        echo "sanitizer $mode: clean (tests ran in $((t2 - t1))s)"
    fi
    rm -f "$log"
done
[ "$fail" = 0 ]
