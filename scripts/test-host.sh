#!/usr/bin/env bash
# Runs the Go client's test (examples/go-client) against a real `flocker
# serve` on a loopback port. Assumes scripts/setup.sh ran (golang-go).
# Standard library only: no module downloads (GOPROXY=off), the local Go.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p flocker-host --bin flocker
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/flocker"

cd examples/go-client
export GOTOOLCHAIN=local GOPROXY=off
export FLOCKER_BIN="$bin"
go vet ./...
go test -count=1 ./...
