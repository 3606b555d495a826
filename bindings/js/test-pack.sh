#!/usr/bin/env bash
# The npm package as a user gets it: `npm pack` bindings/js (built by
# build.sh), install the tarball into a fresh folder with no network (it has
# no dependencies), then `require` it and `import` it (both the Node entry and
# the web entry) and decide examples/least-loaded.input.json. Each answer,
# pretty-printed in the example's layout, must equal
# examples/least-loaded.output.json byte for byte.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/flocker-pack.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

tgz=$(npm pack --silent --pack-destination "$scratch" "$here")
cd "$scratch"
echo '{"name": "fresh", "version": "1.0.0", "private": true}' >package.json
npm install --offline --no-audit --no-fund --silent "./$tgz"

input=$root/examples/least-loaded.input.json
# The engine's compact output, laid out as the examples are (2-space indent,
# keys in the engine's order: Python keeps them, JSON.parse would move
# integer-like keys first).
pretty() { python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin), indent=2, ensure_ascii=False))'; }

node -e 'const p = require("flocker-policy"); const fs = require("fs");
  process.stdout.write(p.decideJson(fs.readFileSync(process.argv[1], "utf8")))' "$input" | pretty >require.json
node --input-type=module -e 'import { decideJson } from "flocker-policy"; import { readFileSync } from "node:fs";
  process.stdout.write(decideJson(readFileSync(process.argv[1], "utf8")))' "$input" | pretty >import.json
node --input-type=module -e 'import { init, decideJson } from "flocker-policy/web"; import { readFileSync } from "node:fs";
  await init(readFileSync("node_modules/flocker-policy/pkg/web/flocker_js_bg.wasm"));
  process.stdout.write(decideJson(readFileSync(process.argv[1], "utf8")))' "$input" | pretty >web.json

status=0
for f in require import web; do
  if cmp -s "$f.json" "$root/examples/least-loaded.output.json"; then
    echo "test-pack: $f: least-loaded decided byte for byte as examples/least-loaded.output.json"
  else
    echo "test-pack: $f: differs from examples/least-loaded.output.json:" >&2
    diff "$f.json" "$root/examples/least-loaded.output.json" >&2 || true
    status=1
  fi
done
exit $status
