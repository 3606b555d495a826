#!/usr/bin/env bash
# N podman "servers" on one machine, each a Docker-compatible API on
# 127.0.0.1, for testing `flocker proxy` against real daemons.
#
#   scripts/podman-servers.sh start DIR N   start s1..sN, load the test images,
#                                           write DIR/inventory.json
#   scripts/podman-servers.sh stop DIR      remove their containers, stop them,
#                                           delete DIR
#
# Everything (storage, run state, logs, images, inventory) lives under DIR.
# It installs nothing: `scripts/setup.sh` does (podman, runc, busybox-static).
# Server i listens on 127.0.0.1:$((PODMAN_API_BASE + i)) (default 23770 + i)
# and publishes from the range [PODMAN_RANGE_BASE + 1000 i, ... + 99]
# (default s1 21000-21099, s2 22000-22099, ...). Every server's inventory
# `address` is 10.88.0.1, podman's bridge gateway: containers of every server
# reach every published port there, and no address is added to any interface.
#
# Images, identical (same ID) on every server, from a busybox-static rootfs:
#   localhost/auth:1        EXPOSE 80/tcp; serves "auth $SERVICE_ID on <hostname>"
#   localhost/busybox:full  the same rootfs, no EXPOSE, no CMD
#
# `start` on a DIR that holds servers stops them first, so it is safe to re-run.
set -euo pipefail

api_base=${PODMAN_API_BASE:-23770}
range_base=${PODMAN_RANGE_BASE:-20000}
range_size=100

die() { echo "podman-servers: $*" >&2; exit 1; }
log() { echo "podman-servers: $*" >&2; }

usage() {
  echo "usage: $0 start DIR N | stop DIR" >&2
  exit 2
}

# The podman CLI on server $i's storage. The services are started with the
# same flags, so the CLI and the service see the same containers (podman
# locks its storage, using both at once is supported). With a timeout: a
# wedged podman must not hang CI.
pm() {
  local i=$1; shift
  CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_REGISTRIES_CONF="$dir/registries.conf" timeout 60 podman \
    --root "$dir/s$i/root" --runroot "$dir/s$i/run" --tmpdir "$dir/s$i/tmp" "$@"
}

port_in_use() {
  # ss prints "LISTEN 0 128 127.0.0.1:23771 ..."; match the port at the end of
  # the local address, any address.
  ss -Htln | awk -v p="$1" '{ n = split($4, a, ":"); if (a[n] == p) found = 1 } END { exit !found }'
}

ping_ok() {
  curl -sf --max-time 2 "http://127.0.0.1:$1/_ping" >/dev/null 2>&1
}

stop_servers() {
  [ -d "$dir" ] || return 0
  # Only delete a directory this script made, never someone's data.
  [ -f "$dir/.podman-servers" ] || die "$dir was not made by $0; not touching it"
  local sdir i pid
  for sdir in "$dir"/s*/; do
    [ -d "$sdir" ] || continue
    i=${sdir%/}; i=${i##*/s}
    # Through the CLI, not the API: it works when the service is already dead
    # (a test may kill one), and removing the containers releases their IPs in
    # podman's IPAM db and their firewall rules, which are shared machine-wide.
    pm "$i" rm -af -t 0 >/dev/null 2>"$sdir/rm.err" || log "s$i: rm -af failed: $(tail -1 "$sdir/rm.err")"
    if [ -f "$sdir/pid" ]; then
      pid=$(cat "$sdir/pid")
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  done
  # Whatever still runs from DIR after that would keep its host ports once DIR
  # is gone. conmon runs `podman container cleanup` (which names DIR) when a
  # container exits: give those a few seconds to finish, then kill what is
  # left: a conmon whose container could not be removed, and the conmon of
  # every `docker exec` (podman 4.3.1 leaves it running after the exec ended,
  # even once its container is removed).
  local p c
  for _ in $(seq 50); do pgrep -f -- "$dir/s[0-9]" >/dev/null || break; sleep 0.2; done
  for p in $(pgrep -f -- "$dir/s[0-9]" || true); do
    [ "$p" = $$ ] && continue
    log "killing leftover process $p: $(ps -o args= -p "$p" | cut -c1-150)"
    for c in $(pgrep -P "$p" || true); do kill -KILL "$c" 2>/dev/null || true; done
    kill -KILL "$p" 2>/dev/null || true
  done
  # A killed service can leave its overlay and shm mounts behind, and rm -rf
  # cannot delete a mount point. Deepest first.
  local m
  findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
  rm -rf "$dir"
}

# The images, built once in a storage of their own and saved as archives, so
# that every server loads the same bytes and gets the same image ID.
build_images() {
  local b=$dir/build r=$dir/build/rootfs
  local bb
  bb=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
  # A dynamically linked busybox would need a libc in the rootfs.
  ldd "$bb" >/dev/null 2>&1 && die "$bb is not static (apt-get install busybox-static)"
  mkdir -p "$r/bin" "$r/www" "$r/tmp" "$r/etc"
  cp "$bb" "$r/bin/busybox"
  chroot "$r" /bin/busybox --install -s /bin
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
  echo 'root:x:0:' >"$r/etc/group"
  tar -C "$r" -cf "$b/rootfs.tar" .
  local bpm=(env CONTAINERS_CONF="$dir/containers.conf" podman
    --root "$b/root" --runroot "$b/run" --tmpdir "$b/tmp")
  # The CMD is expanded by the container's sh, not here.
  # shellcheck disable=SC2016
  "${bpm[@]}" import --quiet \
    --change 'EXPOSE 80/tcp' \
    --change 'CMD ["sh","-c","echo auth $SERVICE_ID on $(hostname) > /www/index.html; exec httpd -f -p 80 -h /www"]' \
    "$b/rootfs.tar" localhost/auth:1 >/dev/null
  "${bpm[@]}" import --quiet "$b/rootfs.tar" localhost/busybox:full >/dev/null
  "${bpm[@]}" save --quiet --format docker-archive -o "$b/auth.tar" localhost/auth:1
  "${bpm[@]}" save --quiet --format docker-archive -o "$b/busybox.tar" localhost/busybox:full
  # The build storage is not needed any more; its overlay mounts would only
  # have to be cleaned up later.
  "${bpm[@]}" system reset --force >/dev/null 2>&1 || true
  rm -rf "$b/root" "$b/run" "$b/tmp" "$r"
}

start_servers() {
  local n=$1 t0 i port lo
  t0=$(date +%s.%N)
  for tool in podman runc curl docker ss findmnt; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs podman, runc, busybox-static)"
  done
  stop_servers

  # Check every port before starting anything: a clear error, nothing to undo.
  for i in $(seq "$n"); do
    port=$((api_base + i))
    port_in_use "$port" && die "port 127.0.0.1:$port for s$i is taken (set PODMAN_API_BASE)"
    lo=$((range_base + 1000 * i))
    for p in $(seq "$lo" $((lo + range_size - 1))); do
      port_in_use "$p" && die "port $p in s$i's port_range is taken (set PODMAN_RANGE_BASE)"
    done
  done

  mkdir -p "$dir"
  touch "$dir/.podman-servers"
  trap 'log "start failed; cleaning up"; stop_servers' ERR
  # default_ulimits = []: the machine's hard nofile limit is below podman's
  # default, so setrlimit fails. runc: crun rejects this machine's hybrid
  # cgroups. cgroupfs: no systemd here.
  cat >"$dir/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF

  # A registry on loopback (the e2e test's, at PODMAN_REGISTRY, default
  # 127.0.0.1:23790) is plain HTTP: every server may pull from it without TLS.
  cat >"$dir/registries.conf" <<EOF
unqualified-search-registries = []

[[registry]]
location = "${PODMAN_REGISTRY:-127.0.0.1:23790}"
insecure = true
EOF

  # Each server gets its own --tmpdir: services sharing one share /run/libpod,
  # and so each other's event log.
  for i in $(seq "$n"); do
    port=$((api_base + i))
    mkdir -p "$dir/s$i/root" "$dir/s$i/run" "$dir/s$i/tmp"
    echo "$port" >"$dir/s$i/port"
    # setsid: its own session, so a Ctrl-C meant for the caller or the end
    # of the caller's shell does not stop it; `stop` does.
    CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_REGISTRIES_CONF="$dir/registries.conf" setsid podman \
      --root "$dir/s$i/root" --runroot "$dir/s$i/run" --tmpdir "$dir/s$i/tmp" \
      system service --time=0 "tcp:127.0.0.1:$port" \
      </dev/null >"$dir/s$i/service.log" 2>&1 &
    echo $! >"$dir/s$i/pid"
  done

  # Build while the services start.
  build_images

  for i in $(seq "$n"); do
    port=$(cat "$dir/s$i/port")
    local up=
    for _ in $(seq 100); do
      if ping_ok "$port"; then up=1; break; fi
      kill -0 "$(cat "$dir/s$i/pid")" 2>/dev/null || break
      sleep 0.2
    done
    [ -n "$up" ] || { tail -5 "$dir/s$i/service.log" >&2; die "s$i (127.0.0.1:$port) does not answer /_ping"; }
  done

  for i in $(seq "$n"); do
    port=$(cat "$dir/s$i/port")
    timeout 60 docker -H "tcp://127.0.0.1:$port" load -q -i "$dir/build/auth.tar" >/dev/null &
    timeout 60 docker -H "tcp://127.0.0.1:$port" load -q -i "$dir/build/busybox.tar" >/dev/null &
  done
  wait_all

  # Same image ID everywhere, or the proxy's image lookup would be ambiguous.
  local want got
  for img in localhost/auth:1 localhost/busybox:full; do
    want=
    for i in $(seq "$n"); do
      got=$(timeout 30 docker -H "tcp://127.0.0.1:$(cat "$dir/s$i/port")" image inspect -f '{{.Id}}' "$img")
      [ -n "$want" ] || want=$got
      [ "$got" = "$want" ] || die "$img has ID $got on s$i, $want on s1"
    done
  done

  # One throwaway container per server: proves its runtime works and that
  # its containers sit on podman's bridge with 10.88.0.1 as their gateway,
  # which is the inventory's `address`. (netavark creates podman0 with the
  # first container and deletes it with the last one, so 10.88.0.1 exists only
  # while some container runs; the containers that need it are such.)
  for i in $(seq "$n"); do
    port=$(cat "$dir/s$i/port")
    timeout 60 docker -H "tcp://127.0.0.1:$port" run --rm localhost/busybox:full ip route >"$dir/s$i/route.txt" &
  done
  wait_all
  for i in $(seq "$n"); do
    grep -q '^default via 10\.88\.0\.1 ' "$dir/s$i/route.txt" \
      || die "s$i's containers do not route via 10.88.0.1: $(cat "$dir/s$i/route.txt")"
  done

  {
    echo '['
    for i in $(seq "$n"); do
      lo=$((range_base + 1000 * i))
      printf '  {"hostname": "s%d", "address": "10.88.0.1", "docker": "tcp://127.0.0.1:%d", "port_range": [%d, %d]}%s\n' \
        "$i" "$(cat "$dir/s$i/port")" "$lo" $((lo + range_size - 1)) "$([ "$i" -lt "$n" ] && echo ,)"
    done
    echo ']'
  } >"$dir/inventory.json"
  trap - ERR
  log "$n servers up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; inventory: $dir/inventory.json"
}

# `wait` for every background job, failing if any failed (a plain `wait`
# returns 0 whatever they returned).
wait_all() {
  local rc=0 j
  for j in $(jobs -p); do
    # The services are setsid'd children too; skip them.
    grep -qx "$j" "$dir"/s*/pid 2>/dev/null && continue
    wait "$j" || rc=$?
  done
  return "$rc"
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")
case $cmd in
  start)
    [ $# -eq 3 ] || usage
    [[ $3 =~ ^[1-9]$ ]] || die "N must be 1..9 (port ranges are 1000 apart)"
    [ "$(id -u)" -eq 0 ] || die "needs root (rootful podman: its bridge is what the servers share)"
    start_servers "$3"
    ;;
  stop)
    [ $# -eq 2 ] || usage
    stop_servers
    ;;
  *) usage ;;
esac
