#!/usr/bin/env bash
# The Node example proxy (examples/node-proxy, on the npm package built from
# bindings/js) with the real docker CLI onto two podman servers
# (scripts/podman-servers.sh): run -d, attached run (with and without stdin),
# exec, logs and rm, each checked against the servers themselves
# (`docker -H` straight to a server, not through the proxy).
# Needs root (rootful podman), the docker CLI, podman, runc, busybox-static,
# curl, Node and npm, and the package built (bindings/js/build.sh).
#
# Every check prints `ok - <what>` or `not ok - <what>: <evidence>`; the run
# goes on after a failure, the last line is `N passed, M failed`, and the exit
# status is non-zero when M > 0.
#
#   PODMAN_API_BASE (default 25770), PODMAN_RANGE_BASE (default 50000): the
#   servers' ports (scripts/podman-servers.sh); the proxy listens on
#   127.0.0.1:$((PODMAN_API_BASE + 20)) unless NODE_PROXY_PORT says otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
export PODMAN_API_BASE=${PODMAN_API_BASE:-25770}
export PODMAN_RANGE_BASE=${PODMAN_RANGE_BASE:-50000}
port=${NODE_PROXY_PORT:-$((PODMAN_API_BASE + 20))}

for tool in docker podman curl node npm ss; do
  command -v "$tool" >/dev/null || { echo "node-proxy: $tool not found (scripts/setup.sh)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "node-proxy: needs root (rootful podman)" >&2; exit 1; }
[ -f bindings/js/pkg/node/flocker_js_bg.wasm ] || { echo "node-proxy: run bindings/js/build.sh first" >&2; exit 1; }

D=$(mktemp -d /tmp/flocker-node-proxy.XXXXXX)
SERVERS=$D/servers
proxy_pid=
cleanup() {
  if [ -n "$proxy_pid" ]; then
    kill -TERM "$proxy_pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$proxy_pid" 2>/dev/null || true
  fi
  "$repo/scripts/podman-servers.sh" stop "$SERVERS" || true
  rm -rf "$D"
}
trap cleanup EXIT

# shellcheck source=tests/proxy/lib.sh
. "$repo/tests/proxy/lib.sh"

# dk: through the proxy; on I: straight to server sI. With timeouts, so a
# wedged splice fails the check instead of hanging CI.
dk() { timeout 60 docker -H "tcp://127.0.0.1:$port" "$@"; }
on() { local i=$1; shift; timeout 30 docker -H "tcp://127.0.0.1:$((PODMAN_API_BASE + i))" "$@"; }
# The server (s1/s2) that holds container $1, asked of both servers; "none"
# or "s1 s2" when not exactly one.
where() {
  local hosts=() i
  for i in 1 2; do on "$i" container inspect "$1" >/dev/null 2>&1 && hosts+=("s$i"); done
  [ ${#hosts[@]} -gt 0 ] || hosts=(none)
  echo "${hosts[*]}"
}

echo "# servers and the package"
scripts/podman-servers.sh start "$SERVERS" 2
# The proxy uses the package as a user would: the packed tarball, installed.
mkdir -p "$D/app"
tgz=$(npm pack --silent --pack-destination "$D" "$repo/bindings/js")
(cd "$D/app" && echo '{"name": "app", "version": "1.0.0", "private": true}' >package.json \
  && npm install --offline --no-audit --no-fund --silent "$D/$tgz")

NODE_PATH=$D/app/node_modules node examples/node-proxy/proxy.js \
  --inventory "$SERVERS/inventory.json" --listen "127.0.0.1:$port" >"$D/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 100); do
  curl -sf --max-time 1 "http://127.0.0.1:$port/_ping" >/dev/null 2>&1 && break
  kill -0 "$proxy_pid" 2>/dev/null || break
  sleep 0.1
done
if ! curl -sf --max-time 1 "http://127.0.0.1:$port/_ping" >/dev/null; then
  cat "$D/proxy.log" >&2
  echo "node-proxy: the proxy did not come up" >&2
  exit 1
fi

echo "# answered by the proxy"
ping=$(curl -si --max-time 5 "http://127.0.0.1:$port/_ping")
check "/_ping is OK with an Api-Version" "$ping" grep -qi '^api-version: 1\.' <<<"$ping"
version=$(dk version --format '{{.Server.Version}}' 2>&1 || true)
check "docker version shows the proxy" "$version" same "$version" "flocker-node-proxy/0.1.0"

echo "# run -d: decided, created where decided, ports published there"
id1=$(dk run -d --name web.1 localhost/auth:1 2>&1 || true)
# Both servers are empty: the tie goes to the smaller hostname (SPEC 3, Routing 5).
w=$(where web.1)
check "web.1 landed on s1 (the least loaded, smallest name)" "$w; $id1" same "$w" s1
id1s=$(on 1 container inspect -f '{{.Id}}' web.1 2>&1 || true)
check "the ID docker printed is s1's container" "$id1 vs $id1s" same "$id1" "$id1s"
hp=$(on 1 container inspect -f '{{(index (index .HostConfig.PortBindings "80/tcp") 0).HostPort}}' web.1 2>&1 || true)
check "80/tcp published at the first port of s1's range" "$hp" same "$hp" "$((PODMAN_RANGE_BASE + 1000))"
page=
for _ in $(seq 50); do
  page=$(curl -s --max-time 2 "http://127.0.0.1:$hp/" 2>/dev/null || true)
  [ -n "$page" ] && break
  sleep 0.2
done
check "web.1 answers on its published port with its SERVICE_ID" "$page" grep -q '^auth web\.1 on ' <<<"$page"
id2=$(dk run -d -e VIKING_SERVER=s2 --name web.2 localhost/auth:1 2>&1 || true)
w=$(where web.2)
check "VIKING_SERVER=s2 put web.2 on s2" "$w; $id2" same "$w" s2
id3=$(dk run -d --name web.3 localhost/auth:1 2>&1 || true)
w=$(where web.3)
# One container each now, one member of service `web` each: s1 by name.
check "web.3 landed on s1 again (load 1 each; smallest name)" "$w; $id3" same "$w" s1
hp3=$(on 1 container inspect -f '{{(index (index .HostConfig.PortBindings "80/tcp") 0).HostPort}}' web.3 2>&1 || true)
check "web.3 got the next free port on s1" "$hp3" same "$hp3" "$((PODMAN_RANGE_BASE + 1001))"

echo "# attached runs: the upgrade is spliced both ways"
out=$(dk run --name say.1 localhost/busybox:full echo "hello from say.1" 2>&1 || true)
check "attached run prints the container's output" "$out" same "$out" "hello from say.1"
w=$(where say.1)
check "say.1 is on s2 (s1 has two containers)" "$w" same "$w" s2
in=$'line one\nline two'
out=$(printf '%s\n' "$in" | dk run -i --rm --name cat.1 localhost/busybox:full cat 2>&1 || true)
check "stdin goes up, EOF is passed on, the echo comes down" "$out" same "$out" "$in"
w=$(where cat.1)
check "--rm: the daemon removed cat.1" "$w" same "$w" none
out=$(dk run --rm --name cat.1 localhost/busybox:full echo again 2>&1 || true)
check "the name of a --rm container is free again" "$out" same "$out" again
out=$(dk exec web.1 cat /www/index.html 2>&1 || true)
check "exec in web.1 (routed by name, exec start spliced)" "$out" grep -q '^auth web\.1 on ' <<<"$out"

echo "# logs"
out=$(dk logs say.1 2>&1 || true)
check "logs of say.1" "$out" same "$out" "hello from say.1"
out=$(dk logs "$id2" 2>&1; echo "rc=$?")
check "logs by ID of web.2 (httpd -f: no output)" "$out" same "$out" "rc=0"
out=$(dk logs no-such.1 2>&1 || true)
check "logs of a container that exists nowhere is an error" "$out" grep -qi 'no such container' <<<"$out"

echo "# rm: removed on the server that holds it"
out=$(dk rm say.1 2>&1 || true)
w=$(where say.1)
check "rm say.1 removed it from s2" "$out; $w" same "$w" none
out=$(dk rm -f web.1 "$id2" web.3 2>&1 || true)
left=$(for i in 1 2; do on "$i" ps -aq; done)
check "rm -f web.1 web.2 web.3: both servers are empty" "$out; left: $left" same "$left" ""
id1b=$(dk run -d --name web.1 localhost/auth:1 2>&1 || true)
hp=$(on 1 container inspect -f '{{(index (index .HostConfig.PortBindings "80/tcp") 0).HostPort}}' web.1 2>&1 || true)
check "after rm, web.1's name and port are free again" "$id1b; $hp" same "$hp" "$((PODMAN_RANGE_BASE + 1000))"
dk rm -f web.1 >/dev/null 2>&1 || true

echo "# $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
  echo "# proxy log:" >&2
  sed 's/^/#   /' "$D/proxy.log" >&2
  exit 1
fi
