#!/usr/bin/env bash
# tests/e2e/deploy_launch.sh: the real binary started exactly as the image,
# compose and Kubernetes files start it (flags, environment, health check,
# SIGTERM budget); see deploy_launch.mjs. Needs the bundled model and node.
set -uo pipefail
cd "$(dirname "$0")/../.."
export DS_BIN=${DS_BIN:-build/release/deltaserve}
[ -x "$DS_BIN" ] || { echo "deploy_launch: $DS_BIN not built"; exit 1; }
exec node tests/e2e/deploy_launch.mjs
