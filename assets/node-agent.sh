#!/bin/sh
# mirror-synth node agent: points this node's container runtime at an in-cluster registry mirror.
#
# NODE_RUNTIME picks what it writes into CONFIG_DIR, the one host directory the pod mounts:
#   containerd, k3s, rke2  CONFIG_DIR/<host>/hosts.toml for each host in HOSTS: the mirror first,
#                          the upstream (SERVER_URL) as `server`, which containerd tries last.
#                          containerd re-reads certs.d on every pull when its CRI registry
#                          config_path points there (k3s and rke2 set it to their own certs.d).
#   cri-o                  CONFIG_DIR/50-mirror-synth-<MIRROR_NAME>.conf, a containers-registries.conf(5)
#                          v2 drop-in: one [[registry]] per host with the upstream as location and the
#                          mirror as an insecure [[registry.mirror]], which CRI-O and Podman try first.
#
# Files are replaced atomically (temp file + rename in the same directory; temp names never end
# in .conf, so CRI-O's drop-in watcher and loader ignore them). A file this agent did not write is
# kept as <file>.mirror-synth-backup (refreshed if someone else rewrites it, as k3s and rke2 do on
# restart) and put back on SIGTERM/SIGINT, so removing the mirror leaves the node as found.
# The agent checks every RESOLVE_INTERVAL and rewrites what is missing or changed.
#
# Environment:
#   NODE_RUNTIME      containerd (default), k3s, rke2 or cri-o
#   HOSTS             space-separated registry hosts: the upstream as it appears in image
#                     references first (CRI-O's fallback location), then any alias (masqueradeUrl)
#   SERVER_URL        upstream URL containerd falls back to (e.g. https://registry-1.docker.io)
#   SERVICE_NAME      DNS name of the mirror Service
#   SERVICE_HOST_VAR  name of the env var Kubernetes sets to the Service's ClusterIP (fallback)
#   SERVICE_PORT      mirror port (default 5000)
#   CONFIG_DIR        the node's directory as mounted in the pod
#   RESOLVE_INTERVAL  seconds between checks (default 60)
#   MIRROR_ADDRESS    use this address instead of looking one up (static set-ups, tests)
#   MIRROR_NAME       the mirror's name: log lines and the CRI-O drop-in's file name
#   PULL_FROM_MIRROR  all (default): tags and digests through the mirror (containerd capabilities
#                     pull and resolve); digest-only: only content by digest (capability pull, so
#                     containerd looks tags up at SERVER_URL; CRI-O's pull-from-mirror = "digest-only",
#                     so a pull by tag does not use the mirror at all). A file left behind by a killed
#                     agent then never answers a tag, and a dead address costs only a fallback.
set -u

NODE_RUNTIME=${NODE_RUNTIME:-containerd}
SERVICE_PORT=${SERVICE_PORT:-5000}
RESOLVE_INTERVAL=${RESOLVE_INTERVAL:-60}
MIRROR_ADDRESS=${MIRROR_ADDRESS:-}
SERVICE_NAME=${SERVICE_NAME:-}
SERVICE_HOST_VAR=${SERVICE_HOST_VAR:-}
MIRROR_NAME=${MIRROR_NAME:-mirror}
PULL_FROM_MIRROR=${PULL_FROM_MIRROR:-all}
BACKUP_SUFFIX=.mirror-synth-backup
CREATED=.mirror-synth-created
MARKER="# Written by the mirror-synth node agent"

log() {
  printf 'time=%s level=%s mirror=%s msg="%s"\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$MIRROR_NAME" "$2" >&2
}

fail() {
  log error "$1"
  exit 1
}

# Everything below lands in file names or TOML strings: accept only what those can hold.
case $NODE_RUNTIME in
  containerd | k3s | rke2) FORMAT=hosts.toml ;;
  cri-o) FORMAT=registries.conf ;;
  *) fail "NODE_RUNTIME must be one of containerd, k3s, rke2, cri-o; got '$NODE_RUNTIME'" ;;
esac
case $PULL_FROM_MIRROR in
  all) CAPABILITIES='"pull", "resolve"' ;;
  digest-only) CAPABILITIES='"pull"' ;;
  *) fail "PULL_FROM_MIRROR must be all or digest-only; got '$PULL_FROM_MIRROR'" ;;
esac
case $MIRROR_NAME in
  '' | [!a-z0-9]* | *[!a-z0-9.-]*) fail "MIRROR_NAME must be a Kubernetes object name; got '$MIRROR_NAME'" ;;
esac
[ -n "${HOSTS:-}" ] || fail "HOSTS is not set"
for host in $HOSTS; do
  case $host in
    [!A-Za-z0-9]* | *[!A-Za-z0-9.:-]* | *..*) fail "HOSTS: '$host' is not a registry host[:port]" ;;
  esac
done
[ -n "${SERVER_URL:-}" ] || fail "SERVER_URL is not set"
case $SERVER_URL in
  https://*) case ${SERVER_URL#https://} in '' | [!A-Za-z0-9]* | *[!A-Za-z0-9.:-]*) fail "SERVER_URL must be https://<host>[:port]; got '$SERVER_URL'" ;; esac ;;
  *) fail "SERVER_URL must be https://<host>[:port]; got '$SERVER_URL'" ;;
esac
case $SERVICE_HOST_VAR in
  '') ;;
  [0-9]* | *[!A-Za-z0-9_]*) fail "SERVICE_HOST_VAR must be an environment variable name; got '$SERVICE_HOST_VAR'" ;;
esac
case $SERVICE_PORT in '' | *[!0-9]*) fail "SERVICE_PORT must be a port number; got '$SERVICE_PORT'" ;; esac
case $RESOLVE_INTERVAL in '' | *[!0-9]*) fail "RESOLVE_INTERVAL must be a number of seconds; got '$RESOLVE_INTERVAL'" ;; esac
[ -n "${CONFIG_DIR:-}" ] || fail "CONFIG_DIR is not set"
[ -d "$CONFIG_DIR" ] || fail "$CONFIG_DIR does not exist: is the node's directory mounted?"

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
    # Safe: SERVICE_HOST_VAR was checked to be a plain variable name above.
    eval "addr=\${$SERVICE_HOST_VAR:-}"
  fi
  printf '%s\n' "$addr"
}

# An IPv4 or IPv6 address (or a host name, from MIRROR_ADDRESS) and nothing else.
valid_address() {
  case $1 in
    '' | *[!A-Za-z0-9.:-]*) return 1 ;;
  esac
}

# host[:port] of the mirror for URLs and registries.conf locations. $1 address.
mirror_authority() {
  case "$1" in
    *:*) printf '[%s]:%s' "$1" "$SERVICE_PORT" ;;
    *) printf '%s:%s' "$1" "$SERVICE_PORT" ;;
  esac
}

# hosts.toml for one registry host: mirror first, upstream as server. $1 address.
render_hosts_toml() {
  printf '%s (mirror %s). Restored when the agent stops.\n' "$MARKER" "$MIRROR_NAME"
  printf 'server = "%s"\n\n' "$SERVER_URL"
  printf '[host."http://%s"]\n' "$(mirror_authority "$1")"
  printf '  capabilities = [%s]\n' "$CAPABILITIES"
}

# The CRI-O drop-in: every host in HOSTS served by the mirror, the upstream as location. $1 address.
render_registries_conf() {
  printf '%s (mirror %s). Restored when the agent stops.\n' "$MARKER" "$MIRROR_NAME"
  # shellcheck disable=SC2086
  set -- "$1" $HOSTS
  r_mirror=$(mirror_authority "$1")
  r_upstream=$2
  shift
  for r_host in "$@"; do
    printf '\n[[registry]]\nprefix = "%s"\nlocation = "%s"\n\n' "$r_host" "$r_upstream"
    printf '[[registry.mirror]]\nlocation = "%s"\ninsecure = true\n' "$r_mirror"
    [ "$PULL_FROM_MIRROR" = all ] || printf 'pull-from-mirror = "%s"\n' "$PULL_FROM_MIRROR"
  done
}

# The files this agent owns, one per line.
targets() {
  if [ "$FORMAT" = registries.conf ]; then
    printf '%s\n' "$CONFIG_DIR/50-mirror-synth-$MIRROR_NAME.conf"
  else
    for host in $HOSTS; do printf '%s\n' "$CONFIG_DIR/$host/hosts.toml"; done
  fi
}

is_ours() {
  [ -f "$1" ] && head -n 1 "$1" | grep -q "^$MARKER"
}

# Write one file if its content changed. $1 target, $2 address.
install_file() {
  dir=${1%/*}
  name=${1##*/}
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir" || return 1
    : >"$dir/$CREATED"
  fi
  if [ -f "$1" ] && ! is_ours "$1"; then
    # Someone else's file: keep the newest such version to put back on stop.
    if ! cmp -s "$1" "$1$BACKUP_SUFFIX"; then
      cp -p "$1" "$1$BACKUP_SUFFIX" || return 1
      log info "kept the existing $1 as $name$BACKUP_SUFFIX"
    fi
  fi
  tmp=$dir/.$name.tmp.$$
  if [ "$FORMAT" = registries.conf ]; then
    render_registries_conf "$2" >"$tmp" || { rm -f "$tmp"; return 1; }
  else
    render_hosts_toml "$2" >"$tmp" || { rm -f "$tmp"; return 1; }
  fi
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
    return 0
  fi
  chmod 0644 "$tmp" && mv -f "$tmp" "$1" || { rm -f "$tmp"; return 1; }
  log info "wrote $1 pointing $HOSTS at $(mirror_authority "$2")"
}

restore() {
  for target in $(targets); do
    dir=${target%/*}
    [ -d "$dir" ] || continue
    rm -f "$dir/.${target##*/}.tmp."*
    if [ -f "$target$BACKUP_SUFFIX" ]; then
      mv -f "$target$BACKUP_SUFFIX" "$target" && log info "restored the original $target"
    elif is_ours "$target"; then
      rm -f "$target" && log info "removed $target"
    fi
    if [ -f "$dir/$CREATED" ]; then
      rm -f "$dir/$CREATED"
      rmdir "$dir" 2>/dev/null || true
    fi
  done
}

# A bind mount keeps pointing at a directory the node removed and made anew (k3s and rke2 before
# v1.28.14, v1.29.9, v1.30.5 and v1.31.1 remove certs.d on every restart): nothing written there
# reaches the runtime. Exit so the kubelet restarts the container with a fresh mount.
check_mount() {
  links=$(stat -c %h "$CONFIG_DIR" 2>/dev/null) || links=
  if [ "$links" = 0 ]; then
    log error "$CONFIG_DIR was removed from the node; exiting so the container restarts with the new directory"
    exit 3
  fi
}

on_signal() {
  [ -n "${sleeper:-}" ] && kill "$sleeper" 2>/dev/null
  restore
  log info "stopped"
  exit 0
}
trap on_signal TERM INT

log info "starting for $NODE_RUNTIME, hosts: $HOSTS"
while :; do
  check_mount
  address=$(resolve)
  if [ -z "$address" ]; then
    log warn "cannot resolve the mirror address yet; retrying in ${RESOLVE_INTERVAL}s"
  elif ! valid_address "$address"; then
    log error "ignoring the mirror address '$address': not an IP address or host name"
  else
    for target in $(targets); do
      install_file "$target" "$address" || log error "could not write $target"
    done
  fi
  sleep "$RESOLVE_INTERVAL" &
  sleeper=$!
  wait "$sleeper"
  sleeper=
done
