#!/usr/bin/env bash
# The Go binding (bindings/go) and the Go proxy example (examples/go-proxy):
# builds the policy module, checks the embedded copy against it, generates
# the differential corpus natively, then go vet, go test (with every input
# it needs set: FLOCKER_CI=1 turns a missing one into a failure), a 20 s
# fuzz pass, and the docker CLI through the Go proxy onto podman servers.
# Assumes scripts/setup.sh ran.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}

nice -n 10 cargo build --quiet -p flocker-wasm --lib --target wasm32-unknown-unknown --profile wasm-release
export FLOCKER_POLICY_WASM="$target/wasm32-unknown-unknown/wasm-release/flocker_policy.wasm"
# A stale embedded copy is refreshed, so the rest tests the module as built,
# and the run fails at the end: the fresh copy must be committed.
stale=0
if ! cmp -s "$FLOCKER_POLICY_WASM" bindings/go/flocker_policy.wasm; then
  echo "test-go: the embedded module was stale; refreshing it" >&2
  bindings/go/update-module.sh "$FLOCKER_POLICY_WASM"
  stale=1
fi

export FLOCKER_GO_CORPUS="$target/go-corpus"
nice -n 10 cargo run --quiet -p flocker-core --example go_corpus -- "$FLOCKER_GO_CORPUS" 1000

export FLOCKER_CI=1
cd bindings/go
nice -n 10 go vet ./...
# serveclient's test needs a flocker binary; scripts/test-host.sh runs it.
mapfile -t pkgs < <(go list ./... | grep -v /serveclient)
nice -n 10 go test -count=1 "${pkgs[@]}"
# The pool under the race detector: 16 goroutines on 8 instances, and the
# instances discarded by the limit tests.
nice -n 10 go test -race -count=1 -run 'Concurrent|Deadline|MemoryCap|Snapshot|Closed' .
nice -n 10 go test -run '^$' -fuzz '^FuzzDecide$' -fuzztime 20s .

cd "$root/examples/go-proxy"
nice -n 10 go vet ./...
cd "$root"
tests/proxy/go-proxy.sh
if [ "$stale" -ne 0 ]; then
  echo "test-go: FAIL: bindings/go/flocker_policy.wasm was stale (now refreshed): commit it" >&2
  exit 1
fi
