#!/usr/bin/env bash
# tests/e2e/load_fault.sh: load and fault test (issue 8 item 5). Starts the
# real CPU server on a free loopback port with small limits (body 64 KiB,
# model length 1024, 64 running + 128 queued sequences, 5 s client timeout,
# 512 connections) and runs tests/e2e/load_fault.mjs: hundreds of concurrent
# clients (fetch, node:http, the openai npm client; streaming and not) with
# random disconnects, malformed requests, slow readers, oversized bodies and
# stalled uploads. Fails if any accepted request does not end in a complete
# response or a clean OpenAI error, the server dies, VmRSS does not return
# near its warm level, or /metrics shows running/waiting requests, KV blocks
# or state slots left over. Bounded: LOAD_CLIENTS (300) x LOAD_ROUNDS (2)
# requests plus a warm-up, and a hard 300 s timeout. Ends with SIGTERM: the
# server must exit 0 with no sanitizer report in its log (DS_BIN may be an
# ASan build: tests/e2e/sanitizers.sh runs it so).
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
if [ ! -d tools/node_modules/openai ]; then echo "openai npm package missing (run tools/setup.sh)"; exit 1; fi
MAX_BODY=65536 MAX_LEN=1024 TIMEOUT_S=5
# a sanitized DS_BIN (tests/e2e/sanitizers.sh) reports leaks at the clean exit below
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:protect_shadow_gap=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
start_server L --max-body-size $MAX_BODY --max-model-len $MAX_LEN --max-num-seqs 64 --max-queued-requests 128 \
    --timeout $TIMEOUT_S --max-connections 512 --kv-cache-memory 256MiB --disable-log-requests
BASE="http://127.0.0.1:$L_PORT" PID=$L_PID MODEL="$MODEL" MAX_BODY=$MAX_BODY MAX_LEN=$MAX_LEN TIMEOUT_S=$TIMEOUT_S \
    timeout 300 node tests/e2e/load_fault.mjs
rc=$?
check "load_fault.mjs passed (exit $rc)" test "$rc" = 0
check "server still running after the load" kill -0 "$L_PID"
check "/health 200 after the load" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$L_PORT/health")" = 200
# graceful shutdown after the storm: SIGTERM drains and exits 0 (and lets a
# sanitized binary run its leak check)
kill -TERM "$L_PID"
for _ in $(seq 1 200); do kill -0 "$L_PID" 2>/dev/null || break; sleep 0.1; done
wait "$L_PID"; src=$?
check "SIGTERM after the load: clean exit (status $src)" test "$src" = 0
if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Segmentation|Assertion" "$L_LOG"; then
    check "no crash report in the server log" false; grep -E -A30 "AddressSanitizer|LeakSanitizer|runtime error:" "$L_LOG" | head -60
fi
[ "$E2E_FAIL" = 0 ] || { echo "server log tail:"; tail -30 "$L_LOG"; }
finish
