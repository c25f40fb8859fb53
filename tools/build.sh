#!/usr/bin/env bash
# Build the Go tools the tests run (kube-apiserver, kube-controller-manager, etcd, registry)
# into a cache keyed by the version pinned in each tools/<module>/go.mod.
#
#   tools/build.sh kube|etcd|registry|all     (a binary name such as kube-apiserver also works)
#
# Cache: ${MIRROR_SYNTH_TOOLS_DIR:-$HOME/.cache/mirror-synth/tools}/<module>-<version>/
# A build writes into a temp dir beside the cache entry and renames it into place, so an
# interrupted build never leaves a half binary. Concurrent callers serialise on a lock file.
# The last lines of output are the binary paths, one per line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MIRROR_SYNTH_TOOLS_DIR:-$HOME/.cache/mirror-synth/tools}"

# module -> main module path whose version names the cache entry, and the packages to build
declare -A version_of=(
  [kube]=k8s.io/kubernetes
  [etcd]=go.etcd.io/etcd/server/v3
  [registry]=github.com/distribution/distribution/v3
)
declare -A packages_of=(
  [kube]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager"
  [etcd]="go.etcd.io/etcd/server/v3"
  [registry]="github.com/distribution/distribution/v3/cmd/registry"
)
# the binaries each module's build writes
declare -A binaries_of=(
  [kube]="kube-apiserver kube-controller-manager"
  [etcd]="etcd"
  [registry]="registry"
)

module_for() {
  case "$1" in
    kube | kube-apiserver | kube-controller-manager) echo kube ;;
    etcd) echo etcd ;;
    registry) echo registry ;;
    *) echo "usage: tools/build.sh kube|etcd|registry|all (got '$1')" >&2; exit 2 ;;
  esac
}

build() {
  local mod="$1" dir="$here/$1" version dest tmp start
  # the same 'require <module> <version>' line test/support/tools.ts reads
  version="$(awk -v m="${version_of[$mod]}" '$1 == m { print $2 } $1 == "require" && $2 == m { print $3 }' "$dir/go.mod" | head -1)"
  [[ -n "$version" ]] || { echo "$dir/go.mod: no 'require ${version_of[$mod]} <version>' line" >&2; exit 1; }
  dest="$cache/$mod-$version"
  mkdir -p "$cache"

  exec 9>"$cache/.$mod-$version.lock"
  flock 9
  if [[ ! -d "$dest" ]]; then
    command -v go >/dev/null || { echo "tools/build.sh: Go (1.25 or later) must be on PATH to build $mod" >&2; exit 1; }
    echo "building $mod $version into $dest (a cold build can take many minutes)" >&2
    tmp="$(mktemp -d "$cache/.$mod-$version.tmp.XXXXXX")"
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
    local ldflags="-s -w" out="$tmp/"
    if [[ "$mod" == kube ]]; then
      # what the Kubernetes release build stamps, so /version reports the real version
      local v="${version#v}" mv=k8s.io/component-base/version
      ldflags+=" -X $mv.gitVersion=$version -X $mv.gitMajor=${v%%.*} -X $mv.gitMinor=$(echo "$v" | cut -d. -f2)"
      ldflags+=" -X $mv.gitTreeState=clean -X $mv.buildDate=1970-01-01T00:00:00Z"
    fi
    # a module-root main package would be named "v3" after its import path
    [[ "$mod" == etcd ]] && out="$tmp/etcd"
    # shellcheck disable=SC2086
    (cd "$dir" && CGO_ENABLED=0 exec go build -trimpath "-ldflags=$ldflags" -o "$out" ${packages_of[$mod]}) 9>&- &
    gobuild=$!
    wait "$gobuild"
    gobuild=""
    kill "$heartbeat" 2>/dev/null || true
    wait "$heartbeat" 2>/dev/null || true
    heartbeat=""
    chmod 755 "$tmp"
    mv "$tmp" "$dest"
    trap - EXIT INT TERM HUP
    echo "built $mod $version in $((SECONDS - start)) s" >&2
  fi
  flock -u 9
  for b in ${binaries_of[$mod]}; do echo "$dest/$b"; done
}

[[ $# -eq 1 ]] || { echo "usage: tools/build.sh kube|etcd|registry|all" >&2; exit 2; }
if [[ "$1" == all ]]; then
  for m in etcd kube registry; do build "$m"; done
else
  build "$(module_for "$1")"
fi
