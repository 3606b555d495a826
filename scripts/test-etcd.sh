#!/usr/bin/env bash
# Runs the etcd tests against a real etcd (Debian's etcd-server; the test
# harness starts its own members on loopback with random ports and a
# temporary data directory, and kills them afterwards).
#
# The race test drives the real `flocker` binary, so it is built first.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v "${FLOCKER_ETCD:-etcd}" >/dev/null; then
  echo "test-etcd: no etcd binary; install etcd-server (scripts/setup.sh does)" >&2
  exit 1
fi
cargo build -p flocker-host --bin flocker
cargo test -p flocker-tests --test etcd "$@"
