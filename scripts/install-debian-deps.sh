#!/usr/bin/env bash
# Installs the Debian packages sidewall's tests, demo and benchmarks use, when any is missing.
# Needs root (apt-get). Node.js >= 20.19 with npm must already be there. `--list` prints the list.
# The `image` set is what `npm run image` builds the OCI image with (`--list image`, `image`):
# mmdebstrap for the Debian root, buildah to assemble it, podman (with runc) to store and run it,
# binutils to strip the Node.js binary, libcap2-bin to give the proxy's launcher its capability.
# With no set named it installs both (`all`): `npm test` and `npm run demo` run the sidecar from
# the image, so they need the image's tools as well as the tests' peers and clients.
set -euo pipefail
set_name=all
[ "${1:-}" = "--list" ] && [ -n "${2:-}" ] && set_name=$2
[ "${1:-}" != "--list" ] && [ -n "${1:-}" ] && set_name=$1
case $set_name in
  tests|all) packages=(iptables nftables iproute2 util-linux procps curl socat netcat-openbsd openssl make g++ python3 libcap2-bin
    nghttp2-client dnsutils nginx-light haproxy wrk
    openssh-server openssh-client tinyproxy corkscrew httptunnel iodine openvpn shadowsocks-libev stunnel4
    dns2tcp sslh websockify proxytunnel ptunnel-ng
    libnetfilter-queue1 libnetfilter-queue-dev iputils-ping
    redis-server redis-tools postgresql postgresql-client mariadb-server mariadb-client tshark) ;;
  image) packages=() ;;
  *) echo "install-debian-deps.sh: unknown set '$set_name' (all, tests, image)" >&2; exit 2 ;;
esac
image_packages=(mmdebstrap buildah podman runc binutils openssl libcap2-bin)
[ "$set_name" = tests ] || packages+=("${image_packages[@]}")
if [ "${1:-}" = "--list" ]; then echo "${packages[*]}"; exit 0; fi
# Each package and one command that proves it is installed.
declare -A probe=([iptables]=iptables-restore [nftables]=nft [iproute2]=ip [util-linux]=setpriv [procps]=ps
  [curl]=curl [socat]=socat [netcat-openbsd]=nc [openssl]=openssl [make]=make [g++]=g++ [python3]=python3 [libcap2-bin]=setcap
  [nghttp2-client]=h2load [dnsutils]=dig [nginx-light]=nginx [haproxy]=haproxy [wrk]=wrk
  [openssh-server]=sshd [openssh-client]=ssh [tinyproxy]=tinyproxy [corkscrew]=corkscrew [httptunnel]=hts [iodine]=iodined [openvpn]=openvpn [shadowsocks-libev]=ss-server [stunnel4]=stunnel4
  [dns2tcp]=dns2tcpd [sslh]=sslh [websockify]=websockify [proxytunnel]=proxytunnel [ptunnel-ng]=ptunnel-ng
  [mmdebstrap]=mmdebstrap [buildah]=buildah [podman]=podman [runc]=runc [binutils]=strip
  [libnetfilter-queue1]=/usr/lib/x86_64-linux-gnu/libnetfilter_queue.so.1 [libnetfilter-queue-dev]=/usr/include/libnetfilter_queue/libnetfilter_queue.h
  [iputils-ping]=ping
  [redis-server]=redis-server [redis-tools]=redis-cli [postgresql]=/usr/lib/postgresql [postgresql-client]=psql
  [mariadb-server]=mariadbd [mariadb-client]=mariadb [tshark]=tshark)
missing=()
for p in "${packages[@]}"; do
  # A probe is a command, or (libraries, headers) an absolute path; libraries are looked up by dpkg
  # so any architecture's multiarch folder counts.
  case "${probe[$p]}" in
    /usr/lib/*) dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p") ;;
    /*) [ -e "${probe[$p]}" ] || missing+=("$p") ;;
    *) command -v "${probe[$p]}" >/dev/null 2>&1 || [ -x "/usr/sbin/${probe[$p]}" ] || missing+=("$p") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]}; as root run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
