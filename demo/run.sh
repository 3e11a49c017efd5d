#!/usr/bin/env bash
# `npm run demo`: checks what it needs, builds, and runs demo/demo.ts (as root: it creates
# network namespaces and iptables rules, and tears them down on exit or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "npm run demo must run as root (it creates network namespaces): sudo npm run demo" >&2
  exit 1
fi
bash scripts/install-debian-deps.sh
[ -d node_modules ] || npm ci
[ -f build/Release/original_dst.node ] || npm run install
npm run build --silent
exec node dist/demo/demo.js "$@"
