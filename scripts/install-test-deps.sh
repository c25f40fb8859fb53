#!/bin/sh
# Install the Debian packages in a list file that are not installed yet:
#   sh scripts/install-test-deps.sh [list]   (default scripts/test-deps.txt; e.g. scripts/bench-deps.txt)
# Needs root (CI runs as root). A policy-rc.d that exits 101 stops apt from starting
# containerd (or any other service) as a side effect of installing it; an existing
# policy-rc.d is left alone.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
list=${1:-$here/test-deps.txt}
[ -r "$list" ] || { echo "install-test-deps: cannot read package list '$list'" >&2; exit 1; }
deps=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list")
name=$(basename "$list" .txt)

missing=
for pkg in $deps; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $pkg"
  fi
done
if [ -z "$missing" ]; then
  echo "$name: all installed ($(echo $deps))"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "$name missing:$missing; run as root: sh scripts/install-test-deps.sh $list" >&2
  exit 1
fi

if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
fi

echo "$name: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
