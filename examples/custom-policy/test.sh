#!/usr/bin/env bash
# Builds the packing module for wasm32, holds it to the contract with
# `flocker policy check`, pushes it into a scratch file store and shows the
# swap: two servers, one container already on n1; the default module puts
# the next one on the empty n2, the pushed module on the loaded n1.
# Uses the flocker binary the workspace build made (scripts/test.sh builds
# it first); FLOCKER overrides it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
flocker=${FLOCKER:-$target/debug/flocker}

echo "== build flocker_pack_policy.wasm (wasm-release)"
cargo build --quiet -p flocker-custom-policy --lib --target wasm32-unknown-unknown --profile wasm-release
module=$target/wasm32-unknown-unknown/wasm-release/flocker_pack_policy.wasm
echo "flocker_pack_policy.wasm: $(stat -c %s "$module") bytes"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

fail() {
  echo "custom-policy: $*" >&2
  exit 1
}

echo "== flocker policy check"
"$flocker" policy check --cases 200 "$module" | tee "$scratch/check.out"
grep -q "every answer within the contract" "$scratch/check.out" || fail "policy check did not pass"

# The same cluster in two stores: n1 and n2, with w.1 placed (on n1: both
# empty, the smaller hostname wins under either preference).
servers='[{"hostname":"n1","address":"10.0.0.1","max_containers":5},{"hostname":"n2","address":"10.0.0.2","max_containers":5}]'
place() { # STORE NAME -> the chosen server's hostname
  echo "{\"name\":\"$2\",\"container\":{\"Image\":\"nginx\"}}" |
    "$flocker" place --engine wasm --store "$1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["server"]["hostname"])'
}
for s in default packed; do
  store=file:$scratch/$s.redb
  echo "$servers" | "$flocker" inventory add --store "$store" >/dev/null
  first=$(place "$store" w.1)
  [ "$first" = n1 ] || fail "$s: w.1 landed on $first, not n1"
done

echo "== the default module spreads"
got=$(place "file:$scratch/default.redb" w.2)
echo "default module: w.2 -> $got"
[ "$got" = n2 ] || fail "the default module put w.2 on $got, not the empty n2"

echo "== flocker policy push, then the pushed module packs"
"$flocker" policy push --store "file:$scratch/packed.redb" "$module"
"$flocker" policy ls --store "file:$scratch/packed.redb" --json | tee "$scratch/ls.json"
python3 - "$scratch/ls.json" <<'PY' || fail "the pushed module is not the active one"
import json, sys
ls = json.load(open(sys.argv[1]))
active = [m for m in ls["history"] if m["digest"] == ls["active"]]
assert active and active[0]["info"]["name"] == "flocker-pack", ls
PY
got=$(place "file:$scratch/packed.redb" w.2)
echo "pushed module: w.2 -> $got"
[ "$got" = n1 ] || fail "the pushed module put w.2 on $got, not the loaded n1"
echo "custom-policy: checked, pushed, and it packs"
