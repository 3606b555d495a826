#!/usr/bin/env bash
# TLS end to end with real parts: openssl-made certificates
# (tests/tls/make-certs.sh), the real docker CLI, curl, a podman server.
#
#   docker --tlsverify ──TLS──▶ proxy A ──TLS (client cert)──▶ proxy B ──▶ podman
#
# Proxy B is the TLS-only "daemon" proxy A dials (podman's service has no
# TLS of its own), so one run shows both halves: a listener that lets in
# only certificates from its CA, and a dial that checks the daemon's
# certificate and shows its own. Then `flocker serve` with curl, and the
# refusals: no certificate, another CA's, plain HTTP, a dial without a
# client certificate, a dial that does not trust the daemon.
#
# Same TAP lines and last line as e2e.sh. Needs root (rootful podman),
# docker, podman, curl, openssl.
#
#   FLOCKER=/path/to/flocker tests/proxy/tls.sh   (default: cargo build it)
#   TLS_KEEP=1   keep the work directory
#
# Test traffic goes only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ -z "${FLOCKER:-}" ]; then
  cargo build --quiet -p flocker-host --bin flocker
  FLOCKER="${CARGO_TARGET_DIR:-$repo/target}/debug/flocker"
fi
for tool in docker podman curl openssl python3; do
  command -v "$tool" >/dev/null || { echo "tls: $tool not found (scripts/setup.sh)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "tls: needs root (rootful podman)" >&2; exit 1; }

D=$(mktemp -d /tmp/flocker-tls.XXXXXX)
SERVERS=$D/servers
# Ports apart from e2e.sh's, so the two can run on one machine.
export PODMAN_API_BASE=27770 PODMAN_RANGE_BASE=27000
pids=()
cleanup() {
  stop_pids
  "$repo/scripts/podman-servers.sh" stop "$SERVERS" || true
  if [ -n "${TLS_KEEP:-}" ]; then echo "# kept $D" >&2; else rm -rf "$D"; fi
}
trap cleanup EXIT

# shellcheck source=tests/proxy/lib.sh
. "$repo/tests/proxy/lib.sh"

C=$D/certs
"$repo/tests/tls/make-certs.sh" "$C"
# Listener flags (server side) and client flags, as Docker names them. A
# 1.5 s header timeout, so the streams below outlast it many times over.
LISTEN_TLS=(--tlsverify --tlscacert "$C/ca.pem" --tlscert "$C/server-cert.pem" --tlskey "$C/server-key.pem"
  --header-timeout-ms 1500)
CLIENT_TLS=(--tlsverify --tlscacert "$C/ca.pem" --tlscert "$C/cert.pem" --tlskey "$C/key.pem")
# Certificate directories for proxies dialing B, in DOCKER_CERT_PATH's layout.
mkdir -p "$D/dial-nocert" "$D/dial-wrongca"
cp "$C/ca.pem" "$D/dial-nocert/"
cp "$C/other/ca.pem" "$D/dial-wrongca/"
cp "$C/cert.pem" "$C/key.pem" "$D/dial-wrongca/"

dk() { timeout 60 docker "$@"; }
flocker() { timeout 60 "$FLOCKER" "$@"; }

# start TAG STORE ARGS...: a flocker proxy in the background; sets url.
start() {
  local tag=$1 store=$2
  shift 2
  "$FLOCKER" proxy --store "$store" --listen tcp://127.0.0.1:0 "$@" >"$D/$tag.out" 2>"$D/$tag.err" &
  pids+=($!)
  url=$(listening_url "$D/$tag.out" "$!" 300 0.2) && return 0
  echo "tls: proxy $tag did not start: $(tail -5 "$D/$tag.err")" >&2
  return 1
}

# inventory STORE DOCKER_URL: the podman server's record, dialed at DOCKER_URL.
inventory() {
  python3 - "$SERVERS/inventory.json" "$2" >"$D/inv.json" <<'EOF'
import json, sys
servers = json.load(open(sys.argv[1]))
servers[0]["docker"] = sys.argv[2]
print(json.dumps(servers[:1]))
EOF
  flocker inventory add --store "$1" "$D/inv.json" >/dev/null
}

echo "# work dir $D"
if ! "$repo/scripts/podman-servers.sh" start "$SERVERS" 1; then
  nok "a podman server starts" "see the lines above"
  echo "$passed passed, $failed failed"
  exit 1
fi
podman_url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["docker"])' "$SERVERS/inventory.json")

inventory "file:$D/b.redb" "$podman_url"
start b "file:$D/b.redb" "${LISTEN_TLS[@]}" || { nok "proxy B starts with --tlsverify" "$(tail -3 "$D/b.err")"; exit 1; }
b_url=$url
inventory "file:$D/a.redb" "https://${b_url#tcp://}"
start a "file:$D/a.redb" "${LISTEN_TLS[@]}" --server-certs "$C" --metrics-listen 127.0.0.1:0 ||
  { nok "proxy A starts" "$(tail -3 "$D/a.err")"; exit 1; }
a_url=$url
echo "# A $a_url -> B $b_url -> podman $podman_url"

# --- the docker CLI with a good certificate -------------------------------------
rc=0; out=$(dk "${CLIENT_TLS[@]}" -H "$a_url" run --rm --name tls.1 localhost/busybox:full echo through-two-tls-hops 2>&1) || rc=$?
check "docker --tlsverify run through A and B prints the container's output" "rc=$rc $out" \
  has "$out" '^through-two-tls-hops$'
rc=0; out=$(DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$C dk -H "$a_url" run -d --name tls.2 localhost/busybox:full sleep 120 2>&1) || rc=$?
check "DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=... run -d prints an ID" "rc=$rc $out" \
  test "$rc" -eq 0 -a "${#out}" -ge 12
rc=0; out=$(dk -H "$podman_url" inspect --format '{{.State.Running}}' tls.2 2>&1) || rc=$?
check "tls.2 runs on the podman server itself" "rc=$rc $out" same "$out" true
rc=0; out=$(dk "${CLIENT_TLS[@]}" -H "$a_url" ps --format '{{.Names}}' 2>&1) || rc=$?
check "ps through A lists tls.2" "rc=$rc $out" has "$out" '^tls.2$'

# --- streams outlast the header timeout --------------------------------------------
ticks='i=0; while [ $i -lt 10 ]; do echo tick$i; i=$((i+1)); sleep 0.5; done'
rc=0; out=$(dk "${CLIENT_TLS[@]}" -H "$a_url" run --rm --name tls.3 localhost/busybox:full sh -c "$ticks" 2>&1) || rc=$?
check "an attached run streams for 5 s through both TLS hops (header timeout 1.5 s)" "rc=$rc $out" \
  test "$rc" -eq 0 -a -n "$(has "$out" '^tick9$' && echo y)"
rc=0; out=$(dk "${CLIENT_TLS[@]}" -H "$a_url" run -d --name tls.4 localhost/busybox:full sh -c "$ticks" 2>&1) || rc=$?
rc=0; out=$(dk "${CLIENT_TLS[@]}" -H "$a_url" logs -f tls.4 2>&1) || rc=$?
check "logs -f follows for 5 s through both TLS hops" "rc=$rc $out" \
  test "$rc" -eq 0 -a -n "$(has "$out" '^tick9$' && echo y)"
dk "${CLIENT_TLS[@]}" -H "$a_url" rm -f tls.4 >/dev/null 2>&1 || true

# --- refused clients ---------------------------------------------------------------
rc=0; out=$(dk --tls --tlscacert "$C/ca.pem" -H "$a_url" ps 2>&1) || rc=$?
check "without a client certificate the CLI is refused" "rc=$rc $out" \
  test "$rc" -ne 0 -a -n "$(hasi "$out" 'certificate' && echo y)"
rc=0; out=$(dk --tlsverify --tlscacert "$C/ca.pem" --tlscert "$C/other/cert.pem" --tlskey "$C/other/key.pem" -H "$a_url" ps 2>&1) || rc=$?
check "a certificate from another CA is refused" "rc=$rc $out" \
  test "$rc" -ne 0 -a -n "$(hasi "$out" 'certificate\|authority' && echo y)"
rc=0; out=$(dk -H "$a_url" ps 2>&1) || rc=$?
check "plain HTTP to the TLS listener is refused" "rc=$rc $out" test "$rc" -ne 0
rc=0; out=$(dk "${CLIENT_TLS[@]}" -H "$a_url" ps 2>&1) || rc=$?
check "after the refusals a good client still gets in" "rc=$rc $out" test "$rc" -eq 0

# --- refused dials -------------------------------------------------------------------
# probe TAG CERTS: a proxy on A's inventory dialing B with CERTS; what a run says.
probe() {
  cp "$D/a.redb" "$D/$1.redb"
  start "$1" "file:$D/$1.redb" "${LISTEN_TLS[@]}" --server-certs "$2" --health-ms 200 || return 1
  dk "${CLIENT_TLS[@]}" -H "$url" run --rm --name "$1.1" localhost/busybox:full echo should-not-run 2>&1
}
rc=0; out=$(probe c "$D/dial-nocert") || rc=$?
check "a dial without a client certificate is refused by B (nothing runs)" "rc=$rc $out $(tail -2 "$D/c.err")" \
  test "$rc" -ne 0 -a -z "$(has "$out" should-not-run && echo y)"
rc=0; out=$(probe d "$D/dial-wrongca") || rc=$?
check "a dial that does not trust B's certificate fails (nothing runs)" "rc=$rc $out $(tail -2 "$D/d.err")" \
  test "$rc" -ne 0 -a -z "$(has "$out" should-not-run && echo y)"
err=$(cat "$D/c.err" "$D/d.err")
check "the proxies say why the server is down (the TLS failure)" "$err" hasi "$err" 'certificate\|tls\|handshake'

# --- the metrics listener over TLS ------------------------------------------------
m_url=$(sed -n 's|^metrics on \(https://.*\)$|\1|p' "$D/a.out")
rc=0; out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" --cert "$C/cert.pem" --key "$C/key.pem" "$m_url" 2>&1) || rc=$?
check "metrics answer over TLS with a client certificate" "rc=$rc $(head -c 300 <<<"$out")" \
  has "$out" '^flocker_'
rc=0; out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" "$m_url" 2>&1) || rc=$?
check "metrics refuse a client without a certificate" "rc=$rc $out" test "$rc" -ne 0

rc=0; out=$(dk "${CLIENT_TLS[@]}" -H "$a_url" rm -f tls.2 2>&1) || rc=$?
check "rm -f tls.2 through A" "rc=$rc $out" test "$rc" -eq 0

# --- flocker serve with curl ---------------------------------------------------------
# serve_on TAG ARGS...: flocker serve in the background; sets url (https://...).
serve_on() {
  local tag=$1
  shift
  "$FLOCKER" serve --store "file:$D/a.redb" --listen 127.0.0.1:0 "$@" >"$D/$tag.out" 2>"$D/$tag.err" &
  pids+=($!)
  for _ in $(seq 300); do
    url=$(sed -n 's|^listening on \(https*://.*\)$|\1|p' "$D/$tag.out" | head -1)
    [ -n "$url" ] && return 0
    sleep 0.2
  done
  return 1
}
serve_on serve "${LISTEN_TLS[@]}" || nok "serve starts with --tlsverify" "$(tail -3 "$D/serve.err")"
s_url=$url
check "serve prints an https:// URL" "$s_url" has "$s_url" '^https://127.0.0.1:'
rc=0; out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" --cert "$C/cert.pem" --key "$C/key.pem" "$s_url/healthz" 2>&1) || rc=$?
check "serve answers /healthz to a client certificate" "rc=$rc $out" has "$out" '"status":"ok"'
rc=0; out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" --cert "$C/cert.pem" --key "$C/key.pem" \
  -H 'Content-Type: application/json' -d '{"name":"web.1","container":{"Image":"web"}}' "$s_url/v1/decide" 2>&1) || rc=$?
check "serve decides for a client certificate" "rc=$rc $out" has "$out" '"route"'
rc=0; out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" "$s_url/healthz" 2>&1) || rc=$?
check "serve refuses curl without a certificate" "rc=$rc $out" test "$rc" -ne 0
rc=0; out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" --cert "$C/other/cert.pem" --key "$C/other/key.pem" "$s_url/healthz" 2>&1) || rc=$?
check "serve refuses another CA's certificate" "rc=$rc $out" test "$rc" -ne 0
rc=0; out=$(curl -sS --max-time 10 "http://${s_url#https://}/healthz" 2>&1) || rc=$?
check "serve refuses plain HTTP" "rc=$rc $out" test "$rc" -ne 0 -a -z "$(has "$out" '"status"' && echo y)"
serve_on serve-tls --tlscert "$C/server-cert.pem" --tlskey "$C/server-key.pem" ||
  nok "serve starts with --tlscert/--tlskey" "$(tail -3 "$D/serve-tls.err")"
rc=0; out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" "$url/healthz" 2>&1) || rc=$?
check "serve with --tlscert/--tlskey alone speaks TLS without checking clients" "rc=$rc $out" \
  has "$out" '"status":"ok"'

# --- exposure ---------------------------------------------------------------------------
"$FLOCKER" proxy --store "file:$D/a.redb" --listen tcp://0.0.0.0:0 --insecure-listen >"$D/open.out" 2>"$D/open.err" &
pids+=($!)
rc=0; url=$(listening_url "$D/open.out" "$!" 300 0.2) || rc=$?
err=$(cat "$D/open.err")
check "--insecure-listen serves 0.0.0.0 with a warning" "rc=$rc $url $err" \
  test "$rc" -eq 0 -a -n "$(has "$err" 'WARNING' && echo y)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
