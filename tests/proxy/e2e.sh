#!/usr/bin/env bash
# End to end: the real docker CLI through `flocker proxy` onto three podman
# servers (scripts/podman-servers.sh), on the embedded store, then two proxies
# sharing one real etcd. Needs root (rootful podman), the docker CLI, podman,
# runc, busybox-static, etcd and curl (scripts/setup.sh installs all but the
# docker CLI).
#
# Every check prints `ok - <what>` or `not ok - <what>: <evidence>` and the
# run goes on after a failure; the last line is `N passed, M failed`, and the
# exit status is non-zero when M > 0.
#
#   FLOCKER=/path/to/flocker tests/proxy/e2e.sh   (default: cargo build it)
#   E2E_KEEP=1   keep the work directory (logs, store) for a look afterwards
#   E2E_PROXY_ARGS="--health-ms 5000"   more flags for every proxy (split on spaces)
#
# Test traffic goes only to 127.0.0.1 and to podman's bridge (10.88.0.0/16).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ -z "${FLOCKER:-}" ]; then
  cargo build --quiet -p flocker-host --bin flocker
  FLOCKER="${CARGO_TARGET_DIR:-$repo/target}/debug/flocker"
fi
for tool in docker podman curl etcd python3 ss; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool not found (scripts/setup.sh)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "e2e: needs root (rootful podman)" >&2; exit 1; }

D=$(mktemp -d /tmp/flocker-e2e.XXXXXX)
SERVERS=$D/servers
STORE=file:$D/f.redb
pids=()
cleanup() {
  stop_pids
  "$repo/scripts/podman-servers.sh" stop "$SERVERS" || true
  if [ -n "${E2E_KEEP:-}" ]; then echo "# kept $D" >&2; else rm -rf "$D"; fi
}
trap cleanup EXIT

# shellcheck source=tests/proxy/lib.sh
. "$repo/tests/proxy/lib.sh"

# The docker CLI with a timeout, so nothing hangs CI. dk goes through the
# proxy ($DOCKER_HOST), on I talks to server sI directly.
dk() { timeout 60 docker "$@"; }
on() { local i=$1; shift; timeout 60 docker -H "tcp://127.0.0.1:$(cat "$SERVERS/s$i/port")" "$@"; }
flocker() { timeout 60 "$FLOCKER" "$@"; }

# The server that really holds container NAME (or ID prefix), from the servers.
where() {
  local i
  for i in 1 2 3; do
    if on "$i" ps -a --no-trunc --format '{{.Names}} {{.ID}}' 2>/dev/null \
      | awk -v n="$1" '$1 == n || index($2, n) == 1 { f = 1 } END { exit !f }'; then
      echo "s$i"; return
    fi
  done
  echo none
}
# A field of NAME's route in STORE (default: the embedded one): server,
# state, or the host port of 80/tcp; empty when there is no route.
route() {
  local name=$1 field=$2 store=${3:-$STORE}
  flocker routes ls --store "$store" --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin).get("containers", {}).get(sys.argv[1])
f = sys.argv[2]
if r is None: print("")
elif f == "port": print(r.get("ports", {}).get("80/tcp", ""))
else: print(r.get(f, ""))' "$name" "$field" || true
}
# GET http://10.88.0.1:PORT/ (a published port, through podman's bridge).
fetch() { curl -s --max-time 5 "http://10.88.0.1:$1/" 2>&1 || true; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_proxy TAG STORE: starts `flocker proxy` on 127.0.0.1:0 (and a unix
# socket), sets proxy_url and proxy_pid.
start_proxy() {
  local tag=$1 store=$2
  local extra=()
  read -r -a extra <<<"${E2E_PROXY_ARGS:-}"
  "$FLOCKER" proxy --store "$store" --listen tcp://127.0.0.1:0 --listen "unix://$D/$tag.sock" "${extra[@]}" \
    >"$D/$tag.out" 2>"$D/$tag.err" &
  proxy_pid=$!
  pids+=("$proxy_pid")
  # The debug build compiles the policy module at start: give it a minute.
  proxy_url=$(listening_url "$D/$tag.out" "$proxy_pid" 300 0.2) && return 0
  echo "e2e: proxy $tag did not start: $(tail -5 "$D/$tag.err")" >&2
  return 1
}

# Established connections from process PID to server port PORT, one line
# each: "<local port> <bytes received>".
conns() {
  ss -Htnpi state established "( dport = :$1 )" 2>/dev/null | awk -v pid="pid=$2," '
    index($0, pid) { key = $3; next }
    key != "" { for (i = 1; i <= NF; i++) if ($i ~ /^bytes_received:/) { split($i, b, ":"); print key, b[2] } key = "" }'
}

echo "# work dir $D"
t_servers=$(date +%s)
if ! "$repo/scripts/podman-servers.sh" start "$SERVERS" 3; then
  nok "three podman servers start" "see the lines above"
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "# podman servers up in $(($(date +%s) - t_servers)) s"
if ! flocker inventory add --store "$STORE" "$SERVERS/inventory.json" >/dev/null || ! start_proxy file "$STORE"; then
  nok "flocker proxy starts on the embedded store" "$(tail -5 "$D/file.err" 2>/dev/null)"
  echo "$passed passed, $failed failed"
  exit 1
fi
file_pid=$proxy_pid
export DOCKER_HOST=$proxy_url
echo "# proxy $DOCKER_HOST (pid $file_pid), store $STORE"
t_start=$(date +%s)

# --- the seed scenario -------------------------------------------------------
for n in auth.1 auth.2; do
  rc=0; out=$(dk run -d --name "$n" localhost/auth:1 2>&1) || rc=$?
  check "run -d --name $n localhost/auth:1 prints an ID" "rc=$rc $out" \
    test "$rc" -eq 0 -a -n "$(grep -xE '[0-9a-f]{64}' <<<"$out")"
done
a1=$(where auth.1) a2=$(where auth.2)
check "auth.1 ($a1) and auth.2 ($a2) are on different servers" \
  "routes: auth.1 $(route auth.1 server), auth.2 $(route auth.2 server)" \
  test "$a1" != none -a "$a2" != none -a "$a1" != "$a2"
for n in auth.1 auth.2; do
  s=$(where "$n") p=$(route "$n" port) r=$(route "$n" server)
  lo=$(python3 -c 'import json,sys; print(*[x["port_range"][0] for x in json.load(open(sys.argv[1])) if x["hostname"] == sys.argv[2]])' "$SERVERS/inventory.json" "$s" 2>/dev/null || true)
  body=$(fetch "$p")
  check "$n's route says $r, port $p from its range; 10.88.0.1:$p serves it" \
    "server $s, lowest port $lo, body: $body" \
    test "$r" = "$s" -a -n "$p" -a "$p" = "$lo" -a -n "$(has "$body" "auth $n on" && echo y)"
done

# myapp.N: no EXPOSE, --link auth (the group); nc, since busybox-static's
# wget segfaults in this rootfs. Reached through the published port only.
# shellcheck disable=SC2016
client='printf "GET / HTTP/1.0\r\n\r\n" | nc $AUTH_PORT_80_TCP_ADDR $AUTH_PORT_80_TCP_PORT'
for n in myapp.1 myapp.2; do
  rc=0; out=$(dk run --name "$n" --link auth localhost/busybox:full sh -c "$client" 2>&1) || rc=$?
  target=$(grep -oE 'auth auth\.[0-9]+ on' <<<"$out" | awk '{ print $2 }' | head -1 || true)
  ms=$(where "$n") ts=none
  [ -n "$target" ] && ts=$(where "$target")
  envs=$(dk inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$n" 2>&1 | grep '^AUTH_PORT_80_TCP_\(ADDR\|PORT\)=' || true)
  want_port=
  [ -n "$target" ] && want_port=$(route "$target" port)
  if [ "$rc" -eq 0 ] && [ -n "$target" ] && has "$envs" "AUTH_PORT_80_TCP_ADDR=10.88.0.1" \
    && has "$envs" "AUTH_PORT_80_TCP_PORT=$want_port\$"; then
    if [ "$ms" != "$ts" ]; then
      ok "$n ($ms) --link auth printed \"auth $target on ...\" from $ts, another server, via 10.88.0.1:$want_port"
    elif [ "$n" = myapp.2 ]; then
      # SPEC 3: loads 1/1/1, s3 has myapp.1, so myapp.2 goes to s1; pid 2 % 2
      # picks auth.1, which is on s1 too. Still through its published port.
      ok "$n ($ms) --link auth printed \"auth $target on ...\" from $ts (same server, as SPEC's rules place it), via 10.88.0.1:$want_port"
    else
      nok "$n --link auth reached an auth copy on another server" "$n on $ms, $target on $ts; $out"
    fi
  else
    nok "$n --link auth reached an auth copy through its link variables" "rc=$rc server=$ms target=$target($ts) env=[$envs] out=$out"
  fi
done

# --- run variants --------------------------------------------------------------
rc=0; out=$(dk run --name hello.1 localhost/busybox:full echo hello-attached 2>&1) || rc=$?
check "attached run shows the container's output" "rc=$rc $out" has "$out" '^hello-attached$'

rc=0; out=$(echo x | dk run -i --rm localhost/busybox:full cat 2>&1) || rc=$?
check "echo x | run -i --rm ... cat prints x" "rc=$rc out=$out" test "$out" = x

rc=0; out=$(dk run --rm --name t.1 localhost/busybox:full echo first 2>&1) || rc=$?
check "run --rm --name t.1 prints its output" "rc=$rc $out" has "$out" '^first$'
t0=$(date +%s.%N) tries=0 out2=''
while :; do
  tries=$((tries + 1))
  rc=0; out2=$(dk run --rm --name t.1 localhost/busybox:full echo second 2>&1) || rc=$?
  has "$out2" '^second$' && break
  [ "$tries" -ge 6 ] && break
  sleep 0.5
done
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if has "$out2" '^second$' && [ "$tries" -eq 1 ]; then
  ok "run --rm --name t.1 again right after succeeds (first try)"
elif has "$out2" '^second$'; then
  ok "run --rm --name t.1 again succeeds after $tries tries, ${took} s (route freed late)"
else
  nok "run --rm --name t.1 again right after succeeds" "$tries tries in ${took} s; last: rc=$rc $out2; route state: $(route t.1 state)"
fi

# --- ps across the servers ------------------------------------------------------
rc=0; ticker=$(dk run -d --name ticker.1 localhost/busybox:full sh -c 'while true; do echo tick; sleep 0.5; done' 2>&1) || rc=$?
check "run -d ticker.1 (output every 0.5 s)" "rc=$rc $ticker" test "$rc" -eq 0
for all in "" -a; do
  # $all is empty or -a: a flag or nothing, hence unquoted.
  # shellcheck disable=SC2086
  {
    want=$(for i in 1 2 3; do on "$i" ps $all -q --no-trunc 2>/dev/null || true; done | sort)
    per=$(for i in 1 2 3; do echo "s$i:$(on "$i" ps $all -q 2>/dev/null | wc -l)"; done | tr '\n' ' ')
    rc=0; got=$(dk ps $all -q --no-trunc 2>&1 | sort) || rc=$?
    nservers=$(for i in 1 2 3; do if [ -n "$(on "$i" ps $all -q 2>/dev/null)" ]; then echo "$i"; fi; done | wc -l)
  }
  check "ps${all:+ $all} lists every container of the servers ($per)" \
    "rc=$rc want=$(echo "$want" | cut -c1-12 | tr '\n' ,) got=$(echo "$got" | cut -c1-12 | tr '\n' ,)" \
    test "$rc" -eq 0 -a "$want" = "$got"
  if [ "$all" = -a ]; then check "ps -a spans all 3 servers" "$per" test "$nservers" -eq 3; fi
done

# --- logs, logs -f, exec, inspect -----------------------------------------------
rc=0; out=$(dk logs hello.1 2>&1) || rc=$?
check "logs hello.1 shows its output" "rc=$rc $out" has "$out" '^hello-attached$'

ts=$(where ticker.1)
tport=$(cat "$SERVERS/$ts/port" 2>/dev/null || echo 0)
before=$(conns "$tport" "$file_pid")
docker logs -f ticker.1 >"$D/follow.out" 2>&1 &
fpid=$!
sleep 2
during=$(conns "$tport" "$file_pid")
kill -TERM "$fpid" 2>/dev/null || true
wait "$fpid" 2>/dev/null || true
check "logs -f streams (ticks seen in 2 s)" "$(head -c 200 "$D/follow.out")" grep -q '^tick$' "$D/follow.out"
# Gone: no more connections than before, and none still receiving (the
# ticker writes every 0.5 s, an abandoned follow would keep growing).
sleep 1
a1c=$(conns "$tport" "$file_pid"); sleep 1.5; a2c=$(conns "$tport" "$file_pid")
growing=$(join <(sort <<<"$a1c") <(sort <<<"$a2c") | awk '$3 > $2 { print $1 }')
check "after logs -f ends, no proxy connection to $ts (:$tport) is left streaming (proxy connections there: $(grep -c . <<<"$before") before, $(grep -c . <<<"$during") during, $(grep -c . <<<"$a2c") after)" \
  "before=[$before] during=[$during] after=[$a2c] still receiving: [$growing]" \
  test "$ts" != none -a "$(grep -c . <<<"$a2c")" -le "$(grep -c . <<<"$before")" -a -z "$growing"

rc=0; out=$(dk exec auth.1 cat /www/index.html 2>&1) || rc=$?
check "exec auth.1 cat /www/index.html" "rc=$rc $out" has "$out" '^auth auth.1 on '

rc=0; out=$(dk inspect auth.1 2>&1) || rc=$?
got=$(python3 -c 'import json,sys; c = json.load(sys.stdin)[0]; print(c["Name"], c["State"]["Running"], c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])' <<<"$out" 2>&1 || true)
check "inspect auth.1: name, running, published port" "rc=$rc got=[$got] want=[/auth.1 True $(route auth.1 port)]" \
  test "$got" = "/auth.1 True $(route auth.1 port)"

rc=0; out=$(dk inspect nosuch 2>&1) || rc=$?
check "inspect nosuch fails with No such object" "rc=$rc $out" test "$rc" -ne 0 -a -n "$(has "$out" 'No such object' && echo y)"

rc=0; out=$(timeout 60 docker -H "unix://$D/file.sock" ps -q 2>&1) || rc=$?
check "the unix socket listener answers ps" "rc=$rc $out" test "$rc" -eq 0

# --- stop, rm -f ----------------------------------------------------------------
rc=0; out=$(dk stop -t 1 ticker.1 2>&1) || rc=$?
running=$(on "${ts#s}" inspect -f '{{.State.Running}}' ticker.1 2>&1 || true)
check "stop -t 1 ticker.1 stops it on $ts" "rc=$rc $out; running=$running" test "$rc" -eq 0 -a "$running" = false

rc=0; out=$(dk rm -f ticker.1 2>&1) || rc=$?
state=$(route ticker.1 state)
check "rm -f ticker.1 removes it from $ts and its route" "rc=$rc $out; on server: $(where ticker.1); route state: $state" \
  test "$ts" != none -a "$rc" -eq 0 -a "$(where ticker.1)" = none -a "$state" != live
rc=0; out=$(dk run -d --name ticker.1 localhost/busybox:full sleep 300 2>&1) || rc=$?
check "the same name runs again after rm -f ($(where ticker.1))" "rc=$rc $out" test "$rc" -eq 0 -a "$(where ticker.1)" != none
dk rm -f ticker.1 >/dev/null 2>&1 || true

# --- events, pull, images, version, info ------------------------------------------
# Docker semantics: an `until` in the past returns the events between since
# and until, then ends. podman 4.3.1 returns nothing at all for an `until`
# that is not in the future (observed: until=now and until=1m ago give 0
# lines; until=now+5s gives the whole history, after waiting 5 s), so a proxy
# that passes `until` on unchanged shows no events here.
rc=0; ev=$(dk events --since "$t_start" --until "$(date +%s)" 2>&1) || rc=$?
seen=
for i in 1 2 3; do
  names=$(on "$i" ps -a --format '{{.Names}}' 2>/dev/null || true)
  for n in $names; do
    if has "$ev" "name=${n}[,)]"; then seen+="s$i "; break; fi
  done
done
if [ "$rc" -eq 0 ] && [ "$(wc -w <<<"$seen")" -eq 3 ]; then
  ok "events --since --until shows events from all 3 servers ($(grep -c . <<<"$ev") events)"
else
  # podman 4.3.1 returns nothing for an `until` in the past (and streams up
  # to an `until` in the future): tell the two apart in the evidence.
  fut=$(dk events --since "$t_start" --until "$(($(date +%s) + 2))" 2>&1 | grep -c . || true)
  nok "events --since --until shows events from all 3 servers" \
    "rc=$rc, servers seen: [$seen], $(grep -c . <<<"$ev") lines: $(head -3 <<<"$ev"); with --until 2 s ahead: $fut lines"
fi

# No registry here: podman's compat pull always asks the registry, so a pull
# of a local image fails cleanly (https://localhost/v2/ refused) or succeeds.
t0=$(date +%s)
rc=0; out=$(dk pull localhost/busybox:full 2>&1) || rc=$?
took=$(($(date +%s) - t0))
if [ "$rc" -eq 0 ]; then
  ok "pull localhost/busybox:full succeeds (${took} s)"
else
  check "pull localhost/busybox:full fails cleanly, naming the image (${took} s)" "rc=$rc $out" \
    test "$rc" -ne 124 -a -n "$(has "$out" 'localhost/busybox' && echo y)"
fi

# The image-not-there path with a real registry on loopback (Debian's
# docker-registry): the create answers 404, the CLI pulls, the pull goes to
# the server the decision chose and to no other, the create is tried again.
if command -v docker-registry >/dev/null; then
  reg=${PODMAN_REGISTRY:-127.0.0.1:23790}
  mkdir -p "$D/registry"
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$D/registry" "$reg" >"$D/registry.yml"
  docker-registry serve "$D/registry.yml" >"$D/registry.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 50); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.2; done
  rc=0; out=$(CONTAINERS_CONF="$SERVERS/containers.conf" CONTAINERS_REGISTRIES_CONF="$SERVERS/registries.conf" \
    timeout 60 podman --root "$SERVERS/s1/root" --runroot "$SERVERS/s1/run" --tmpdir "$SERVERS/s1/tmp" \
    push --tls-verify=false localhost/busybox:full "$reg/pulltest:1" 2>&1) || rc=$?
  check "a test image is pushed to the registry at $reg" "rc=$rc $out" test "$rc" -eq 0
  rc=0; out=$(dk run --name pulled.1 "$reg/pulltest:1" echo pulled-ok 2>&1) || rc=$?
  srv=$(route pulled.1 server)
  have=""
  for i in 1 2 3; do
    on "$i" image inspect "$reg/pulltest:1" >/dev/null 2>&1 && have="$have s$i"
  done
  check "run of an image no server has: 404, the CLI pulls, the create lands (on $srv)" "rc=$rc $out" \
    test "$rc" -eq 0 -a -n "$(has "$out" '^pulled-ok$' && echo y)" -a -n "$(has "$out" 'Unable to find image' && echo y)"
  check "the pull went only to the chosen server ($srv; the image is on:$have)" "$have" test "$have" = " $srv"
fi

rc=0; out=$(dk images --format '{{.Repository}}:{{.Tag}} {{.ID}}' 2>&1) || rc=$?
check "images lists localhost/auth:1 and localhost/busybox:full once each" "rc=$rc $out" \
  test "$rc" -eq 0 -a "$(grep -c '^localhost/auth:1 ' <<<"$out")" -eq 1 -a "$(grep -c '^localhost/busybox:full ' <<<"$out")" -eq 1

rc=0; out=$(dk version --format '{{.Server.APIVersion}}' 2>&1) || rc=$?
check "version answers (API $out)" "rc=$rc $out" test "$rc" -eq 0 -a -n "$out"

want=0
for i in 1 2 3; do want=$((want + $(on "$i" info --format '{{.Containers}}' 2>/dev/null || echo 0))); done
rc=0; out=$(dk info --format '{{.Containers}}' 2>&1) || rc=$?
check "info answers, Containers = the servers' sum ($want)" "rc=$rc $out" test "$rc" -eq 0 -a "$out" = "$want"

# --- volumes and ports --------------------------------------------------------------
rc=0; out=$(dk run --name vol.1 -v data1:/data localhost/busybox:full sh -c 'echo kept > /data/f' 2>&1) || rc=$?
vs=$(where vol.1)
check "run -v data1:/data vol.1 ($vs)" "rc=$rc $out" test "$rc" -eq 0 -a "$vs" != none
dk rm vol.1 >/dev/null 2>&1 || true
rc=0; out=$(dk run --name vol.1 -v data1:/data localhost/busybox:full cat /data/f 2>&1) || rc=$?
vs2=$(where vol.1)
check "after rm, vol.1 with data1 comes back to $vs and finds its data" "rc=$rc $out; now on $vs2" \
  test "$vs2" = "$vs" -a "$out" = kept

ids=()
for k in 1 2; do
  rc=0; out=$(dk run -d -p 80 localhost/auth:1 2>&1) || rc=$?
  ids+=("$(grep -xE '[0-9a-f]{64}' <<<"$out" || echo "none($out)")")
done
pp=()
for id in "${ids[@]}"; do
  pp+=("$(dk inspect -f '{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}' "$id" 2>/dev/null || echo none)")
done
b1=$(fetch "${pp[0]}") b2=$(fetch "${pp[1]}")
check "two unnamed -p 80 containers get distinct host ports, both serving (${pp[*]} on $(where "${ids[0]:0:12}") $(where "${ids[1]:0:12}"))" \
  "ids: ${ids[*]}; bodies: [$b1] [$b2]" \
  test "${pp[0]}" != "${pp[1]}" -a -n "$(has "$b1" '^auth ' && has "$b2" '^auth ' && echo y)"
uname=$(dk inspect -f '{{.Name}}' "${ids[0]}" 2>/dev/null || true)
check "an unnamed container gets a name ($uname) with a route" "route: $(route "${uname#/}" state)" \
  test -n "${uname#/}" -a "$(route "${uname#/}" state)" = live

errlines=$(wc -l <"$D/file.err")
rc=0; out=$(dk run --name bad.1 --link nosuch localhost/busybox:full true 2>&1) || rc=$?
sleep 0.5
pullreq=$(tail -n +"$((errlines + 1))" "$D/file.err" | grep -ci 'images/create\|pull' || true)
check "--link nosuch fails naming the link, without a pull" "rc=$rc $out; proxy stderr lines naming a pull since: $pullreq" \
  test "$rc" -ne 0 -a -n "$(has "$out" nosuch && echo y)" -a -z "$(has "$out" 'Unable to find image' && echo y)" \
  -a "$pullreq" -eq 0 -a "$(where bad.1)" = none

# --- nothing leaks -----------------------------------------------------------------
# After every run, --rm, rm -f and rerun above, the live routes are exactly
# the containers that exist on the servers (events are read a moment late:
# a few seconds are allowed).
live_routes() {
  flocker routes ls --store "$STORE" --json 2>/dev/null | python3 -c '
import json, sys
rs = json.load(sys.stdin).get("containers", {})
print("\n".join(sorted(n for n, r in rs.items() if r.get("state") == "live")))'
}
on_servers() {
  local i
  for i in 1 2 3; do on "$i" ps -a --format '{{.Names}}' 2>/dev/null; done | sort
}
for _ in $(seq 25); do
  routes_now=$(live_routes); containers_now=$(on_servers)
  [ "$routes_now" = "$containers_now" ] && break
  sleep 0.2
done
check "the live routes are exactly the containers on the servers ($(grep -c . <<<"$routes_now"))" \
  "routes: $(tr '\n' ' ' <<<"$routes_now") containers: $(tr '\n' ' ' <<<"$containers_now")" \
  test "$routes_now" = "$containers_now"

# --- two proxies on one etcd ---------------------------------------------------------
ec=$(free_port) ep=$(free_port)
etcd --name e2e --data-dir "$D/etcd" \
  --listen-client-urls "http://127.0.0.1:$ec" --advertise-client-urls "http://127.0.0.1:$ec" \
  --listen-peer-urls "http://127.0.0.1:$ep" --initial-advertise-peer-urls "http://127.0.0.1:$ep" \
  --initial-cluster "e2e=http://127.0.0.1:$ep" >"$D/etcd.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do curl -sf --max-time 1 "http://127.0.0.1:$ec/health" >/dev/null 2>&1 && break; sleep 0.2; done
ESTORE=etcd://127.0.0.1:$ec
if flocker inventory add --store "$ESTORE" "$SERVERS/inventory.json" >/dev/null 2>"$D/einv.err" \
  && start_proxy etcdA "$ESTORE" && pa=$proxy_url && start_proxy etcdB "$ESTORE" && pb=$proxy_url; then
  # No published ports here: this store does not know the ports the file
  # store's containers hold on the same servers.
  rc=0; out=$(dk -H "$pa" run -d --name shared.1 localhost/busybox:full sh -c 'echo from-a; sleep 300' 2>&1) || rc=$?
  sid=$(grep -xE '[0-9a-f]{64}' <<<"$out" || true)
  check "etcd: run -d shared.1 through proxy A ($(where shared.1))" "rc=$rc $out" test -n "$sid"
  rc=0; out=$(dk -H "$pb" inspect -f '{{.Id}}' shared.1 2>&1) || rc=$?
  check "etcd: inspect shared.1 through proxy B" "rc=$rc $out" test -n "$sid" -a "$out" = "$sid"
  sleep 0.5
  rc=0; out=$(dk -H "$pb" logs shared.1 2>&1) || rc=$?
  check "etcd: logs shared.1 through proxy B" "rc=$rc $out" has "$out" '^from-a$'
  rc=0; out=$(dk -H "$pb" run -d --name shared.1 localhost/busybox:full true 2>&1) || rc=$?
  check "etcd: the name shared.1 is taken for proxy B too" "rc=$rc $out" test "$rc" -ne 0 -a -n "$(hasi "$out" 'in use\|conflict\|name_in_use' && echo y)"
  rc=0; out=$(dk -H "$pb" rm -f shared.1 2>&1) || rc=$?
  check "etcd: rm -f shared.1 through proxy B removes container and route" \
    "rc=$rc $out; on server: $(where shared.1); route: $(route shared.1 state "$ESTORE")" \
    test -n "$sid" -a "$rc" -eq 0 -a "$(where shared.1)" = none -a "$(route shared.1 state "$ESTORE")" != live
  rc=0; out=$(dk -H "$pa" run -d --name shared.1 localhost/busybox:full true 2>&1) || rc=$?
  check "etcd: proxy A runs shared.1 again after B removed it" "rc=$rc $out" test "$rc" -eq 0
  dk -H "$pa" rm -f shared.1 >/dev/null 2>&1 || true
else
  nok "etcd: two proxies on one etcd start" "inventory: $(cat "$D/einv.err"); A: $(tail -3 "$D/etcdA.err" 2>/dev/null); B: $(tail -3 "$D/etcdB.err" 2>/dev/null)"
fi

# --- a server dies --------------------------------------------------------------------
# Kill the server flocker would pick next (fewest live routes, then smallest
# hostname: SPEC 3), after pinning a volume to it.
next=$(flocker routes ls --store "$STORE" --json | python3 -c '
import json, sys
live = [r["server"] for r in json.load(sys.stdin)["containers"].values() if r.get("state") == "live"]
print(min(("s1", "s2", "s3"), key=lambda s: (live.count(s), s)))' || echo s1)
rc=0; out=$(dk run -d --name pin.1 -e "VIKING_SERVER=$next" -v pindata:/data localhost/busybox:full sleep 300 2>&1) || rc=$?
check "pin.1 holds the volume pindata on $next (the next pick)" "rc=$rc $out; on $(where pin.1)" test "$(where pin.1)" = "$next"
dk rm -f pin.1 >/dev/null 2>&1 || true
kill -KILL "$(cat "$SERVERS/$next/pid")" || true
t0=$(date +%s.%N) k=0 landed='' log=
while [ "$k" -lt 15 ]; do
  k=$((k + 1))
  rc=0; out=$(dk run -d --name "after.$k" localhost/busybox:full sleep 300 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then landed=$(where "after.$k"); break; fi
  log+="after.$k: rc=$rc $(grep -v '^$\|docker run --help' <<<"$out" | tr '\n' ' '); "
  sleep 1
done
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
check "with $next's daemon killed, a new create lands elsewhere (after.$k on $landed, ${took} s, $((k - 1)) failed before${log:+: $(flat "${log:0:300}")})" \
  "$log" test -n "$landed" -a "$landed" != "$next" -a "$landed" != none
rc=0; out=$(dk run -d --name pin.2 -v pindata:/data localhost/busybox:full true 2>&1) || rc=$?
check "a container pinned to $next by pindata gets pinned_server_unavailable" "rc=$rc $out" \
  test "$rc" -ne 0 -a -n "$(hasi "$out" 'pinned_server_unavailable\|pinned.*\(down\|unavailable\)' && echo y)"
rc=0; out=$(dk ps -q 2>&1) || rc=$?
check "ps with $next down still answers" "rc=$rc $out" test "$rc" -eq 0

# --- SIGTERM ----------------------------------------------------------------------------
kill -TERM "$file_pid"
stopped=
for _ in $(seq 100); do kill -0 "$file_pid" 2>/dev/null || { stopped=y; break; }; sleep 0.1; done
rc=0
if [ -n "$stopped" ]; then wait "$file_pid" || rc=$?; fi
check "SIGTERM stops the proxy within 10 s (exit $rc)" "still running: $(tail -3 "$D/file.err")" test -n "$stopped" -a "$rc" -eq 0

if [ "$failed" -gt 0 ]; then
  for f in "$D"/file.err "$D"/etcdA.err "$D"/etcdB.err; do
    [ -s "$f" ] || continue
    echo "# last lines of ${f##*/}:"
    tail -20 "$f" | sed 's/^/#   /'
  done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
