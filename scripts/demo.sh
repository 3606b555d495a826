#!/usr/bin/env bash
# flocker's main job, for real, on one machine: three podman "servers"
# (s1, s2, s3; scripts/podman-servers.sh), `flocker proxy` in front of them,
# and the plain docker CLI talking to the proxy as if it were one daemon:
#
#   auth.1, auth.2   two copies of a web service; the image EXPOSEs 80 and
#                    flocker publishes it from each server's port range
#   myapp.1          --link auth: its link variables name an auth copy on
#                    another server, and it fetches that copy's page
#
# then `docker ps` through the proxy and `flocker routes ls`. Everything is
# removed at the end. scripts/demo-store.sh shows the decisions alone
# (`flocker place`, no containers).
#
# Needs root (rootful podman) and the docker CLI. Installs what this kind of
# machine may lack: what a build needs (scripts/setup.sh build) and podman,
# runc, busybox-static.
# Usage: scripts/demo.sh
#        FLOCKER=/path/to/flocker scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=tests/proxy/lib.sh
. "$repo/tests/proxy/lib.sh"

say() { printf '\n# %s\n' "$*"; }
# Print a command the way a person would type it (an argument with spaces or
# specials in single quotes), then run it.
show() {
  local a line='$'
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then line+=" $a"; else line+=" '$a'"; fi
  done
  echo "$line"
  timeout 60 "$@"
}

[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (rootful podman)" >&2; exit 1; }
command -v docker >/dev/null || { echo "demo: needs the docker CLI (only the client)" >&2; exit 1; }

need=()
command -v podman >/dev/null || need+=(podman)
# podman would pull crun, which cannot run on this kind of machine.
command -v runc >/dev/null || need+=(runc)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "demo: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${FLOCKER:-}" ]; then
  scripts/setup.sh build
  echo "demo: cargo build -p flocker-host --bin flocker"
  cargo build --quiet -p flocker-host --bin flocker
  FLOCKER="${CARGO_TARGET_DIR:-$repo/target}/debug/flocker"
fi

dir=$(mktemp -d /tmp/flocker-demo.XXXXXX)
proxy_pid=
cleanup() {
  if [ -n "$proxy_pid" ]; then kill -TERM "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; fi
  "$repo/scripts/podman-servers.sh" stop "$dir/servers" || true
  rm -rf "$dir"
}
trap cleanup EXIT

# Ports of their own, so the demo does not collide with a running
# tests/proxy/e2e.sh (which uses the defaults); ranges 26000-28099, below the
# kernel's ephemeral ports.
export PODMAN_API_BASE=${PODMAN_API_BASE:-23780} PODMAN_RANGE_BASE=${PODMAN_RANGE_BASE:-25000}
say "three podman servers on this machine, each a Docker API on 127.0.0.1"
"$repo/scripts/podman-servers.sh" start "$dir/servers" 3
store=file:$dir/demo.redb
say "their inventory: address 10.88.0.1 is podman's bridge, where containers of any server reach published ports"
show "$FLOCKER" inventory add --store "$store" "$dir/servers/inventory.json"
"$FLOCKER" inventory ls --store "$store"

say "flocker proxy in front of them"
"$FLOCKER" proxy --store "$store" --listen tcp://127.0.0.1:0 >"$dir/proxy.out" 2>"$dir/proxy.err" &
proxy_pid=$!
url=$(listening_url "$dir/proxy.out" "$proxy_pid" 150 0.2) || { echo "demo: the proxy did not start:" >&2; cat "$dir/proxy.err" >&2; exit 1; }
echo "listening on $url"
export DOCKER_HOST=$url
echo "\$ export DOCKER_HOST=$url"

# Which server holds a container: asked of the servers themselves.
server_of() {
  local i
  for i in 1 2 3; do
    if timeout 30 docker -H "tcp://127.0.0.1:$(cat "$dir/servers/s$i/port")" ps -a --format '{{.Names}}' \
      | grep -qxF "$1"; then echo "s$i"; return; fi
  done
  echo "no server"
}

say "two copies of auth; no -p: the image EXPOSEs 80, flocker publishes it"
show docker run -d --name auth.1 localhost/auth:1
show docker run -d --name auth.2 localhost/auth:1
echo "auth.1 runs on $(server_of auth.1), auth.2 on $(server_of auth.2)"

say "myapp.1 links the service auth and asks it for its page"
# shellcheck disable=SC2016
client='printf "GET / HTTP/1.0\r\n\r\n" | nc $AUTH_PORT_80_TCP_ADDR $AUTH_PORT_80_TCP_PORT'
# (The command holds no single quote, so quoting it in them is exact.)
printf "\$ docker run --name myapp.1 --link auth localhost/busybox:full sh -c '%s'\n" "$client"
out=$(timeout 60 docker run --name myapp.1 --link auth localhost/busybox:full sh -c "$client")
echo "$out"
echo "its link variables:"
timeout 30 docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' myapp.1 | grep '^AUTH_PORT_80_TCP_\(ADDR\|PORT\)=' | sed 's/^/  /'
target=$(grep -oE 'auth auth\.[0-9]+ on' <<<"$out" | awk '{ print $2 }' | head -1)
if [ -z "$target" ]; then
  echo "demo: myapp.1 did not reach auth" >&2
  exit 1
fi
me=$(server_of myapp.1) there=$(server_of "$target")
echo "myapp.1 ran on $me and got its page from $target on $there."
[ "$me" != "$there" ] || echo "(the same server: not what the rules should give here)"

say "docker ps through the proxy: the containers of all servers"
show docker ps -a --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Ports}}'

say "the routes flocker saved"
show "$FLOCKER" routes ls --store "$store"

say "cleaning up"
show docker rm -f auth.1 auth.2 myapp.1
