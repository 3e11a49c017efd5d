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
[ -f build/Release/original_dst.node ] && [ -f build/Release/socket_mark.node ] && [ -f build/Release/nfqueue.node ] && [ -f build/Release/splice_relay.node ] && [ -f build/Release/release_memory.node ] || npm run install
npm run build
npx tsc -p tsconfig.json --noEmit   # strict types for tests, perf and demo too
# The end-to-end tests run sidewall-init and sidewall-proxy from the image under podman/runc with
# the webhook patch's securityContext (test/harness/sidecar-runtime.ts); the image is (re)built
# when it is missing or was built from another tree. SIDEWALL_E2E_RUNTIME=tree: from the tree.
export SIDEWALL_E2E_RUNTIME=${SIDEWALL_E2E_RUNTIME:-image}
if [ "$SIDEWALL_E2E_RUNTIME" = image ]; then
  version=$(node -p 'require("./package.json").version')
  hash=$(node scripts/tree-hash.mjs)
  label=$(podman image inspect --format '{{index .Labels "io.sidewall.tree-hash"}}' "localhost/sidewall:tree-$hash" 2>/dev/null || true)
  if [ "$label" != "$hash" ]; then
    echo "npm test: localhost/sidewall:$version is missing or from another tree: npm run image -- --no-dockerfile" >&2
    npm run image -- --no-dockerfile
  fi
fi
npx vitest run --no-file-parallelism "$@"
