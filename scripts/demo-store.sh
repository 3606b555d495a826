#!/usr/bin/env bash
# flocker's decisions alone, no Docker and no etcd: seed a 3-server inventory
# in a fresh embedded store, place a small app with `flocker place`, print
# each decision and the routes the store now holds. (scripts/demo.sh runs
# the real thing: the docker CLI through `flocker proxy` onto podman.)
#
#   auth.1, auth.2   two copies of a service publishing 80/tcp
#   db.1             postgres with the named volume pgdata
#   data.1           a data container holding the named volume appdata
#   myapp.1          links `auth` (the group) and --volumes-from data.1
#
# Each decision is printed as `flocker place` prints it (one JSON line);
# DEMO_PRETTY=1 indents them.
# Usage: scripts/demo-store.sh      (installs what a build lacks and builds
#                                   the flocker binary if needed)
#        FLOCKER=/path/to/flocker scripts/demo-store.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${FLOCKER:-}" ]; then
  # What a build needs on a fresh machine (protoc, the wasm32 target).
  scripts/setup.sh build
  cargo build --quiet -p flocker-host --bin flocker
  FLOCKER="${CARGO_TARGET_DIR:-$PWD/target}/debug/flocker"
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export FLOCKER_STORE="file:$dir/demo.redb"

echo "# store: $FLOCKER_STORE"
echo "\$ flocker inventory add"
"$FLOCKER" inventory add <<'JSON'
[
  {"hostname": "node1", "address": "10.0.0.1", "tags": ["ssd"]},
  {"hostname": "node2", "address": "10.0.0.2", "tags": ["ssd"]},
  {"hostname": "node3", "address": "10.0.0.3", "port_range": [30000, 30099]}
]
JSON
"$FLOCKER" inventory ls
echo

place() {
  local what=$1 request=$2
  echo "\$ flocker place   # $what"
  echo "  $request"
  if [ -n "${DEMO_PRETTY:-}" ]; then
    "$FLOCKER" place --pretty <<<"$request"
  else
    "$FLOCKER" place <<<"$request"
  fi
  echo
}

place "auth.1: a web service" \
  '{"name": "auth.1", "container": {"Image": "acme/auth", "Env": ["PASSWORD=s3cret"]}, "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}}'
place "auth.2: its second copy lands on another server" \
  '{"name": "auth.2", "container": {"Image": "acme/auth", "Env": ["PASSWORD=s3cret"]}, "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}}'
place "db.1: postgres on the named volume pgdata (claimed for its server)" \
  '{"name": "db.1", "container": {"Image": "postgres:16", "HostConfig": {"Binds": ["pgdata:/var/lib/postgresql/data"]}}, "image": {"Config": {"ExposedPorts": {"5432/tcp": {}}}}}'
place "data.1: a data container holding the named volume appdata" \
  '{"name": "data.1", "container": {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["appdata:/data"]}}}'
place "myapp.1: --link auth:auth --volumes-from data.1 (pinned to data.1's server)" \
  '{"name": "myapp.1", "container": {"Image": "acme/myapp", "HostConfig": {"Links": ["auth:auth"], "VolumesFrom": ["data.1"]}}, "image": {"Config": {"ExposedPorts": {"8080/tcp": {}}}}}'

echo "\$ flocker routes ls"
"$FLOCKER" routes ls
