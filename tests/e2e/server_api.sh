#!/usr/bin/env bash
# tests/e2e/server_api.sh: the real server over loopback, driven by curl:
# every endpoint, the response schemas, streaming, echo/logprobs, n, stops,
# seeds, every error class (400 401 404 405 413 429 503), disconnect
# cancellation and graceful shutdown. CPU backend, tiny model.
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

KEY=sk-test-123
start_server A --api-key "$KEY" --max-model-len 2048 --max-body-size 65536 --max-num-seqs 8 --kv-cache-memory 256MiB
U="http://127.0.0.1:$A_PORT"
AUTH=(-H "Authorization: Bearer $KEY")
post() { curl -s "${AUTH[@]}" -H 'Content-Type: application/json' "$U$1" -d "$2"; }
status() { curl -s -o "$E2E_TMP/body" -w '%{http_code}' "$@"; }
eq() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'"; return 1; }; }
has() { case "$1" in *"$2"*) return 0;; *) echo "  '$1' lacks '$2'"; return 1;; esac; }

# --- open endpoints
check "health 200" eq "$(status "$U/health")" 200
check "version" has "$(curl -s "$U/version")" '"version"'
check "metrics exposition" has "$(curl -s "$U/metrics")" 'deltaserve:num_requests_running'

# --- auth
check "401 without key" eq "$(status "$U/v1/models")" 401
check "401 error object" eq "$(jget '.error.code' <"$E2E_TMP/body")" invalid_api_key
check "401 wrong key" eq "$(status -H 'Authorization: Bearer sk-wrong' "$U/v1/models")" 401
check "401 wrong key same length" eq "$(status -H 'Authorization: Bearer sk-test-124' "$U/v1/models")" 401
check "200 with key" eq "$(status "${AUTH[@]}" "$U/v1/models")" 200
check "key never logged" bash -c "! grep -q '$KEY' '$A_LOG'"

# --- models
M=$(curl -s "${AUTH[@]}" "$U/v1/models" | jget '.data[0].id')
check "model id = --model path" eq "$M" "$MODEL"
check "models/{id}" eq "$(status "${AUTH[@]}" "$U/v1/models/$MODEL")" 200
check "models/{unknown} 404" eq "$(status "${AUTH[@]}" "$U/v1/models/nope")" 404
check "404 model_not_found" eq "$(jget '.error.code' <"$E2E_TMP/body")" model_not_found

# --- completions
R=$(post /v1/completions '{"prompt":"Hello world","max_tokens":6,"temperature":0}')
check "completion object" eq "$(echo "$R" | jget '.object')" text_completion
check "completion id" has "$(echo "$R" | jget '.id')" cmpl-
check "usage" eq "$(echo "$R" | jget '.usage.completion_tokens')" 6
check "finish length" eq "$(echo "$R" | jget '.choices[0].finish_reason')" length
check "total tokens" eq "$(echo "$R" | jget '.usage.total_tokens')" "$(( $(echo "$R" | jget '.usage.prompt_tokens') + 6 ))"
G1=$(echo "$R" | jget '.choices[0].text')
# greedy is deterministic, and equal to the streamed text
G2=$(post /v1/completions '{"prompt":"Hello world","max_tokens":6,"temperature":0}' | jget '.choices[0].text')
check "greedy deterministic" eq "$G2" "$G1"
S=$(post /v1/completions '{"prompt":"Hello world","max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}')
check "stream ends with DONE" has "$(echo "$S" | tail -n 2)" 'data: [DONE]'
ST=$(echo "$S" | grep '^data: {' | sed 's/^data: //' | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let t="";for(const l of s.trim().split("\n")){const o=JSON.parse(l);for(const c of o.choices)t+=c.text}console.log(t)})')
check "stream text == non-stream text" eq "$ST" "$G1"
check "stream usage chunk" eq "$(echo "$S" | grep '^data: {' | tail -1 | sed 's/^data: //' | jget '.usage.completion_tokens')" 6
check "stream finish chunk" has "$S" '"finish_reason":"length"'
# token-id prompts and several prompts
R=$(post /v1/completions '{"prompt":[[9906,1917],[9906]],"max_tokens":2,"temperature":0,"n":2}')
check "2 prompts x n=2 = 4 choices" eq "$(echo "$R" | jget '.choices.length')" 4
check "choice index 3" eq "$(echo "$R" | jget '.choices[3].index')" 3
# echo + logprobs with max_tokens 0 (lm-evaluation-harness loglikelihood)
R=$(post /v1/completions '{"prompt":"Hello world, how are you","max_tokens":0,"echo":true,"logprobs":1,"temperature":0}')
check "echo returns the prompt" eq "$(echo "$R" | jget '.choices[0].text')" "Hello world, how are you"
check "first prompt logprob null" eq "$(echo "$R" | jget '.choices[0].logprobs.token_logprobs[0]')" null
check "second prompt logprob number" eq "$(echo "$R" | jget '.choices[0].logprobs.token_logprobs[1] < 0')" true
check "echo tokens = prompt tokens" eq "$(echo "$R" | jget '.choices[0].logprobs.tokens.length')" "$(echo "$R" | jget '.usage.prompt_tokens')"
check "text_offset" eq "$(echo "$R" | jget '.choices[0].logprobs.text_offset.slice(0,2).join()')" "0,5"
R=$(post /v1/completions '{"prompt":"Hello","max_tokens":3,"logprobs":2,"temperature":0}')
check "logprobs per token" eq "$(echo "$R" | jget '.choices[0].logprobs.token_logprobs.length')" 3
check "top_logprobs has >= 2" eq "$(echo "$R" | jget '.choices[0].logprobs.top_logprobs.every(t=>Object.keys(t).length>=2)')" true
# seeds: same seed, same text; sampling at temperature 1
A1=$(post /v1/completions '{"prompt":"Once","max_tokens":8,"temperature":1,"seed":42}' | jget '.choices[0].text')
A2=$(post /v1/completions '{"prompt":"Once","max_tokens":8,"temperature":1,"seed":42}' | jget '.choices[0].text')
check "seeded sampling reproducible" eq "$A2" "$A1"
# stop strings: the text stops before the stop string, finish stop
FULL=$(post /v1/completions '{"prompt":"Hello world","max_tokens":8,"temperature":0}' | jget '.choices[0].text')
STOPSTR=$(node -e 'const t=process.argv[1];console.log(t.slice(Math.floor(t.length/2),Math.floor(t.length/2)+2))' "$FULL")
R=$(post /v1/completions "$(node -e 'console.log(JSON.stringify({prompt:"Hello world",max_tokens:8,temperature:0,stop:[process.argv[1]]}))' "$STOPSTR")")
check "stop finish_reason" eq "$(echo "$R" | jget '.choices[0].finish_reason')" stop
check "stop_reason is the string" eq "$(echo "$R" | jget '.choices[0].stop_reason')" "$STOPSTR"
check "text is cut before the stop" eq "$(echo "$R" | jget '.choices[0].text')" "$(node -e 'const [t,s]=process.argv.slice(1);console.log(t.slice(0,t.indexOf(s)))' "$FULL" "$STOPSTR")"

# --- chat
CH=$(post /v1/chat/completions '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":5,"temperature":0}')
check "chat object" eq "$(echo "$CH" | jget '.object')" chat.completion
check "chat id" has "$(echo "$CH" | jget '.id')" chatcmpl-
check "chat role" eq "$(echo "$CH" | jget '.choices[0].message.role')" assistant
CS=$(post /v1/chat/completions '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":5,"temperature":0,"stream":true}')
check "chat stream: role first" eq "$(echo "$CS" | grep '^data: {' | head -1 | sed 's/^data: //' | jget '.choices[0].delta.role')" assistant
CST=$(echo "$CS" | grep '^data: {' | sed 's/^data: //' | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let t="";for(const l of s.trim().split("\n")){for(const c of JSON.parse(l).choices)t+=c.delta.content||""}console.log(t)})')
check "chat stream == non-stream" eq "$CST" "$(echo "$CH" | jget '.choices[0].message.content')"
TOOLS='{"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"max_tokens":3}'
check "chat with tools and tool calls" eq "$(status "${AUTH[@]}" "$U/v1/chat/completions" -d "$TOOLS")" 200
check "chat 400 bad message" eq "$(status "${AUTH[@]}" "$U/v1/chat/completions" -d '{"messages":[{"role":"user"}]}')" 400
check "chat 400 names the field" eq "$(jget '.error.param' <"$E2E_TMP/body")" "messages[0].content"
TC=$(post /tokenize '{"messages":[{"role":"user","content":"Hi"}]}' | jget '.count')
check "tokenize messages counts the template" eq "$(echo "$CH" | jget '.usage.prompt_tokens')" "$(post /tokenize '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}' | jget '.count')"
check "tokenize messages" test "$TC" -gt 2

# --- the offline CLI prints what /v1/completions returns (ids and times aside)
BODY='{"prompt":"Hello world","max_tokens":5,"temperature":0,"logprobs":2,"echo":true}'
post /v1/completions "$BODY" >"$E2E_TMP/http.json"
"$DS_BIN" complete --model "$MODEL" --device cpu --max-model-len 2048 --prompt "Hello world" --max-tokens 5 \
    --temperature 0 --logprobs 2 --echo >"$E2E_TMP/cli.json" 2>"$E2E_TMP/cli.err"
check "complete CLI == /v1/completions" node -e '
const fs=require("fs");const [a,b]=process.argv.slice(1).map(f=>JSON.parse(fs.readFileSync(f)));
for(const o of [a,b]){delete o.id;delete o.created;delete o.model}
if(JSON.stringify(a)!==JSON.stringify(b)){console.log(JSON.stringify(a),"\n",JSON.stringify(b));process.exit(1)}' "$E2E_TMP/http.json" "$E2E_TMP/cli.json"
check "complete CLI error is an error object" bash -c "'$DS_BIN' complete --model '$MODEL' --device cpu --prompt-tokens 1,99999999 2>/dev/null | grep -q invalid_request_error"
check "request log line" grep -q 'request cmpl-.* finished: status=200 prompt_tokens=[0-9]* completion_tokens=[0-9]* queue_ms=.* ttft_ms=.* total_ms=' "$A_LOG"
check "startup banner" bash -c "grep -q 'device: cpu' '$A_LOG' && grep -q 'rope:' '$A_LOG' && grep -q 'KV blocks' '$A_LOG'"

# --- tokenize / detokenize
T=$(post /tokenize '{"prompt":"Hello world"}')
check "tokenize count" eq "$(echo "$T" | jget '.count')" 2
IDS=$(echo "$T" | jget '.tokens')
check "detokenize round trip" eq "$(post /detokenize "{\"tokens\":$IDS}" | jget '.prompt')" "Hello world"

# --- errors
check "400 invalid JSON" eq "$(status "${AUTH[@]}" "$U/v1/completions" -d '{"prompt":')" 400
check "400 invalid_json code" eq "$(jget '.error.code' <"$E2E_TMP/body")" invalid_json
check "400 wrong type" eq "$(status "${AUTH[@]}" "$U/v1/completions" -d '{"prompt":"a","max_tokens":"x"}')" 400
check "400 names the param" eq "$(jget '.error.param' <"$E2E_TMP/body")" max_tokens
check "400 out of range" eq "$(status "${AUTH[@]}" "$U/v1/completions" -d '{"prompt":"a","top_p":3}')" 400
check "400 unknown fields ignored" eq "$(status "${AUTH[@]}" "$U/v1/completions" -d '{"prompt":"a","max_tokens":1,"frobnicate":true}')" 200
LONG=$(node -e 'console.log(JSON.stringify({prompt:Array(3000).fill(9906),max_tokens:1}))')
check "400 prompt too long" eq "$(status "${AUTH[@]}" "$U/v1/completions" -d "$LONG")" 400
check "context_length_exceeded" eq "$(jget '.error.code' <"$E2E_TMP/body")" context_length_exceeded
check "400 token id out of vocab" eq "$(status "${AUTH[@]}" "$U/v1/completions" -d '{"prompt":[99999999]}')" 400
check "404 unknown model" eq "$(status "${AUTH[@]}" "$U/v1/completions" -d '{"model":"gpt-5","prompt":"a"}')" 404
check "404 unknown route" eq "$(status "${AUTH[@]}" "$U/v2/whatever")" 404
check "405 wrong method" eq "$(status "${AUTH[@]}" -X GET "$U/v1/completions")" 405
head -c 100000 /dev/zero | tr '\0' 'a' >"$E2E_TMP/big"
check "413 body too large" eq "$(status "${AUTH[@]}" "$U/v1/completions" --data-binary "@$E2E_TMP/big")" 413
check "413 chunked body" eq "$(status "${AUTH[@]}" -H 'Transfer-Encoding: chunked' "$U/v1/completions" --data-binary "@$E2E_TMP/big")" 413
# hostile bodies: never a 5xx, never a crash
NEST=$(node -e 'console.log("[".repeat(5000)+"]".repeat(5000))')
printf '{"prompt":"a\xff\xfeb","max_tokens":1}' >"$E2E_TMP/badutf8"
printf '{"prompt":"a\u0000b","max_tokens":1}' >"$E2E_TMP/nul"
bad5xx=0
for b in "$NEST" '{"prompt":"x","max_tokens":1e308}' '{"prompt":"x","n":-1}' "$(node -e 'console.log(JSON.stringify({prompt:Array(2040).fill(9906),max_tokens:99999999}))')" \
         '{"prompt":"x","stop":["\ud800"]}' '{"prompt":"x","logit_bias":{"1":1e999}}' '{"prompt":{"a":1}}' \
         '{"prompt":"x","seed":1e30}' '{"prompt":"x","temperature":NaN}' '{"messages":[{"role":"user","content":"x"}],"max_tokens":2}' \
         'null' '{}' '{"prompt":""}' '{"prompt":[[]]}' '{"prompt":"x","stream":true,"n":3,"logprobs":20,"echo":true,"max_tokens":2}'; do
    code=$(status "${AUTH[@]}" "$U/v1/completions" -d "$b")
    case "$code" in 5*|000) echo "  $code for ${b:0:60}"; bad5xx=$((bad5xx + 1));; esac
    code=$(status "${AUTH[@]}" "$U/v1/chat/completions" -d "$b")
    case "$code" in 5*|000) echo "  chat $code for ${b:0:60}"; bad5xx=$((bad5xx + 1));; esac
done
for f in badutf8 nul; do
    code=$(status "${AUTH[@]}" "$U/v1/completions" --data-binary "@$E2E_TMP/$f")
    case "$code" in 5*|000) echo "  $code for $f"; bad5xx=$((bad5xx + 1));; esac
done
check "hostile bodies never get a 5xx" eq "$bad5xx" 0
check "still serving after errors" eq "$(status "$U/health")" 200

# --- a disconnecting client is cancelled
curl -s -N "${AUTH[@]}" "$U/v1/completions" -d '{"prompt":"x","max_tokens":3000,"ignore_eos":true,"stream":true}' --max-time 0.5 >/dev/null
curl -s "${AUTH[@]}" "$U/v1/completions" -d '{"prompt":"x","max_tokens":3000,"ignore_eos":true}' --max-time 0.5 >/dev/null
idle=no
for _ in $(seq 1 50); do
    if curl -s "$U/metrics" | grep -q '^deltaserve:num_requests_running{[^}]*} 0'; then idle=yes; break; fi
    sleep 0.1
done
check "disconnected requests cancelled" eq "$idle" yes
check "cancelled requests logged as 499" bash -c "grep -c 'status=499' '$A_LOG' | grep -q 2 || { grep -i 'finished' '$A_LOG' | tail -3; false; }"

# --- 429: a queue of one
start_server Q --log-format json --max-model-len 2048 --shutdown-timeout 120 --max-num-seqs 1 --max-queued-requests 1 --kv-cache-memory 64MiB
QU="http://127.0.0.1:$Q_PORT"
QP=""
for i in 1 2 3 4 5 6; do
    curl -s -o /dev/null -D "$E2E_TMP/h$i" -w '%{http_code}\n' "$QU/v1/completions" \
        -d '{"prompt":"x","max_tokens":20,"ignore_eos":true}' >"$E2E_TMP/q$i" &
    QP="$QP $!"
done
wait $QP
check "429 when the queue is full" grep -q 429 $E2E_TMP/q?
check "some requests served" grep -q 200 $E2E_TMP/q?
check "429 has Retry-After" bash -c "grep -il 'retry-after' $E2E_TMP/h? >/dev/null"

# --- graceful shutdown: in-flight request finishes, health 503, exit 0
curl -s "$QU/v1/completions" -d '{"prompt":"x","max_tokens":2000,"ignore_eos":true}' -o "$E2E_TMP/drain" -w '%{http_code}' >"$E2E_TMP/drain_code" &
CP=$!
sleep 0.3
kill -TERM "$Q_PID"
sleep 0.1
check "health 503 while draining" eq "$(curl -s -o /dev/null -w '%{http_code}' "$QU/health")" 503
check "new request 503 while draining" eq "$(curl -s -o /dev/null -w '%{http_code}' "$QU/v1/completions" -d '{"prompt":"x"}')" 503
wait $CP
check "in-flight request completed" eq "$(cat "$E2E_TMP/drain_code")" 200
check "it has all its tokens" eq "$(jget '.usage.completion_tokens' <"$E2E_TMP/drain")" 2000
wait "$Q_PID"; rc=$?
check "exit 0 after drain" eq "$rc" 0
check "json log lines" node -e 'for(const l of require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n")){const o=JSON.parse(l);if(!o.msg||!o.level)process.exit(1)}' "$Q_LOG"

# --- a second signal exits at once (no drain wait)
# (this server takes its settings from a config file and the environment)
printf '{"max-model-len": 2048, "shutdown_timeout": 60, "api-key": "from-file", "timeout": 1}' >"$E2E_TMP/z.json"
E2E_AUTH=from-env DELTASERVE_API_KEY=from-env DELTASERVE_MAX_NUM_SEQS=4 start_server Z --config "$E2E_TMP/z.json" --auth-health-metrics
ZU="http://127.0.0.1:$Z_PORT"
check "--auth-health-metrics: /health needs the key" eq "$(curl -s -o /dev/null -w '%{http_code}' "$ZU/health")" 401
check "--auth-health-metrics: /metrics needs the key" eq "$(curl -s -o /dev/null -w '%{http_code}' "$ZU/metrics")" 401
check "--auth-health-metrics: with the key" eq "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer from-env' "$ZU/metrics")" 200
check "config file: max-model-len" eq "$(curl -s -H 'Authorization: Bearer from-env' "$ZU/v1/models" | jget '.data[0].max_model_len')" 2048
check "environment beats config file (api key)" eq "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer from-file' "$ZU/v1/models")" 401
check "environment: max-num-seqs" grep -q 'max_num_seqs 4' "$Z_LOG"
# a client that sends half its headers and stalls is closed after --timeout (1 s here)
exec 3<>"/dev/tcp/127.0.0.1/$Z_PORT"
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\n' >&3
t0=$(date +%s%N); timeout 10 cat <&3 >/dev/null; t1=$(date +%s%N); exec 3<&-
check "slow client closed by --timeout" bash -c "[ $(( (t1 - t0) / 1000000 )) -ge 500 ] && [ $(( (t1 - t0) / 1000000 )) -lt 5000 ]"
curl -s -H 'Authorization: Bearer from-env' "$ZU/v1/completions" -d '{"prompt":"x","max_tokens":2000,"ignore_eos":true}' -o /dev/null &
ZC=$!
sleep 0.3
kill -TERM "$Z_PID"; sleep 0.2; kill -TERM "$Z_PID"
t0=$(date +%s%N); wait "$Z_PID"; zrc=$?; t1=$(date +%s%N)
check "second signal: exit at once, non-zero" bash -c "[ $zrc -ne 0 ] && [ $(( (t1 - t0) / 1000000 )) -lt 2000 ]"
wait $ZC 2>/dev/null

# --- --device cuda without a GPU is a clear startup error
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    "$DS_BIN" serve --model "$MODEL" --device cuda --port 0 >"$E2E_TMP/cuda.log" 2>&1
    crc=$?
    check "--device cuda without a GPU exits non-zero" test "$crc" -ne 0
    check "... naming the reason" grep -qi "cuda" "$E2E_TMP/cuda.log"
fi
"$DS_BIN" serve --model "$MODEL" --port 99999 >"$E2E_TMP/flag.log" 2>&1
frc=$?
check "bad flag exits 2" test "$frc" -eq 2
check "bad flag names the flag" grep -q 'flag --port' "$E2E_TMP/flag.log"

finish
