#!/usr/bin/env bash
# Builds flocker_policy.wasm from this repository's wasm/ crate and copies it
# into this package, where go:embed picks it up (DefaultModule).
#   bindings/go/update-module.sh            build, then copy
#   bindings/go/update-module.sh FILE.wasm  copy FILE (already built)
# Commit the copy: `go get` users build without a Rust toolchain.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
src=${1:-}
if [ -z "$src" ]; then
  (cd "$root" && nice -n 10 cargo build --quiet -p flocker-wasm --lib \
    --target wasm32-unknown-unknown --profile wasm-release)
  src="${CARGO_TARGET_DIR:-$root/target}/wasm32-unknown-unknown/wasm-release/flocker_policy.wasm"
fi
cp "$src" "$here/flocker_policy.wasm"
echo "bindings/go: flocker_policy.wasm <- $src ($(wc -c <"$here/flocker_policy.wasm") bytes)"
