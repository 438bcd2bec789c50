#!/usr/bin/env bash
# tests/e2e/openai_client.sh: start the server (CPU, tiny model) and run
# tests/e2e/openai_client.mjs with the official openai npm client.
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
if [ ! -d tools/node_modules/openai ]; then echo "openai npm package missing (run tools/setup.sh)"; exit 1; fi
start_server C --api-key sk-e2e --max-model-len 2048 --max-num-seqs 32 --kv-cache-memory 256MiB --disable-log-requests
BASE_URL="http://127.0.0.1:$C_PORT/v1" MODEL="$MODEL" API_KEY=sk-e2e timeout 300 node tests/e2e/openai_client.mjs
