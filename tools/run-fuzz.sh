#!/usr/bin/env bash
# tools/run-fuzz.sh [BUILD_DIR] [SECONDS]: run every libFuzzer target built by
# `make fuzz` (BUILD_DIR/fuzz_<name>) for a bounded time, starting from the
# committed corpus tests/fuzz/corpus_<name> (plus tests/fuzz/fuzz_<name>.dict
# when present). New inputs go to a scratch dir, never into the repo. A crash
# leaves its reproducer in BUILD_DIR/fuzz-artifacts/<name>/ and fails the run;
# commit reproducers under tests/fuzz/crashes_<name>/ once fixed. Every
# committed reproducer is replayed first.
set -uo pipefail
B=${1:-build/fuzz}
SECS=${2:-${FUZZ_SECONDS:-20}}
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pass=0; fail=0
shopt -s nullglob
bins=("$B"/fuzz_*)
if [ ${#bins[@]} = 0 ]; then echo "no fuzz targets in $B (run: make fuzz)"; exit 1; fi
for bin in "${bins[@]}"; do
    [ -x "$bin" ] || continue
    name=${bin##*/fuzz_}
    corpus=tests/fuzz/corpus_$name
    work=$(mktemp -d)
    art=$B/fuzz-artifacts/$name
    mkdir -p "$art" "$corpus"
    args=(-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536
          -print_final_stats=1 -artifact_prefix="$art/")
    [ -f "tests/fuzz/fuzz_$name.dict" ] && args+=(-dict="tests/fuzz/fuzz_$name.dict")
    ok=1
    crashes=(tests/fuzz/crashes_"$name"/*)
    if [ ${#crashes[@]} -gt 0 ]; then
        echo "== $name: replaying ${#crashes[@]} committed reproducer(s)"
        "$bin" -runs=0 "${crashes[@]}" >"$work.log" 2>&1 || { ok=0; tail -40 "$work.log"; }
    fi
    if [ $ok = 1 ]; then
        echo "== $name: fuzzing ${SECS}s from $corpus"
        if ! "$bin" "${args[@]}" "$work" "$corpus" >"$work.log" 2>&1; then
            ok=0; tail -60 "$work.log"; echo "reproducer(s): $(ls "$art")"
        else
            grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$work.log" | tail -2
        fi
    fi
    rm -rf "$work" "$work.log"
    if [ $ok = 1 ]; then pass=$((pass+1)); else echo "FAILED: fuzz_$name"; fail=$((fail+1)); fi
done
echo "fuzz summary: $pass passed, $fail failed"
[ "$fail" = 0 ]
