// A Node host for the npm package flocker-policy (bindings/js, built with
// wasm-bindgen): a one-shot decision, then the same request on resident state.
//
//   node examples/hosts/node-package.js [INPUT.json]
//
// prints the decision for a SPEC input read from INPUT.json or stdin. The
// package must be installed where Node finds it: bindings/js/build.sh, then
// `npm pack bindings/js` and `npm install flocker-policy-0.1.0.tgz` (or set
// NODE_PATH to a node_modules that has it, as tests/hosts/node does).
'use strict';
const { readFileSync } = require('node:fs');
const { decideJson, Snapshot } = require('flocker-policy');

function main() {
  const input = JSON.parse(readFileSync(process.argv[2] ?? 0, 'utf8'));
  const output = decideJson(input);

  // Resident state: the cluster loaded once; each decision sends only the request.
  const { inventory, routes, ...request } = input;
  const snapshot = new Snapshot({ inventory, routes });
  try {
    if (snapshot.decideJson(request) !== output) throw new Error('resident state decided differently');
  } finally {
    snapshot.free();
  }
  console.log(output);
  return JSON.parse(output).error ? 1 : 0;
}

if (require.main === module) process.exitCode = main();
module.exports = { main };
