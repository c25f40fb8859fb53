#!/bin/sh
# mirror-synth: upstream credentials for Distribution's proxy (proxy.exec).
#
# Distribution runs this as `<helper> get` with the upstream host on stdin (the
# docker-credential-helpers protocol) and reads {"Username": ..., "Secret": ...} from stdout.
# It reads the username and password files of the credentials Secret, mounted as a volume at
# $CREDENTIALS_DIR, so a rotated Secret is read again after proxy.exec.lifetime, without a restart.
# It never writes a value anywhere but stdout: errors name the file, never its content.
#
# A mirror without credentialsSecret runs it too, with no CREDENTIALS_DIR: it then answers with
# empty credentials and Distribution asks the upstream anonymously. The helper exists for every
# mirror because without proxy.exec Distribution calls the upstream at start and panics when it
# cannot be reached.
set -eu

fail() {
  echo "mirror-synth credential helper: $*" >&2
  exit 1
}

[ "${1:-}" = get ] || fail "only 'get' is supported (called with '${1:-}')"
cat >/dev/null # the host Distribution asks for: there is one upstream, so one set of credentials

if [ -z "${CREDENTIALS_DIR:-}" ]; then
  printf '{"Username":"","Secret":""}\n'
  exit 0
fi
dir=$CREDENTIALS_DIR

# One Secret key as a JSON string. $(cat) drops trailing newlines (a file written by echo).
field() {
  [ -r "$dir/$1" ] || fail "cannot read key '$1' of the credentials Secret at $dir/$1"
  value=$(cat "$dir/$1")
  [ -n "$value" ] || fail "key '$1' of the credentials Secret is empty"
  case "$value" in
    *[[:cntrl:]]*) fail "key '$1' of the credentials Secret holds a control character" ;;
  esac
  printf '"%s"' "$(printf '%s' "$value" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

username=$(field username)
password=$(field password)
printf '{"Username":%s,"Secret":%s}\n' "$username" "$password"
