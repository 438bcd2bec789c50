#!/usr/bin/env bash
# tests/e2e/deploy_lint.sh: the deployment files pass tools/validate-deploy.mjs,
# and the validator catches broken ones: each case below copies one file,
# breaks it the way people do (a typo'd field, a grace period shorter than the
# drain, a missing GPU limit, a root container...) and expects a failure
# naming the problem. Also runs docker/healthcheck.sh against a real HTTP
# server answering 200, then 503, then nothing. No Docker or cluster needed.
# Needs node and tools/node_modules (tools/setup.sh). Takes a few seconds.
set -uo pipefail
cd "$(dirname "$0")/../.."
V=tools/validate-deploy.mjs
command -v node >/dev/null || { echo "deploy_lint: node not found (run tools/setup.sh)"; exit 1; }
[ -d tools/node_modules/kubernetes-models ] || { echo "deploy_lint: tools/node_modules incomplete (run tools/setup.sh)"; exit 1; }
T=$(mktemp -d)
SRV_PID=""
trap '[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null; rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     /' | head -20; }

# 1. the real files pass
if out=$(node "$V" 2>&1); then ok "repository deployment files validate: ${out##*OK: }"; else bad "repository deployment files" "$out"; fi

# 2. broken copies fail with the expected message. Each case gets its own
# copy; one node process then checks them all (--batch: loads schemas once).
# mutate NAME KIND FILE PERL-EXPR EXPECTED-SUBSTRING
#   KIND: k8s (FILE inside docker/k8s), dockerfile, compose, dockerignore
B=$T/batch.tsv; : > "$B"; n=0
mutate() {
    local name=$1 kind=$2 file=$3 expr=$4 want=$5 d args=()
    n=$((n+1)); d=$T/case$n; mkdir -p "$d/docker"
    case $kind in
        k8s) cp -r docker/k8s "$d/k8s"; f=$d/k8s/$file; args=(--k8s-dir "$d/k8s") ;;
        dockerfile) cp docker/Dockerfile "$d/Dockerfile"; f=$d/Dockerfile; args=(--dockerfile "$f") ;;
        compose) cp docker/compose.yaml "$d/docker/compose.yaml"; ln -s "$PWD/docker/Dockerfile" "$d/docker/Dockerfile"
                 f=$d/docker/compose.yaml; args=(--compose "$f") ;;
        dockerignore) cp .dockerignore "$d/dockerignore"; f=$d/dockerignore; args=(--dockerignore "$f") ;;
    esac
    cp "$f" "$f.orig"; perl -0pi -e "$expr" "$f"
    # a mutation that changes nothing would test nothing
    if cmp -s "$f" "$f.orig"; then bad "$name: the mutation did not apply"; return; fi
    (IFS=$'\t'; printf '%s\n' "$name"$'\t'"$want"$'\t'"${args[*]}") >> "$B"
}

mutate "typo'd probe field"          k8s deployment.yaml     's/readinessProbe:/readinesProbe:/'             'unknown field (did you mean readinessProbe?)'
mutate "unknown nested field"        k8s servicemonitor.yaml 's/interval: 15s/intervall: 15s/'               'endpoints[0].intervall: unknown field'
mutate "wrong type"                  k8s deployment.yaml     's/replicas: 2/replicas: two/'                  'replicas must be integer'
mutate "bad enum"                    k8s service.yaml        's/type: ClusterIP/type: Clusterip/'            'must be equal to one of the allowed values'
mutate "missing required field"      k8s hpa.yaml            's/  maxReplicas: 8\n//'                        'must have required property maxReplicas'
mutate "duplicate key"               k8s pdb.yaml            's/  maxUnavailable: 1\n/  maxUnavailable: 1\n  maxUnavailable: 2\n/' 'Map keys must be unique'
mutate "grace shorter than drain"    k8s deployment.yaml     's/terminationGracePeriodSeconds: 45/terminationGracePeriodSeconds: 30/' 'requests would be SIGKILLed mid-drain'
mutate "longer drain, same grace"    k8s deployment.yaml     's/- "30"/- "60"/'                              '--shutdown-timeout 60s'
mutate "no preStop"                  k8s deployment.yaml     's/          lifecycle:\n            preStop:\n              exec:\n                command: \["sleep", "5"\]\n//' 'needs a sleep so endpoints drop the pod'
mutate "no GPU limit"                k8s deployment.yaml     's/(limits:\n\s+memory: 64Gi\n)\s+nvidia.com\/gpu: 1\n/$1/' 'needs nvidia.com/gpu >= 1'
mutate "probe off /health"           k8s deployment.yaml     's/(livenessProbe:\n\s+httpGet:\n\s+path: )\/health/$1\/healthz/' 'livenessProbe: must be httpGet on /health'
mutate "listens on loopback"         k8s deployment.yaml     's/- 0\.0\.0\.0/- 127.0.0.1/'                   'must pass --host 0.0.0.0'
mutate "Service selects nothing"     k8s service.yaml        's/(selector:\n\s+app.kubernetes.io\/name: )deltaserve/$1deltaserv/' 'does not select the Deployment'
mutate "unknown flag"                k8s deployment.yaml     's/--gpu-memory-utilization/--gpu-mem-util/'    'unknown flag --gpu-mem-util'
mutate "typo'd environment variable" k8s deployment.yaml     's/name: DELTASERVE_LOG_FORMAT/name: DELTASERVE_LOGFORMAT/' 'DELTASERVE_LOGFORMAT is not a deltaserve setting'
mutate "compose: unknown flag"       compose compose.yaml    's/- --served-model-name/- --served-name/'      'unknown flag --served-name'
mutate "image: typo'd ENV"           dockerfile Dockerfile   's/DELTASERVE_LOG_FORMAT=json/DELTASERVE_LOG_FMT=json/' 'DELTASERVE_LOG_FMT is not a deltaserve setting'
mutate "alert on a missing series"   k8s prometheusrule.yaml 's/rate\(deltaserve:num_preemptions_total/rate(deltaserve:num_preemption_total/' 'deltaserve:num_preemption_total is not a series'
mutate "alert rule typo'd field"     k8s prometheusrule.yaml 's/          for: 15m/          fro: 15m/'     'rules[1].fro: unknown field'
mutate "HPA metric not exported"     k8s hpa.yaml            's/name: deltaserve:num_requests_waiting/name: deltaserve:num_request_waiting/' 'is not a metric server/metrics.c exports'
mutate "HPA targets another object"  k8s hpa.yaml            's/(kind: Deployment\n\s+name: )deltaserve/$1other/' 'does not point at the Deployment'
mutate "ServiceMonitor wrong port"   k8s servicemonitor.yaml 's/- port: http/- port: metrics/'                'is not a port name of Service'
mutate "quoted boolean"              k8s deployment.yaml     's/readOnly: true/readOnly: "true"/'            'readOnly must be boolean'
mutate "runs as root"                dockerfile Dockerfile   's/^USER 10001:10001\n//m'                       'must switch to a non-root user'
mutate "unpinned base image"         dockerfile Dockerfile   's/-runtime-\$\{UBUNTU_VERSION\} AS runtime/-runtime-ubuntu24.04:latest AS runtime/' 'must be pinned'
mutate "shell-form entrypoint"       dockerfile Dockerfile   's/^ENTRYPOINT .*$/ENTRYPOINT deltaserve serve/m' 'exec form'
mutate "apt without no-recommends"   dockerfile Dockerfile   's/apt-get install -y --no-install-recommends \\\n        libmicrohttpd12t64/apt-get install -y \\\n        libmicrohttpd12t64/' 'needs --no-install-recommends'
mutate "missing -dev package"        dockerfile Dockerfile   's/ libuv1-dev//'                                'does not install libuv1-dev'
mutate "unknown instruction"         dockerfile Dockerfile   's/^EXPOSE 8000$/EXPOSES 8000/m'                 'Unknown instruction: EXPOSES'
mutate "no healthcheck"              dockerfile Dockerfile   's/^HEALTHCHECK .*\n.*\n//m'                     'needs one HEALTHCHECK'
mutate "COPY of a missing path"      dockerfile Dockerfile   's/COPY server\/ server\//COPY srv\/ server\//'  'does not exist in the context'
mutate "source dir not copied"       dockerfile Dockerfile   's/^COPY scheduler\/ scheduler\/\n//m'         'does not COPY scheduler/'
mutate "build dir in context"        dockerignore dockerignore 's/^build\n//m'                              'build: must be excluded'
mutate "compose: short grace"        compose compose.yaml    's/stop_grace_period: 40s/stop_grace_period: 10s/' 'stop_grace_period: 10s < --shutdown-timeout'
mutate "compose: no GPU"             compose compose.yaml    's/capabilities: \[gpu\]/capabilities: [utility]/' 'needs a GPU reservation'
mutate "compose: unknown key"        compose compose.yaml    's/    healthcheck:/    helthcheck:/'            'must NOT have additional properties (helthcheck)'
mutate "compose: writable model"     compose compose.yaml    's/read_only: true/read_only: false/'           'read-only under /models'

out=$(node "$V" --batch "$B" 2>&1); rc=$?
printf '%s\n' "$out" | grep -v '^deploy-lint batch:' | sed "s|$T/||g"
bp=$(sed -n 's/^deploy-lint batch: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' <<<"$out")
if [ -z "$bp" ]; then bad "batch run did not finish (rc=$rc)" "$out"
else pass=$((pass + ${bp% *})); fail=$((fail + ${bp#* })); [ "${bp% *}" = "$n" ] || bad "batch: ${bp% *} of $n cases passed"; fi

# 3. the HEALTHCHECK script against a real HTTP server
cat > "$T/srv.js" <<'JS'
const http = require("http");
let code = 200;
const s = http.createServer((req, res) => {
  if (req.url === "/set503") { code = 503; res.end("ok"); return; }
  if (req.url !== "/health") { res.writeHead(404); res.end(); return; }
  res.writeHead(code, { "content-type": "application/json" }); res.end(code === 200 ? '{"status":"ok"}' : '{"status":"draining"}');
});
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); });
JS
node "$T/srv.js" > "$T/port" & SRV_PID=$!
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port")
if DELTASERVE_PORT=$PORT bash docker/healthcheck.sh >/dev/null; then ok "healthcheck: 200 -> healthy"; else bad "healthcheck: 200 -> healthy"; fi
exec 4<>"/dev/tcp/127.0.0.1/$PORT"; printf 'GET /set503 HTTP/1.0\r\n\r\n' >&4; cat <&4 >/dev/null; exec 4<&-
if out=$(DELTASERVE_PORT=$PORT bash docker/healthcheck.sh); then bad "healthcheck: 503 -> unhealthy (exit 0)"; else ok "healthcheck: 503 -> unhealthy ($out)"; fi
kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null; SRV_PID=""
if out=$(DELTASERVE_PORT=$PORT bash docker/healthcheck.sh); then bad "healthcheck: refused -> unhealthy (exit 0)"; else ok "healthcheck: refused -> unhealthy ($out)"; fi

echo "deploy_lint: $pass passed, $fail failed"
[ "$fail" = 0 ]
