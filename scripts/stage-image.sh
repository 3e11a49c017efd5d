#!/usr/bin/env bash
# Lays out the files the sidewall image adds on top of its base, under DEST (a root filesystem
# overlay): /opt/sidewall with the built project and its production dependencies only, and
# /usr/local/bin/sidewall. Shared by `npm run image` (scripts/build-image.sh) and the Dockerfile,
# so both images have the same layout. Run from a built checkout (dist/, build/Release/*.node).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: stage-image.sh DEST}
for addon in original_dst socket_mark nfqueue splice_relay release_memory; do [ -f "build/Release/$addon.node" ] || { echo "stage-image.sh: build/Release/$addon.node is missing: run npm ci" >&2; exit 1; }; done
[ -f dist/src/cli/main.js ] || { echo "stage-image.sh: dist/ is missing: run npm run build" >&2; exit 1; }
app=$dest/opt/sidewall
rm -rf "$app" && mkdir -p "$app/dist" "$app/build/Release" "$app/charts" "$dest/usr/local/bin"
cp package.json package-lock.json "$app/"
# proto/: the flow stream and OTLP definitions; charts/sidewall: `sidewall manifests` renders it.
cp -r bin proto schema "$app/"
cp -r dist/src dist/injector "$app/dist/"
cp -r charts/sidewall "$app/charts/"
cp build/Release/*.node "$app/build/Release/"
# --ignore-scripts: the package's own install script would rebuild the addon (no compiler in the
# image); the dependencies have no install step the runtime needs. The cache is thrown away.
cache=$(mktemp -d)
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error --cache "$cache" >/dev/null)
rm -rf "$cache"
# What a running process never reads: type declarations, source maps, docs.
find "$app" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -iname '*.md' -o -name '*.tsbuildinfo' \) -delete
ln -sfn /opt/sidewall/bin/sidewall.js "$dest/usr/local/bin/sidewall"
chmod -R a+rX,go-w "$dest"
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then find "$dest" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +; fi
