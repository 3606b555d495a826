#!/usr/bin/env bash
# Runs the Go client's test (bindings/go/serveclient) against a real
# `flocker serve` on a loopback port. Assumes scripts/setup.sh ran (Go, and
# `go mod download` in bindings/go, so GOPROXY=off finds wazero cached).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p flocker-host --bin flocker
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/flocker"

cd bindings/go
# Offline: setup filled the module cache (wazero, and the Go toolchain
# go.mod asks for when the local go is older).
export GOPROXY=off
export FLOCKER_BIN="$bin"
go vet ./serveclient/...
go test -count=1 ./serveclient/...
