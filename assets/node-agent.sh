#!/bin/sh
# mirror-synth node agent: points this node's containerd at an in-cluster registry mirror.
#
# For each registry host in HOSTS it writes CERTS_DIR/<host>/hosts.toml: the mirror first,
# the upstream (SERVER_URL) as `server`, which containerd tries last. containerd re-reads
# certs.d on every pull when its CRI registry config_path points at /etc/containerd/certs.d.
#
# Files are replaced atomically (temp file + rename in the same directory). A hosts.toml
# this agent did not write is kept as hosts.toml.mirror-synth-backup and put back on
# SIGTERM/SIGINT, so removing the mirror leaves the node as the agent found it.
#
# Environment:
#   HOSTS             space-separated registry hosts to configure (e.g. "docker.io")
#   SERVER_URL        upstream URL containerd falls back to (e.g. https://registry-1.docker.io)
#   SERVICE_NAME      DNS name of the mirror Service
#   SERVICE_HOST_VAR  name of the env var Kubernetes sets to the Service's ClusterIP (fallback)
#   SERVICE_PORT      mirror port (default 5000)
#   CERTS_DIR         the node's certs.d as mounted in the pod (default /host/etc/containerd/certs.d)
#   RESOLVE_INTERVAL  seconds between address look-ups (default 60)
#   MIRROR_ADDRESS    use this address instead of looking one up (static set-ups, tests)
#   MIRROR_NAME       for log lines only
set -u

CERTS_DIR=${CERTS_DIR:-/host/etc/containerd/certs.d}
SERVICE_PORT=${SERVICE_PORT:-5000}
RESOLVE_INTERVAL=${RESOLVE_INTERVAL:-60}
MIRROR_ADDRESS=${MIRROR_ADDRESS:-}
SERVICE_NAME=${SERVICE_NAME:-}
SERVICE_HOST_VAR=${SERVICE_HOST_VAR:-}
MIRROR_NAME=${MIRROR_NAME:-mirror}
BACKUP=hosts.toml.mirror-synth-backup
CREATED=.mirror-synth-created
MARKER="# Written by the mirror-synth node agent"

log() {
  printf 'time=%s level=%s mirror=%s msg="%s"\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$MIRROR_NAME" "$2" >&2
}

fail() {
  log error "$1"
  exit 1
}

[ -n "${HOSTS:-}" ] || fail "HOSTS is not set"
[ -n "${SERVER_URL:-}" ] || fail "SERVER_URL is not set"
[ -d "$CERTS_DIR" ] || fail "$CERTS_DIR does not exist: is /etc/containerd/certs.d mounted?"

# Print the mirror's address, or nothing when it cannot be found yet.
resolve() {
  if [ -n "$MIRROR_ADDRESS" ]; then
    printf '%s\n' "$MIRROR_ADDRESS"
    return
  fi
  addr=
  if [ -n "$SERVICE_NAME" ]; then
    if command -v getent >/dev/null 2>&1; then
      addr=$(getent hosts "$SERVICE_NAME" 2>/dev/null | awk 'NR == 1 { print $1 }')
    else
      # busybox nslookup: the answer's "Address" lines follow the "Name:" line.
      addr=$(nslookup "$SERVICE_NAME" 2>/dev/null | awk '/^Name:/ { found = 1; next } found && /^Address/ { print $NF; exit }')
    fi
  fi
  if [ -z "$addr" ] && [ -n "$SERVICE_HOST_VAR" ]; then
    addr=$(eval "printf '%s' \"\${$SERVICE_HOST_VAR:-}\"")
  fi
  printf '%s\n' "$addr"
}

# hosts.toml for one registry host, mirror first, upstream as server.
render() {
  case "$1" in
    *:*) url_host="[$1]" ;;
    *) url_host=$1 ;;
  esac
  printf '%s (mirror %s). Restored when the agent stops.\n' "$MARKER" "$MIRROR_NAME"
  printf 'server = "%s"\n\n' "$SERVER_URL"
  printf '[host."http://%s:%s"]\n' "$url_host" "$SERVICE_PORT"
  printf '  capabilities = ["pull", "resolve"]\n'
}

is_ours() {
  [ -f "$1" ] && head -n 1 "$1" | grep -q "^$MARKER"
}

# Write one host's hosts.toml if its content changed. $1 host, $2 address.
install_host() {
  dir=$CERTS_DIR/$1
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir" || return 1
    : >"$dir/$CREATED"
  fi
  target=$dir/hosts.toml
  if [ -f "$target" ] && ! is_ours "$target" && [ ! -f "$dir/$BACKUP" ]; then
    cp -p "$target" "$dir/$BACKUP" || return 1
    log info "kept the existing $target as $BACKUP"
  fi
  tmp=$dir/.hosts.toml.tmp.$$
  render "$2" >"$tmp" || { rm -f "$tmp"; return 1; }
  if [ -f "$target" ] && cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
    return 0
  fi
  chmod 0644 "$tmp" && mv -f "$tmp" "$target" || { rm -f "$tmp"; return 1; }
  log info "wrote $target pointing $1 at $2:$SERVICE_PORT"
}

restore() {
  for host in $HOSTS; do
    dir=$CERTS_DIR/$host
    [ -d "$dir" ] || continue
    rm -f "$dir"/.hosts.toml.tmp.*
    if [ -f "$dir/$BACKUP" ]; then
      mv -f "$dir/$BACKUP" "$dir/hosts.toml" && log info "restored the original $dir/hosts.toml"
    elif is_ours "$dir/hosts.toml"; then
      rm -f "$dir/hosts.toml" && log info "removed $dir/hosts.toml"
    fi
    if [ -f "$dir/$CREATED" ]; then
      rm -f "$dir/$CREATED"
      rmdir "$dir" 2>/dev/null || true
    fi
  done
}

on_signal() {
  [ -n "${sleeper:-}" ] && kill "$sleeper" 2>/dev/null
  restore
  log info "stopped"
  exit 0
}
trap on_signal TERM INT

log info "starting for hosts: $HOSTS"
while :; do
  address=$(resolve)
  if [ -z "$address" ]; then
    log warn "cannot resolve the mirror address yet; retrying in ${RESOLVE_INTERVAL}s"
  else
    for host in $HOSTS; do
      install_host "$host" "$address" || log error "could not write $CERTS_DIR/$host/hosts.toml"
    done
  fi
  sleep "$RESOLVE_INTERVAL" &
  sleeper=$!
  wait "$sleeper"
  sleeper=
done
