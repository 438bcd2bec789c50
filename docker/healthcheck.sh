#!/usr/bin/env bash
# docker/healthcheck.sh: the container's HEALTHCHECK (installed as
# /usr/local/bin/deltaserve-healthcheck). GET /health over bash's /dev/tcp,
# so the runtime image needs no curl. Exit 0 on HTTP 200, 1 otherwise (503
# while draining or loading, refused connection, timeout).
#
# Environment: DELTASERVE_PORT (8000) and DELTASERVE_API_KEY (sent as a
# bearer token when set, for --auth-health-metrics), the server's own
# settings, so the probe follows them; HEALTHCHECK_HOST (127.0.0.1) and
# HEALTHCHECK_TIMEOUT seconds (4).
set -u
port=${DELTASERVE_PORT:-8000}
host=${HEALTHCHECK_HOST:-127.0.0.1}
t=${HEALTHCHECK_TIMEOUT:-4}
auth=""
[ -n "${DELTASERVE_API_KEY:-}" ] && auth="Authorization: Bearer ${DELTASERVE_API_KEY}"$'\r\n'

# The read timeout bounds a server that accepts but never answers.
{ exec 3<>"/dev/tcp/${host}/${port}"; } 2>/dev/null || { echo "health: cannot connect to ${host}:${port}"; exit 1; }
printf 'GET /health HTTP/1.1\r\nHost: %s:%s\r\n%sConnection: close\r\n\r\n' "$host" "$port" "$auth" >&3
if ! IFS= read -r -t "$t" status <&3; then
    echo "health: no answer from ${host}:${port} within ${t}s"
    exit 1
fi
exec 3<&-
status=${status%$'\r'}
case "$status" in
    "HTTP/1."?" 200"*) exit 0 ;;
    *) echo "health: ${status:-empty reply}"; exit 1 ;;
esac
