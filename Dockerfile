# The sidewall image for a machine with internet access: the same layout as `npm run image`
# (scripts/build-image.sh, which needs only the Debian and npm registries), built from an upstream
# Node.js base. `npm run image` also builds this file from its own Debian root (BASE=localhost/
# sidewall-node:…, mmdebstrap bookworm plus Node.js and npm) so that it cannot rot.
#   docker build -t registry.example/sidewall:0.1.0 .            (or podman build)
#   docker build --build-arg BASE=node:20.19-bookworm-slim -t … .
# BASE must be Debian bookworm-like with Node.js >= 20.19 and npm in /usr/local.
ARG BASE=docker.io/library/node:20-bookworm-slim

FROM ${BASE} AS build
# Compilers for the native addon (binding.gyp); node-gyp takes Node's headers from the base
# instead of downloading them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 libnetfilter-queue-dev \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json binding.gyp ./
COPY native native
# The install script builds the addon; `prepare` (tsc) waits until the sources are in.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm run install
# The whole checkout (less .dockerignore): `npm run build` compiles what a clone compiles.
COPY . .
RUN npm run build && bash scripts/stage-image.sh /stage

FROM ${BASE}
# Runtime libraries only: iptables with both back ends (sidewall-init), libnetfilter-queue1 (the
# addon's NFQUEUE binding), CA certificates. npm, yarn and Node's headers are build tools.
# sidewall-caps: sidewall-proxy's capability launcher (README "Security"), setpriv with
# cap_net_admin in its permitted set only; setcap (libcap2-bin) is removed again.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables libnetfilter-queue1 ca-certificates libcap2-bin \
 && install -m 0755 /usr/bin/setpriv /usr/local/bin/sidewall-caps \
 && setcap cap_net_admin=p /usr/local/bin/sidewall-caps \
 && apt-get purge -y libcap2-bin \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /usr/share/doc /usr/share/man \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/bin/npm /usr/local/bin/npx \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* /usr/local/include/node \
 && (getent group 1337 >/dev/null || groupadd --gid 1337 sidewall) \
 && (getent passwd 1337 >/dev/null || useradd --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sidewall)
COPY --from=build /stage/ /
WORKDIR /opt/sidewall
ENV NODE_ENV=production
# The proxy's user; sidewall-init runs as root with NET_ADMIN and NET_RAW (the webhook's patch
# sets both users explicitly).
USER 1337:1337
ENTRYPOINT ["sidewall"]
