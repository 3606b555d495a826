#!/usr/bin/env bash
# The proxy's cost, measured against the direct path in one run, with
# hyperfine (docs/PERFORMANCE.md, "Proxy"):
#
#   1. `docker run -d --rm IMAGE true`: through `flocker proxy` vs straight
#      to one server (the same server the proxy chooses is not forced: each
#      run is decided).
#   2. `docker logs` of a container that wrote 100 MiB: through the proxy vs
#      straight to its server.
#   3. `docker ps -a`: through the proxy over three servers vs one server.
#   4. TLS's cost: `docker ps -a` and `docker run -d --rm` through a second
#      proxy with --tlsverify (certificates from tests/tls/make-certs.sh)
#      vs the plain one, same store.
#
# Usage: scripts/bench-proxy.sh [RUNS]   (default 20; needs root, podman,
#        hyperfine; FLOCKER=/path/to/flocker to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}

command -v hyperfine >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null
}
if [ -z "${FLOCKER:-}" ]; then
  scripts/setup.sh build
  cargo build --quiet --release -p flocker-host --bin flocker
  FLOCKER="${CARGO_TARGET_DIR:-$PWD/target}/release/flocker"
fi

dir=$(mktemp -d /tmp/flocker-bench.XXXXXX)
servers="$dir/servers"
proxy_pid=
tls_pid=
cleanup() {
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; fi
  if [ -n "$tls_pid" ]; then kill "$tls_pid" 2>/dev/null || true; fi
  scripts/podman-servers.sh stop "$servers" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

PODMAN_API_BASE=${PODMAN_API_BASE:-25770} PODMAN_RANGE_BASE=${PODMAN_RANGE_BASE:-40000} \
  scripts/podman-servers.sh start "$servers" 3 >"$dir/servers.log" 2>&1
store="file:$dir/bench.redb"
"$FLOCKER" inventory add --store "$store" "$servers/inventory.json" >/dev/null
s1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["docker"])' "$servers/inventory.json")
"$FLOCKER" proxy --store "$store" --listen tcp://127.0.0.1:0 >"$dir/proxy.out" 2>"$dir/proxy.err" &
proxy_pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$dir/proxy.out" 2>/dev/null && break; sleep 0.1; done
proxy=$(sed -n 's/^listening on //p' "$dir/proxy.out" | head -1)
[ -n "$proxy" ] || { cat "$dir/proxy.err"; exit 1; }
echo "# servers: 3 podman $(podman --version | awk '{print $3}'); proxy $proxy; direct $s1; $runs runs"

# Medians from hyperfine's JSON (the goals are stated at the median).
medians() {
  python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"median {r['command']}: {r['median'] * 1000:.1f} ms")
PY
}

hyperfine --style basic --warmup 3 --runs "$runs" --export-json "$dir/run.json" \
  -n 'run -d, proxy' "docker -H $proxy run -d --rm localhost/busybox:full true" \
  -n 'run -d, direct' "docker -H $s1 run -d --rm localhost/busybox:full true"
medians "$dir/run.json"

# LOGS_MIB MiB of log lines on s1 (default 100), created straight there so
# both paths read the same container.
# LOGS_MIB=0 skips this part (it takes about 15 minutes at 100 MiB here).
mib=${LOGS_MIB:-100}
if [ "$mib" -gt 0 ]; then
docker -H "$s1" run --name biglog localhost/busybox:full \
  sh -c "yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -c $((mib << 20))" >/dev/null
hyperfine --style basic --warmup 1 --runs "$(( runs < 10 ? runs : 10 ))" --export-json "$dir/logs.json" \
  -n "logs $mib MiB, proxy" "docker -H $proxy logs biglog >/dev/null" \
  -n "logs $mib MiB, direct" "docker -H $s1 logs biglog >/dev/null"
medians "$dir/logs.json"
fi

# A few containers on every server for the lists.
for i in 1 2 3 4 5 6; do docker -H "$proxy" run -d --name "list.$i" localhost/busybox:full true >/dev/null; done
hyperfine --style basic --warmup 3 --runs "$runs" --export-json "$dir/ps.json" \
  -n 'ps -a, proxy (3 servers)' "docker -H $proxy ps -a" \
  -n 'ps -a, direct (1 server)' "docker -H $s1 ps -a"
medians "$dir/ps.json"

# 4. The same proxy over TLS with client certificates.
tests/tls/make-certs.sh "$dir/certs"
c="$dir/certs"
"$FLOCKER" proxy --store "$store" --listen tcp://127.0.0.1:0 --tlsverify --tlscacert "$c/ca.pem" \
  --tlscert "$c/server-cert.pem" --tlskey "$c/server-key.pem" >"$dir/tls.out" 2>"$dir/tls.err" &
tls_pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$dir/tls.out" 2>/dev/null && break; sleep 0.1; done
tls=$(sed -n 's/^listening on //p' "$dir/tls.out" | head -1)
[ -n "$tls" ] || { cat "$dir/tls.err"; exit 1; }
tlsflags="--tlsverify --tlscacert $c/ca.pem --tlscert $c/cert.pem --tlskey $c/key.pem"
hyperfine --style basic --warmup 3 --runs "$runs" --export-json "$dir/tls.json" \
  -n 'ps -a, proxy TLS' "docker $tlsflags -H $tls ps -a" \
  -n 'ps -a, proxy plain' "docker -H $proxy ps -a" \
  -n 'run -d, proxy TLS' "docker $tlsflags -H $tls run -d --rm localhost/busybox:full true" \
  -n 'run -d, proxy plain' "docker -H $proxy run -d --rm localhost/busybox:full true"
medians "$dir/tls.json"
