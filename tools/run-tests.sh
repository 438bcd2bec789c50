#!/usr/bin/env bash
# tools/run-tests.sh BUILD_DIR: run every CPU test: the Check unit runner, then
# each tests/e2e/*.sh (real server over loopback; lib*.sh are sourced helpers). Prints one closing line
# "N passed, N failed" counting test programs.
set -uo pipefail
B=${1:-build/release}
cd "$(dirname "$0")/.."
pass=0; fail=0
echo "== unit tests ($B/check_unit)"
if CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-900} "$B/check_unit"; then pass=$((pass+1)); else fail=$((fail+1)); fi
for t in tests/e2e/*.sh; do
    [ -e "$t" ] || continue
    case "$(basename "$t")" in lib*.sh) continue ;; esac   # sourced helpers, not tests
    echo "== e2e $t"
    if DS_BIN="$B/deltaserve" timeout 900 bash "$t"; then pass=$((pass+1)); else echo "FAILED: $t"; fail=$((fail+1)); fi
done
echo "summary: $pass passed, $fail failed"
[ "$fail" = 0 ]
