#!/usr/bin/env bash
# Build the Go tools the tests run into a cache keyed by the version pinned in each
# tools/<module>/go.mod.
#
#   tools/build.sh [-j N] MODULE... | all
#
#   kube         kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#                                                          (k8s.io/kubernetes)
#   etcd         etcd                                      (go.etcd.io/etcd/server/v3)
#   registry     registry                                  (github.com/distribution/distribution/v3)
#   containerd   containerd, ctr, containerd-shim-runc-v2  (github.com/containerd/containerd/v2)
#   prometheus   prometheus, promtool                      (github.com/prometheus/prometheus)
#   helm         helm                                      (helm.sh/helm/v3)
#   cri-pull     cri-pull, a CRI client of ours            (k8s.io/cri-api)
#   mtail        mtail, the front's log-to-metrics exporter (github.com/google/mtail)
#   kustomize    kustomize, as `kubectl apply -k` embeds it (sigs.k8s.io/kustomize/kustomize/v5)
#   prometheus-operator
#                crds/: the operator's CRDs, copied from its module, nothing compiled
#                                                          (github.com/prometheus-operator/prometheus-operator)
#   kube-state-metrics
#                kube-state-metrics                        (k8s.io/kube-state-metrics/v2)
#   node-exporter
#                node_exporter                             (github.com/prometheus/node_exporter)
#   cni          bridge, host-local, loopback, portmap     (github.com/containernetworking/plugins)
#   coredns      coredns, with the plugins the e2e node's Corefile uses (github.com/coredns/coredns)
#   pause        pause, the e2e node's Pod sandbox binary  (tools/pause, by its golang.org/x/sys)
#   seaweedfs    weed, an S3 server for spec.objectStorage (github.com/seaweedfs/seaweedfs)
#   cosign       cosign, signs and verifies the release image and its SBOM (github.com/sigstore/cosign/v2)
#   all          every module above: what the test suites need
#
# A binary name (kube-apiserver, ctr, promtool, ...) also names its module. Modules that are
# not cached yet are built N at a time (-j, or MIRROR_SYNTH_TOOLS_JOBS; default 2: one link
# overlaps the other's compile on a 2-core machine). Progress goes to stderr, one line per
# event and a heartbeat every 30 s, prefixed with the module when several are asked for.
#
# Cache: ${MIRROR_SYNTH_TOOLS_DIR:-$HOME/.cache/mirror-synth/tools}/<module>-<version>[-src<hash>]/
# A build writes into a temp dir beside the cache entry and renames it into place, so an
# interrupted build never leaves a half binary. Concurrent callers serialise on a lock file
# per module. When every build succeeded, stdout has the binary paths, one per line, in the
# order the modules were asked for.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MIRROR_SYNTH_TOOLS_DIR:-$HOME/.cache/mirror-synth/tools}"
all_modules=(etcd kube registry containerd prometheus helm cri-pull kustomize prometheus-operator mtail kube-state-metrics node-exporter cni coredns pause seaweedfs cosign)

# module -> main module path whose version names the cache entry, and the packages to build
declare -A version_of=(
  [kube]=k8s.io/kubernetes
  [etcd]=go.etcd.io/etcd/server/v3
  [registry]=github.com/distribution/distribution/v3
  [containerd]=github.com/containerd/containerd/v2
  [prometheus]=github.com/prometheus/prometheus
  [helm]=helm.sh/helm/v3
  [cri-pull]=k8s.io/cri-api
  [kustomize]=sigs.k8s.io/kustomize/kustomize/v5
  [mtail]=github.com/google/mtail
  [prometheus-operator]=github.com/prometheus-operator/prometheus-operator
  [kube-state-metrics]=k8s.io/kube-state-metrics/v2
  [node-exporter]=github.com/prometheus/node_exporter
  [cni]=github.com/containernetworking/plugins
  [coredns]=github.com/coredns/coredns
  [pause]=golang.org/x/sys
  [seaweedfs]=github.com/seaweedfs/seaweedfs
  [cosign]=github.com/sigstore/cosign/v2
)
declare -A packages_of=(
  [kube]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy"
  [etcd]="go.etcd.io/etcd/server/v3"
  [registry]="github.com/distribution/distribution/v3/cmd/registry"
  [containerd]="github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
  [prometheus]="github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool"
  [helm]="helm.sh/helm/v3/cmd/helm"
  [cri-pull]="."
  [kustomize]="sigs.k8s.io/kustomize/kustomize/v5"
  [mtail]="github.com/google/mtail/cmd/mtail"
  [kube-state-metrics]="k8s.io/kube-state-metrics/v2"
  [node-exporter]="github.com/prometheus/node_exporter"
  [cni]="github.com/containernetworking/plugins/plugins/main/bridge github.com/containernetworking/plugins/plugins/ipam/host-local github.com/containernetworking/plugins/plugins/main/loopback github.com/containernetworking/plugins/plugins/meta/portmap"
  [coredns]="."
  [pause]="."
  [seaweedfs]="github.com/seaweedfs/seaweedfs/weed"
  [cosign]="github.com/sigstore/cosign/v2/cmd/cosign"
)
# the binaries each module's build writes
declare -A binaries_of=(
  [kube]="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
  [etcd]="etcd"
  [registry]="registry"
  [containerd]="containerd ctr containerd-shim-runc-v2"
  [prometheus]="prometheus promtool"
  [helm]="helm"
  [cri-pull]="cri-pull"
  [kustomize]="kustomize"
  [mtail]="mtail"
  [prometheus-operator]="crds"
  [kube-state-metrics]="kube-state-metrics"
  [node-exporter]="node_exporter"
  [cni]="bridge host-local loopback portmap"
  [coredns]="coredns"
  [pause]="pause"
  [seaweedfs]="weed"
  [cosign]="cosign"
)
# Go build tags. containerd: every plugin that builds without cgo (btrfs needs cgo and drops
# out by itself). prometheus: file and HTTP service discovery only (the tests use static and
# file targets), which halves the build; the web UI is not embedded, the API is all the tests use.
declare -A tags_of=(
  [prometheus]="remove_all_sd"
)

usage() {
  echo "usage: tools/build.sh [-j N] kube|etcd|registry|containerd|prometheus|helm|cri-pull|kustomize|prometheus-operator|mtail|kube-state-metrics|node-exporter|cni|coredns|pause|seaweedfs|cosign|all ..." >&2
  exit 2
}

module_for() {
  case "$1" in
    kube | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy) echo kube ;;
    etcd) echo etcd ;;
    registry) echo registry ;;
    containerd | ctr | containerd-shim-runc-v2) echo containerd ;;
    prometheus | promtool) echo prometheus ;;
    helm) echo helm ;;
    cri-pull) echo cri-pull ;;
    kustomize) echo kustomize ;;
    mtail) echo mtail ;;
    prometheus-operator | crds) echo prometheus-operator ;;
    kube-state-metrics) echo kube-state-metrics ;;
    node-exporter | node_exporter) echo node-exporter ;;
    cni | bridge | host-local | loopback | portmap) echo cni ;;
    coredns) echo coredns ;;
    pause) echo pause ;;
    seaweedfs | weed) echo seaweedfs ;;
    cosign) echo cosign ;;
    *) echo "tools/build.sh: unknown module or binary '$1'" >&2; usage ;;
  esac
}

# the version of the module tools/<mod>/go.mod pins: the same 'require <module> <version>'
# line test/support/tools.ts reads
version_for() {
  local mod="$1" version
  version="$(awk -v m="${version_of[$mod]}" '$1 == m { print $2 } $1 == "require" && $2 == m { print $3 }' "$here/$mod/go.mod" | head -1)"
  [[ -n "$version" ]] || { echo "$here/$mod/go.mod: no 'require ${version_of[$mod]} <version>' line" >&2; return 1; }
  echo "$version"
}

# the cache entry of a module: <module>-<version>, plus -src<hash> of its files when tools/<mod>
# holds Go source of ours (coredns's plugin list, cri-pull, pause), so editing that source
# rebuilds it. test/support/tools.ts computes the same name.
entry_for() {
  local mod="$1" dir="$here/$1" version f
  version="$(version_for "$mod")" || return 1
  # tools.go only pins the module (go.mod names the version): nothing of ours is built
  if [[ -z "$(find "$dir" -maxdepth 1 -name '*.go' ! -name tools.go -print -quit)" ]]; then
    echo "$mod-$version"
    return
  fi
  echo "$mod-$version-src$(
    cd "$dir" && for f in $(LC_ALL=C ls); do
      [[ -f $f && ! -L $f ]] && printf '%s\n%s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
    done | sha256sum | cut -c1-12
  )"
}

# what each project's own release build stamps, so `<tool> --version` reports the real version
ldflags_for() {
  local mod="$1" version="$2" v="${2#v}" ldflags="-s -w"
  case "$mod" in
    kube)
      local mv=k8s.io/component-base/version
      ldflags+=" -X $mv.gitVersion=$version -X $mv.gitMajor=${v%%.*} -X $mv.gitMinor=$(echo "$v" | cut -d. -f2)"
      ldflags+=" -X $mv.gitTreeState=clean -X $mv.buildDate=1970-01-01T00:00:00Z"
      ;;
    containerd)
      local p=github.com/containerd/containerd/v2/version
      ldflags+=" -X $p.Version=$version -X $p.Package=github.com/containerd/containerd/v2"
      ;;
    prometheus)
      # v0.316.0 is the Go module version of Prometheus 3.16.0
      local p=github.com/prometheus/common/version minor
      minor="$(echo "$v" | cut -d. -f2)"
      ldflags+=" -X $p.Version=3.${minor#3}.$(echo "$v" | cut -d. -f3) -X $p.Branch=HEAD -X $p.Revision=unknown"
      ldflags+=" -X $p.BuildUser=mirror-synth -X $p.BuildDate=19700101-00:00:00"
      ;;
    mtail)
      # the release this commit equals (see tools/mtail/go.mod)
      ldflags+=" -X main.Version=v3.0.9 -X main.Branch=main -X main.Revision=${version##*-}"
      ;;
    node-exporter)
      local p=github.com/prometheus/common/version
      ldflags+=" -X $p.Version=$v -X $p.Branch=HEAD -X $p.Revision=unknown"
      ldflags+=" -X $p.BuildUser=mirror-synth -X $p.BuildDate=19700101-00:00:00"
      ;;
    kustomize)
      ldflags+=" -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$version"
      ldflags+=" -X sigs.k8s.io/kustomize/api/provenance.buildDate=1970-01-01T00:00:00Z"
      ;;
    helm)
      ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      ;;
    cosign)
      # as its Makefile does, so `cosign version` reports the release
      ldflags+=" -X sigs.k8s.io/release-utils/version.gitVersion=$version -X sigs.k8s.io/release-utils/version.gitTreeState=clean"
      ;;
    kube-state-metrics)
      # as its Makefile does, with the client-go version this module resolves
      local p=github.com/prometheus/common/version client_go
      client_go="$(awk '$1 == "k8s.io/client-go" { print $2 }' "$here/$mod/go.mod")"
      ldflags+=" -X $p.Version=$version -X $p.Branch=HEAD -X $p.Revision=unknown"
      ldflags+=" -X $p.BuildUser=mirror-synth -X $p.BuildDate=19700101-00:00:00"
      ldflags+=" -X k8s.io/kube-state-metrics/v2/pkg/app.ClientGoVersion=$client_go"
      ;;
  esac
  echo "$ldflags"
}

# whether a cache entry holds every binary the module builds today (an entry cached before a
# binary was added to the module is rebuilt; Go's build cache makes that quick)
complete() {
  local b
  [[ -d "$2" ]] || return 1
  for b in ${binaries_of[$1]}; do [[ -e "$2/$b" ]] || return 1; done
}

# Build one module into the cache unless it is there. Runs in its own subshell (its traps
# and lock fd are its own).
build() {
  local mod="$1" dir="$here/$1" version entry dest tmp start
  version="$(version_for "$mod")"
  entry="$(entry_for "$mod")"
  dest="$cache/$entry"
  mkdir -p "$cache"

  exec 9>"$cache/.$entry.lock"
  if ! flock -n 9; then
    echo "waiting for another build of $mod $version to finish" >&2
    flock 9
  fi
  if complete "$mod" "$dest"; then
    flock -u 9
    return 0
  fi
  command -v go >/dev/null || { echo "tools/build.sh: Go (1.26 or later) must be on PATH to build $mod" >&2; exit 1; }
  echo "building $mod $version into $dest (a cold build can take many minutes)" >&2
  tmp="$(mktemp -d "$cache/.$entry.tmp.XXXXXX")"
  start=$SECONDS
  # Go and the heartbeat run in the background so a signal stops the build at once;
  # the EXIT trap then kills them and removes the temp dir.
  local heartbeat="" gobuild=""
  # shellcheck disable=SC2064
  trap "kill \$heartbeat \$gobuild 2>/dev/null; rm -rf '$tmp'" EXIT
  trap 'exit 130' INT TERM HUP
  (
    trap 'kill $! 2>/dev/null; exit 0' TERM
    while :; do
      sleep 30 &
      wait $!
      echo "still building $mod $version ($((SECONDS - start)) s)" >&2
    done
  ) 9>&- &
  heartbeat=$!
  local ldflags out="$tmp/"
  ldflags="$(ldflags_for "$mod" "$version")"
  # a module-root main package would be named "v3" after its import path
  [[ "$mod" == etcd ]] && out="$tmp/etcd"
  [[ "$mod" == kube-state-metrics ]] && out="$tmp/kube-state-metrics"
  if [[ "$mod" == prometheus-operator ]]; then
    # files, not a build: the CRDs as the operator's release ships them
    (cd "$dir" && src="$(go mod download -json "${version_of[$mod]}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')" &&
      [[ -n "$src" ]] && cp -r "$src/example/prometheus-operator-crd" "$tmp/crds" && chmod -R u+w "$tmp/crds") 9>&- &
  else
  # shellcheck disable=SC2086
  (cd "$dir" && CGO_ENABLED=0 exec go build -trimpath -tags "${tags_of[$mod]:-}" "-ldflags=$ldflags" -o "$out" ${packages_of[$mod]}) 9>&- &
  fi
  gobuild=$!
  wait "$gobuild"
  gobuild=""
  kill "$heartbeat" 2>/dev/null || true
  wait "$heartbeat" 2>/dev/null || true
  heartbeat=""
  chmod 755 "$tmp"
  # an entry from before this module built more binaries is replaced whole
  [[ -d "$dest" ]] && rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT INT TERM HUP
  echo "built $mod $version in $((SECONDS - start)) s" >&2
  flock -u 9
}

jobs="${MIRROR_SYNTH_TOOLS_JOBS:-2}"
while getopts "j:" opt; do
  case "$opt" in
    j) jobs="$OPTARG" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || usage
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "tools/build.sh: -j wants a positive number, got '$jobs'" >&2; exit 2; }

# the modules asked for, in order, each once
modules=()
declare -A seen=()
for arg in "$@"; do
  if [[ "$arg" == all ]]; then names=("${all_modules[@]}"); else names=("$(module_for "$arg")"); fi
  for m in "${names[@]}"; do
    [[ -n "${seen[$m]:-}" ]] && continue
    seen[$m]=1
    modules+=("$m")
  done
done

# the ones not cached yet
todo=()
for m in "${modules[@]}"; do
  complete "$m" "$cache/$(entry_for "$m")" || todo+=("$m")
done

if ((${#todo[@]} == 1)); then
  (build "${todo[0]}")
elif ((${#todo[@]} > 1)); then
  echo "building ${#todo[@]} modules, $jobs at a time: ${todo[*]}" >&2
  declare -A pid_of=()
  running=()
  failed=()
  # shellcheck disable=SC2317 # reached through the trap
  stop_all() {
    for p in "${running[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait
    exit 130
  }
  trap stop_all INT TERM HUP
  reap() {
    # wait for any one build and drop it from the running list
    local done_pid="" status=0 p still=()
    wait -n -p done_pid "${running[@]}" || status=$?
    [[ -n "$done_pid" ]] || return 0
    ((status == 0)) || failed+=("${pid_of[$done_pid]}")
    for p in "${running[@]}"; do [[ "$p" == "$done_pid" ]] || still+=("$p"); done
    running=("${still[@]}")
  }
  for m in "${todo[@]}"; do
    while ((${#running[@]} >= jobs)); do reap; done
    # every line of the build (Go's included) carries the module name
    (build "$m") > >(sed -u "s/^/[$m] /" >&2) 2>&1 &
    pid_of[$!]=$m
    running+=("$!")
  done
  while ((${#running[@]} > 0)); do reap; done
  trap - INT TERM HUP
  if ((${#failed[@]} > 0)); then
    echo "tools/build.sh: failed to build: ${failed[*]}" >&2
    exit 1
  fi
  echo "built ${todo[*]}" >&2
fi

for m in "${modules[@]}"; do
  dest="$cache/$(entry_for "$m")"
  for b in ${binaries_of[$m]}; do
    [[ -x "$dest/$b" ]] || { echo "tools/build.sh: $dest/$b is missing" >&2; exit 1; } # a binary, or crds/
    echo "$dest/$b"
  done
done
