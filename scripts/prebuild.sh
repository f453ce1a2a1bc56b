#!/bin/sh
# Builds the prebuilt addons the package carries (run by `npm pack` through `prepack`):
# native/prebuilds/linux-x64/node.glibc.node and linux-arm64/..., one N-API build per
# arch that every Node since 16 loads. prebuildify names them as node-gyp-build looks them up
# (src/native/index.ts); the arch that is not this machine's is cross-compiled with Debian's
# cross g++ (g++-aarch64-linux-gnu or g++-x86-64-linux-gnu) against the headers of that
# arch's Node 24 from the npm registry (scripts/fetch-node.sh). The sources are copied to a
# temp dir first, so the dev build in native/build is never replaced by another arch's.
# Nothing is rebuilt while the sources are unchanged (native/prebuilds/.stamp).
# PREBUILD_ARCHS="x64 arm64" by default.
set -eu
cd "$(dirname "$0")/.."
archs=${PREBUILD_ARCHS:-x64 arm64}
out=native/prebuilds
host=$(node -p process.arch)

stamp=$(cat native/*.cc native/*.h native/binding.gyp scripts/prebuild.sh node_modules/node-addon-api/package.json \
  | sha256sum | cut -d' ' -f1)
stamp="$stamp $archs"
fresh=1
for arch in $archs; do [ -f "$out/linux-$arch/node.glibc.node" ] || fresh=0; done
if [ "$fresh" = 1 ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "prebuild: $out is up to date ($archs)"
  exit 0
fi

gyp=${npm_config_node_gyp:-$(dirname "$(dirname "$(realpath "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
for arch in $archs; do
  case $arch in
    x64) triplet=x86_64-linux-gnu ;;
    arm64) triplet=aarch64-linux-gnu ;;
    *) echo "prebuild: no cross toolchain known for $arch" >&2; exit 1 ;;
  esac
  cross=
  if [ "$arch" != "$host" ]; then
    cross=$triplet-
    command -v "${cross}g++" >/dev/null || { echo "prebuild: ${cross}g++ is missing (apt-get install g++-$(echo "$triplet" | tr _ -))" >&2; exit 1; }
  fi
  nodedir=$(sh scripts/fetch-node.sh "$arch" 24)
  rm -rf "$work/src" && mkdir "$work/src" && cp native/*.cc native/*.h native/binding.gyp "$work/src/"
  echo "prebuild: linux-$arch (${cross:-native} g++, headers of $("$nodedir/bin/node" -v 2>/dev/null || echo "node-linux-$arch@24"))"
  # NODE_PATH: binding.gyp asks node for node-addon-api's include dir from the temp dir.
  NODE_PATH="$PWD/node_modules" npm_config_nodedir=$nodedir \
    CC=${cross}gcc CXX=${cross}g++ LINK=${cross}g++ AR=${cross}ar \
    node node_modules/prebuildify/bin.js --napi --strip --strip-bin "${cross}strip" --tag-libc \
      --arch "$arch" --node-gyp "$gyp" --cwd "$work/src" --out "$PWD/native" --cache "$work/gyp" --quiet
  [ -f "$out/linux-$arch/node.glibc.node" ] || { echo "prebuild: no $out/linux-$arch/node.glibc.node" >&2; exit 1; }
done
echo "$stamp" > "$out/.stamp"
ls -l "$out"/*/
