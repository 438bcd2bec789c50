#!/usr/bin/env bash
# tests/e2e/metrics.sh: GET /metrics from a real `deltaserve serve` (the
# bundled tiny model on the CPU, loopback) parses strictly and moves by
# exactly what real requests did (tests/e2e/metrics_check.mjs).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${DS_BIN:-build/release/deltaserve}
MODEL=${DS_MODEL:-models/olmo-hybrid-tiny}
NAME=metrics-e2e-model
T=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
[ -x "$BIN" ] || { echo "metrics.sh: $BIN not built"; exit 1; }

# run 1: plain decoding (no spec_decode_* families); run 2: n-gram
# speculation (the spec_decode_* counters and their consistency).
start() {
"$BIN" serve --model "$MODEL" --served-model-name "$NAME" --host 127.0.0.1 --port 0 \
    --device cpu --threads 2 --max-model-len 256 --log-level info "$@" >"$T/log" 2>&1 &
PID=$!
# --port 0: the server picks a free port and logs it ("listening on http://127.0.0.1:PORT").
PORT=""
for _ in $(seq 300); do
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$T/log" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "metrics.sh: server did not start"; cat "$T/log"; exit 1; }
for _ in $(seq 300); do
    code=$(exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | cut -d' ' -f2)
    [ "$code" = 200 ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
[ "${code:-}" = 200 ] || { echo "metrics.sh: /health never 200"; cat "$T/log"; exit 1; }

}
start
node tests/e2e/metrics_check.mjs "http://127.0.0.1:$PORT" "$NAME"
rc=$?
[ $rc = 0 ] || { echo "--- server log"; tail -40 "$T/log"; exit $rc; }
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""
start --speculative ngram --num-speculative-tokens 4 --ngram-min 1 --ngram-max 3 --spec-min-acceptance 0
node tests/e2e/metrics_check.mjs "http://127.0.0.1:$PORT" "$NAME" spec=4
rc=$?
[ $rc = 0 ] || { echo "--- server log (speculative)"; tail -40 "$T/log"; }
exit $rc
