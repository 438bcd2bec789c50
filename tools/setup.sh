#!/usr/bin/env bash
# tools/setup.sh: install what deltaserve needs to build and test.
# As root it installs missing Debian packages itself; otherwise it prints the
# exact apt-get line and fails. Node packages for the e2e tests and reference
# tools (openai, @huggingface/tokenizers, @huggingface/jinja) go to tools/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS="libmicrohttpd-dev libcjson-dev libuv1-dev check libpcre2-dev pkg-config"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq $missing >/dev/null
    else
        echo "setup: missing packages:$missing"
        echo "run:   sudo apt-get install -y$missing"
        exit 1
    fi
fi
if [ "${DS_SKIP_NODE:-0}" != 1 ] && command -v npm >/dev/null 2>&1 && [ -f tools/package.json ]; then
    if [ ! -d tools/node_modules ] || [ tools/package.json -nt tools/node_modules/.stamp ]; then
        echo "setup: installing node packages for tests (tools/node_modules)"
        (cd tools && npm install --no-audit --no-fund --silent >/dev/null && touch node_modules/.stamp)
    fi
fi
