#!/usr/bin/env bash
# The test command (`npm test`): builds, runs the unit tests, then the end-to-end tests, which
# need root, iproute2 and iptables because they build network namespaces and nat rules.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ "$(id -u)" = 0 ] || missing+=("root (the end-to-end tests create network namespaces)")
for cmd in ip iptables-restore ip6tables-restore setpriv curl socat; do
  command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "npm test needs: ${missing[*]}" >&2
  echo "on Debian, as root: apt-get install -y iptables iproute2 curl socat util-linux" >&2
  exit 1
fi
[ -f build/Release/original_dst.node ] && [ -f build/Release/socket_mark.node ] || npm run install
npm run build
npx tsc -p tsconfig.json --noEmit   # strict types for tests, perf and demo too
npx vitest run --no-file-parallelism "$@"
