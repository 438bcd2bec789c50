# tests/e2e/lib.sh: helpers for the server e2e scripts (sourced, not run).
#   start_server NAME ARGS...  start $DS_BIN serve on a free port (--port 0),
#                              wait for /health 200 (with key $E2E_AUTH if set);
#                              sets <NAME>_PORT/_PID/_LOG
#   check DESC CMD...          run CMD, count a pass or a failure
#   finish                     print the counts; exit non-zero on any failure
# The model is $DS_E2E_MODEL, else models/olmo-hybrid-tiny; the device
# $DS_E2E_DEVICE, else cpu (make test-gpu runs the curl suite with cuda). Every server
# started here is killed by the EXIT trap, whatever happens.
set -uo pipefail
DS_BIN=${DS_BIN:-build/release/deltaserve}
MODEL=${DS_E2E_MODEL:-models/olmo-hybrid-tiny}
E2E_TMP=$(mktemp -d)
E2E_PIDS=""
E2E_PASS=0
E2E_FAIL=0
cleanup() {
    for p in $E2E_PIDS; do { kill -9 "$p"; wait "$p"; } 2>/dev/null; done
    if [ -n "${E2E_KEEP:-}" ]; then echo "e2e: logs kept in $E2E_TMP"; else rm -rf "$E2E_TMP"; fi
}
trap cleanup EXIT

if [ ! -f "$MODEL/config.json" ] || [ ! -f "$MODEL/tokenizer.json" ]; then
    echo "e2e: no model at $MODEL (config.json + tokenizer.json + safetensors needed; set DS_E2E_MODEL)"
    exit 1
fi

start_server() {
    local name=$1; shift
    local log="$E2E_TMP/$name.log"
    "$DS_BIN" serve --model "$MODEL" --host 127.0.0.1 --port 0 --device "${DS_E2E_DEVICE:-cpu}" "$@" >"$log" 2>&1 &
    local pid=$!
    E2E_PIDS="$E2E_PIDS $pid"
    local port=""
    for _ in $(seq 1 300); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
        if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' ${E2E_AUTH:+-H "Authorization: Bearer $E2E_AUTH"} "http://127.0.0.1:$port/health")" = 200 ]; then
            break
        fi
        if ! kill -0 "$pid" 2>/dev/null; then echo "server $name died:"; cat "$log"; exit 1; fi
        sleep 0.1
    done
    eval "${name}_PORT=$port ${name}_PID=$pid ${name}_LOG=$log"
}

check() {
    local desc=$1; shift
    if "$@"; then E2E_PASS=$((E2E_PASS + 1)); else E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL: $desc"; fi
}

finish() {
    echo "$(basename "$0"): $E2E_PASS checks passed, $E2E_FAIL failed"
    [ "$E2E_FAIL" = 0 ]
}

# jq-free JSON checks through node (always present for the npm client tests)
jget() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=eval("(o)=>o"+process.argv[1])(JSON.parse(s));console.log(typeof v==="object"?JSON.stringify(v):String(v))})' "$1"; }
