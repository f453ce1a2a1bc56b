#!/bin/sh
# local-base.sh TAG NODE_DIR: builds the Docker image TAG, a stand-in for node:24-bookworm
# where no registry can be reached, unless the daemon already has it (it is then reused):
# Debian bookworm by debootstrap from Debian's mirror, with the toolchain node-gyp needs,
# the official Node of NODE_DIR (scripts/fetch-node.sh: bin/node and the headers in
# include/node) in /usr/local, npm from the npm registry, and the user `node` (uid 1000) of
# the official images. This machine's CA bundle replaces Debian's, so that npm inside a
# build reaches the registry as npm here does.
#   sh scripts/docker/local-base.sh tsmaster-base:node24-bookworm "$(sh scripts/fetch-node.sh x64 24)"
set -eu
tag=$1 node_dir=$2
docker=${DOCKER:-docker}
if "$docker" image inspect "$tag" >/dev/null 2>&1; then exit 0; fi
mirror=$(sed -nE 's/^URIs: (http[^ ]*debian)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
cafile=/etc/ssl/certs/ca-certificates.crt
root=$(mktemp -d /var/tmp/tsmaster-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
# Debian's packages stay in the cache CI shares (scripts/fetch-node.sh's), for the next build.
if [ "$(id -u)" = 0 ]; then cache=${TSMASTER_CACHE:-/var/cache/tsmaster}; else cache=${TSMASTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tsmaster}; fi
mkdir -p "$cache/debootstrap"
debootstrap --variant=minbase --include=ca-certificates,python3,make,g++ --cache-dir="$cache/debootstrap" bookworm "$root" "$mirror" >&2
mkdir -p "$root/usr/local"
cp -a "$node_dir/bin" "$node_dir/include" "$root/usr/local/"
[ -f "$cafile" ] && cp "$cafile" "$root/etc/ssl/certs/ca-certificates.crt"
npm install --global --prefix "$root/usr/local" --no-audit --no-fund --loglevel=error npm@11 >&2
chroot "$root" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
tar -C "$root" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' - "$tag" >&2
