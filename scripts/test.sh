#!/usr/bin/env bash
# Every test flocker has, on a fresh machine: installs what is missing, then
# runs the Rust tests (core rules and properties, host CLI and stores, real
# etcd, native vs WASM), the JavaScript and Python hosts of the policy
# module, the Go client against a real `flocker serve`, and the docker CLI
# through the Node example proxy onto two podman servers and through
# `flocker proxy` onto three, then the same CLI over TLS.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The host and etcd tests drive the real flocker binary: build it first.
cargo build --workspace --all-targets
cargo test --workspace
scripts/test-wasm.sh
scripts/test-host.sh
# The Go package on wazero: vet, tests against the native engine, a short
# fuzz pass, and its example proxy with the docker CLI onto podman.
scripts/test-go.sh
# The Node example proxy (examples/node-proxy, on the package test-wasm.sh
# built) with the docker CLI onto two podman servers; root and podman too.
tests/proxy/node-proxy.sh
# Last: it needs root and podman (setup installed it) and takes a few minutes.
FLOCKER="${CARGO_TARGET_DIR:-$PWD/target}/debug/flocker" tests/proxy/e2e.sh
# TLS with real certificates: the docker CLI through two TLS proxies onto
# podman, flocker serve with curl, and every refusal.
FLOCKER="${CARGO_TARGET_DIR:-$PWD/target}/debug/flocker" tests/proxy/tls.sh
