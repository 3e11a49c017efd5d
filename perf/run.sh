#!/usr/bin/env bash
# `npm run bench` (issue 7): installs what the benchmark needs, builds, and runs perf/bench.ts,
# which writes perf/RESULTS.md. Arguments go to the bench: --quick, --rounds N, --duration S,
# --rate R, --no-profile, --output FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "npm run bench needs root: it creates network namespaces and iptables rules, and installs" >&2
  echo "nginx-light, haproxy, wrk, nghttp2-client and dnsutils when they are missing." >&2
  exit 1
fi
bash scripts/install-debian-deps.sh
command -v perf >/dev/null || echo "bench: perf not found; the syscall counts of the profile will be empty" >&2
[ -d node_modules ] || npm ci
[ -f build/Release/original_dst.node ] || npm run install
# tsc emits even when a file elsewhere has type errors; the bench only needs its own output.
if ! npm run build >/tmp/sidewall-bench-build.log 2>&1; then
  echo "bench: npm run build reported errors (see /tmp/sidewall-bench-build.log); running what was emitted" >&2
fi
[ -f dist/perf/bench.js ] || { cat /tmp/sidewall-bench-build.log >&2; exit 1; }
# 1,000 held connections need ~2,000 descriptors in the proxy and the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec node dist/perf/bench.js "$@"
