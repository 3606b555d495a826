#!/usr/bin/env bash
# Builds the npm package in bindings/js: the flocker-js crate for wasm32, then
# wasm-bindgen's Node and web bindings into pkg/node and pkg/web, and the
# entry points index.js and web.mjs from lib/wrapper.js.
# `npm pack` in bindings/js then makes the installable package.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$want" ]; then
  echo "build.sh: wasm-bindgen-cli $want is needed (found: ${have:-none}); run scripts/setup.sh" >&2
  exit 1
fi

# The wasm-release profile strips, so wasm-bindgen warns that it cannot see the
# target_features section and assumes the default features, which is what
# this build uses. (Not stripping makes the module 100 KB bigger.)
cargo build --quiet -p flocker-js --lib --target wasm32-unknown-unknown --profile wasm-release
wasm=${CARGO_TARGET_DIR:-$root/target}/wasm32-unknown-unknown/wasm-release/flocker_js.wasm
rm -rf "$here/pkg"
wasm-bindgen --target nodejs --out-dir "$here/pkg/node" "$wasm"
wasm-bindgen --target web --out-dir "$here/pkg/web" "$wasm"
# The web build is an ES module in a package without "type": mark its folder,
# or Node warns and reparses it on every import.
echo '{"type": "module"}' >"$here/pkg/web/package.json"
# index.js (CommonJS) and web.mjs (ESM) from the one wrapper source.
node "$here/lib/gen-entries.mjs"
echo "build.sh: built $(du -k "$here/pkg/node/flocker_js_bg.wasm" | cut -f1) KB module into bindings/js/pkg/{node,web}"
