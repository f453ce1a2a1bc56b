#!/bin/sh
# fetch-node.sh ARCH MAJOR: prints the directory of an official Node build (bin/node and
# include/node, the headers node-gyp wants as npm_config_nodedir), fetched once from the npm
# registry as node-linux-ARCH@MAJOR and kept in $TSMASTER_CACHE: /var/cache/tsmaster for root
# (world-readable, since tests run the same Node as nobody), else ~/.cache/tsmaster.
# Used by .ci/run (the Nodes CI runs), scripts/prebuild.sh (headers of the arm64 build) and
# the tests that load the addon on each Node (test/helpers/nodes.ts finds the same dirs).
set -eu
arch=$1 major=$2
if [ "$(id -u)" = 0 ]; then default=/var/cache/tsmaster; else default=${XDG_CACHE_HOME:-$HOME/.cache}/tsmaster; fi
cache=${TSMASTER_CACHE:-$default}
dir=$cache/nodes/$arch-$major
pkg=$dir/node_modules/node-linux-$arch
if [ ! -x "$pkg/bin/node" ]; then
  mkdir -p "$dir"
  # --force: the package declares cpu=ARCH, which is the point when it is not this machine's.
  npm install --prefix "$dir" --no-save --no-audit --no-fund --no-package-lock --force --loglevel=error \
    "node-linux-$arch@$major" >&2
  [ -x "$pkg/bin/node" ] || { echo "fetch-node: no $pkg/bin/node after npm install" >&2; exit 1; }
fi
echo "$pkg"
