// The raw-ABI module loaded with plain WebAssembly (examples/hosts/node-raw.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { FlockerPolicy } from '../../../examples/hosts/node-raw.mjs';
import { examples, modulePath, root, split } from './common.mjs';

const bytes = readFileSync(modulePath);
const policy = await FlockerPolicy.load(bytes);

test('the module imports nothing', () => {
  assert.deepEqual(WebAssembly.Module.imports(new WebAssembly.Module(bytes)), []);
});

test('policy info', () => {
  const info = policy.info();
  assert.equal(info.name, 'flocker-policy');
  assert.equal(info.abi, 1);
});

test('every example decides as recorded, one-shot and on resident state', () => {
  for (const ex of examples()) {
    const out = policy.decide(ex.input);
    assert.deepEqual(JSON.parse(out), ex.expected, ex.name);
    // Splitting goes through JS objects, which put integer-like keys
    // ("8080") first; compare with the one-shot of the same reordered text.
    const { request, snapshot } = split(ex.input);
    const h = policy.load(JSON.stringify(snapshot));
    const reordered = policy.decide(JSON.stringify(JSON.parse(ex.input)));
    assert.equal(policy.decideOn(h, JSON.stringify(request)), reordered, ex.name);
    policy.drop(h);
  }
});

test('bad input is an error result, never a trap', () => {
  const kind = (text) => JSON.parse(text).error.kind;
  assert.equal(kind(policy.decide('{"name": "web.1", "container": {')), 'invalid_request');
  assert.equal(kind(policy.decide('')), 'invalid_request');
  // Invalid UTF-8, written straight into a block.
  const x = policy.x;
  const bad = Uint8Array.from([0x22, 0xff, 0xfe, 0x22]);
  const ptr = x.flocker_alloc(bad.length);
  new Uint8Array(x.memory.buffer, ptr, bad.length).set(bad);
  const read = (packed) => {
    const p = BigInt.asUintN(64, packed);
    const [at, n] = [Number(p >> 32n), Number(p & 0xffffffffn)];
    return JSON.parse(new TextDecoder().decode(new Uint8Array(x.memory.buffer, at, n)));
  };
  assert.equal(read(x.flocker_decide(ptr, bad.length)).error.kind, 'invalid_request');
  // A region beyond memory.
  const size = x.memory.buffer.byteLength;
  assert.equal(read(x.flocker_decide(size - 2, 64)).error.kind, 'invalid_request');
  assert.equal(read(x.flocker_decide(-8, 16)).error.kind, 'invalid_request');
  // Unknown and dropped handles; a change of the wrong shape.
  assert.equal(kind(policy.decideOn(987654, '{}')), 'unknown_handle');
  const { snapshot } = split(examples()[0].input);
  const h = policy.load(JSON.stringify(snapshot));
  const before = JSON.stringify(policy.export(h));
  assert.throws(() => policy.apply(h, '[{"op":"remove_route","name":"x"},{"op":"claim_volume"}]'), {
    kind: 'invalid_request',
  });
  assert.equal(JSON.stringify(policy.export(h)), before, 'a refused batch changes nothing');
  policy.drop(h);
  assert.throws(() => policy.drop(h), { kind: 'unknown_handle' });
});

test('the example program prints the decision and exits 0, or 1 for an error', () => {
  const program = join(root, 'examples/hosts/node-raw.mjs');
  for (const ex of examples()) {
    const r = spawnSync(process.execPath, [program, modulePath, ex.path], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(r.stdout), ex.expected, ex.name);
    assert.equal(r.status, ex.expected.error ? 1 : 0, `${ex.name}: ${r.stderr}`);
  }
});
