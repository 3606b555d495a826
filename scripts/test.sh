#!/usr/bin/env bash
# Every test flocker has, on a fresh machine: installs what is missing, then
# runs the Rust tests (core rules and properties, host CLI and stores, real
# etcd, native vs WASM), the JavaScript and Python hosts of the policy
# module, the Go client against a real `flocker serve`, and the docker CLI
# through `flocker proxy` onto three podman servers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The host and etcd tests drive the real flocker binary: build it first.
cargo build --workspace --all-targets
cargo test --workspace
scripts/test-wasm.sh
scripts/test-host.sh
scripts/test-go.sh
# Last: it needs root and podman (setup installed it) and takes a few minutes.
FLOCKER="${CARGO_TARGET_DIR:-$PWD/target}/debug/flocker" tests/proxy/e2e.sh
