#!/bin/sh
# Install the Debian packages in scripts/test-deps.txt that are not installed yet.
# Needs root (CI runs as root). A policy-rc.d that exits 101 stops apt from starting
# containerd (or any other service) as a side effect of installing it; an existing
# policy-rc.d is left alone.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
deps=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/test-deps.txt")

missing=
for pkg in $deps; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $pkg"
  fi
done
if [ -z "$missing" ]; then
  echo "test deps: all installed ($(echo $deps))"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "test deps missing:$missing; run as root: sh scripts/install-test-deps.sh" >&2
  exit 1
fi

if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
fi

echo "test deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
