#!/usr/bin/env bash
# The docker CLI through examples/go-proxy (the flocker Go package deciding
# in-process) onto two podman servers: run -d lands where the proxy decided,
# an attached run and a `run -i` pipe show the container's output, logs,
# and rm removes the container from its server. Everything started here is
# stopped on exit, whatever happens.
#   tests/proxy/go-proxy.sh      (needs root, podman, docker CLI, Go >= 1.25)
# Ports: PODMAN_API_BASE (default 24770) + i for server i, published ranges
# from PODMAN_RANGE_BASE (default 40000): apart from e2e.sh's defaults.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PODMAN_API_BASE=${PODMAN_API_BASE:-24770} PODMAN_RANGE_BASE=${PODMAN_RANGE_BASE:-40000}
D=$(mktemp -d /tmp/flocker-go-proxy.XXXXXX)
SERVERS=$D/servers
proxy_pid=
# shellcheck source=tests/proxy/lib.sh
. "$repo/tests/proxy/lib.sh"

cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  "$repo/scripts/podman-servers.sh" stop "$SERVERS" >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap cleanup EXIT

dk() { timeout 60 docker "$@"; }
on() { local i=$1; shift; timeout 60 docker -H "tcp://127.0.0.1:$(cat "$SERVERS/s$i/port")" "$@"; }
# on_server I NAME: whether server I has a container of that name.
on_server() { [ -n "$(on "$1" ps -aq --filter "name=^$2\$" 2>/dev/null)" ]; }

"$repo/scripts/podman-servers.sh" start "$SERVERS" 2 || { echo "go-proxy: podman servers did not start"; exit 1; }

(cd "$repo/examples/go-proxy" && nice -n 10 go build -o "$D/go-proxy" .) || { echo "go-proxy: build failed"; exit 1; }
"$D/go-proxy" -inventory "$SERVERS/inventory.json" -listen 127.0.0.1:0 >"$D/proxy.out" 2>"$D/proxy.err" &
proxy_pid=$!
url=$(listening_url "$D/proxy.out" "$proxy_pid" 100 0.1) || { echo "go-proxy: did not start: $(tail -3 "$D/proxy.err")"; exit 1; }
export DOCKER_HOST=$url
echo "# go-proxy $url (pid $proxy_pid), servers in $SERVERS"
# placed NAME: the server the proxy says it chose for NAME.
placed() { sed -n "s/.*placed $1 on \(s[0-9]*\) .*/\1/p" "$D/proxy.err" | tail -1; }

rc=0; out=$(dk version --format '{{.Server.Version}}' 2>&1) || rc=$?
check "docker version answers through the proxy" "rc=$rc $out" test "$rc" -eq 0 -a "$out" = flocker-go-proxy

# SPEC rule 5: an empty cluster's first choice is the smallest hostname,
# and the second container goes to the server with fewer containers.
for n in auth.1 auth.2; do
  rc=0; out=$(dk run -d --name "$n" localhost/auth:1 2>&1) || rc=$?
  check "run -d --name $n prints an ID" "rc=$rc $out" test "$rc" -eq 0 -a -n "$(grep -xE '[0-9a-f]{64}' <<<"$out")"
done
check "auth.1 was placed on s1, auth.2 on s2" "auth.1: $(placed 'auth\.1'), auth.2: $(placed 'auth\.2')" \
  test "$(placed 'auth\.1')" = s1 -a "$(placed 'auth\.2')" = s2
check "auth.1 is on server s1 and not on s2" "s1: $(on 1 ps -a --format '{{.Names}}' 2>&1 | tr '\n' ' ') s2: $(on 2 ps -a --format '{{.Names}}' 2>&1 | tr '\n' ' ')" \
  bash -c "$(declare -f on on_server); SERVERS=$SERVERS; on_server 1 auth.1 && ! on_server 2 auth.1 && on_server 2 auth.2 && ! on_server 1 auth.2"

rc=0; out=$(dk run --name hello.1 localhost/busybox:full echo hello-attached 2>&1) || rc=$?
check "attached run prints exactly the container's output" "rc=$rc out=[$out]" test "$rc" -eq 0 -a "$out" = hello-attached
h=$(placed 'hello\.1'); hi=${h#s}
check "hello.1 is on the server the proxy chose ($h)" "$(placed 'hello\.1')" \
  bash -c "$(declare -f on on_server); SERVERS=$SERVERS; [ -n '$hi' ] && on_server '$hi' hello.1"

rc=0; out=$(echo piped-x | dk run -i --rm localhost/busybox:full cat 2>&1) || rc=$?
check "echo piped-x | run -i --rm ... cat prints piped-x (half-close)" "rc=$rc out=[$out]" test "$rc" -eq 0 -a "$out" = piped-x

rc=0; out=$(dk logs hello.1 2>&1) || rc=$?
check "logs hello.1 is its output" "rc=$rc out=[$out]" test "$rc" -eq 0 -a "$out" = hello-attached

rc=0; out=$(dk rm -f auth.1 2>&1) || rc=$?
check "rm -f auth.1 removes it from s1" "rc=$rc $out; s1: $(on 1 ps -a --format '{{.Names}}' 2>&1 | tr '\n' ' ')" \
  bash -c "$(declare -f on on_server); SERVERS=$SERVERS; [ $rc -eq 0 ] && ! on_server 1 auth.1"
rc=0; out=$(dk rm hello.1 2>&1) || rc=$?
check "rm hello.1 removes it from $h" "rc=$rc $out" \
  bash -c "$(declare -f on on_server); SERVERS=$SERVERS; [ $rc -eq 0 ] && ! on_server '$hi' hello.1"
rc=0; out=$(dk logs auth.1 2>&1) || rc=$?
check "a removed container is unknown to the proxy" "rc=$rc $out" test "$rc" -ne 0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
