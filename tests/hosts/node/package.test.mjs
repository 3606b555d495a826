// The npm package (bindings/js, wasm-bindgen), packed with `npm pack`, installed
// into a scratch project and used as a user would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { FlockerPolicy } from '../../../examples/hosts/node-raw.mjs';
import { examples, modulePath, root, split } from './common.mjs';

let scratch;
let pkg;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'flocker-npm-'));
  const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', scratch, join(root, 'bindings/js')], {
    encoding: 'utf8',
  }).trim();
  writeFileSync(join(scratch, 'package.json'), '{"name":"scratch","version":"1.0.0","private":true}');
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--silent', join(scratch, tgz)], {
    cwd: scratch,
  });
  pkg = createRequire(join(scratch, 'package.json'))('flocker-policy');
});

after(() => rmSync(scratch, { recursive: true, force: true }));

test('the installed package ships its types and both builds', () => {
  const dir = join(scratch, 'node_modules/flocker-policy');
  for (const f of ['index.d.ts', 'index.js', 'web.mjs', 'pkg/node/flocker_js_bg.wasm', 'pkg/web/flocker_js_bg.wasm']) {
    assert.ok(existsSync(join(dir, f)), f);
  }
  assert.match(readFileSync(join(dir, 'index.d.ts'), 'utf8'), /export class Snapshot/);
});

test('decide takes an object or a JSON string and matches the raw module byte for byte', async () => {
  const raw = await FlockerPolicy.load(readFileSync(modulePath));
  for (const ex of examples()) {
    const text = pkg.decideJson(ex.input);
    assert.equal(text, raw.decide(ex.input), ex.name);
    // An object goes through JSON.stringify, which puts integer-like keys
    // ("8080") first, as JS objects always do.
    assert.equal(pkg.decideJson(JSON.parse(ex.input)), pkg.decideJson(JSON.stringify(JSON.parse(ex.input))), ex.name);
    assert.deepEqual(pkg.decide(JSON.parse(ex.input)), ex.expected, ex.name);
    assert.deepEqual(pkg.decide(Buffer.from(ex.input)), ex.expected, ex.name);
  }
  assert.equal(pkg.decide('{"oops"').error.kind, 'invalid_request');
  assert.throws(() => pkg.decide(42), TypeError);
  assert.equal(pkg.policyInfo().name, 'flocker-js');
});

test('Snapshot decides like one-shot and follows changes', () => {
  for (const ex of examples()) {
    const { request, snapshot } = split(ex.input);
    const snap = new pkg.Snapshot(snapshot);
    assert.equal(snap.decideJson(request), pkg.decideJson(JSON.parse(ex.input)), ex.name);
    snap.free();
  }
  const snap = new pkg.Snapshot({ inventory: [{ hostname: 'n1', address: '10.0.0.1', containers: 5 }] });
  assert.equal(snap.decide({ name: 'web.1', container: { Image: 'nginx' } }).server.hostname, 'n1');
  assert.equal(snap.apply([{ op: 'upsert_server', server: { hostname: 'n2', address: '10.0.0.2' } }]), 1);
  assert.equal(snap.decide({ name: 'web.1', container: { Image: 'nginx' } }).server.hostname, 'n2');
  assert.deepEqual(
    snap.toJSON().inventory.map((s) => s.hostname),
    ['n1', 'n2'],
  );
  snap.free();
});

test('a refused snapshot or change throws FlockerError and changes nothing', () => {
  assert.throws(() => new pkg.Snapshot('{"inventory": 7}'), (e) => e instanceof pkg.FlockerError && e.kind === 'invalid_request');
  assert.throws(() => new pkg.Snapshot('{"inventory": ['), pkg.FlockerError);
  const snap = new pkg.Snapshot({ inventory: [{ hostname: 'n1', address: '10.0.0.1' }] });
  const before = JSON.stringify(snap.toJSON());
  assert.throws(
    () => snap.apply([{ op: 'claim_volume', volume: 'pg', server: 'n1' }, { op: 'claim_volume', volume: 'x' }]),
    (e) => e instanceof pkg.FlockerError && e.kind === 'invalid_request' && /\[1\]\.server/.test(e.message),
  );
  assert.equal(JSON.stringify(snap.toJSON()), before);
  snap.free();
});

test('the web build gives the same bytes', async () => {
  const dir = join(scratch, 'node_modules/flocker-policy');
  const web = await import(pathToFileURL(join(dir, 'web.mjs')).href);
  await web.init(readFileSync(join(dir, 'pkg/web/flocker_js_bg.wasm')));
  for (const ex of examples()) {
    assert.equal(web.decideJson(ex.input), pkg.decideJson(ex.input), ex.name);
    assert.equal(web.decideJson(Buffer.from(ex.input)), pkg.decideJson(ex.input), ex.name);
  }
  // One wrapper source for both entries: the same messages and the same
  // decoding of bytes that are not UTF-8 (U+FFFD).
  const bad = Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]);
  assert.equal(web.decideJson(bad), pkg.decideJson(bad));
  assert.equal(pkg.decide(bad).error.kind, 'invalid_request');
  for (const input of [42, null, undefined]) {
    const message = (f) => {
      try {
        f(input);
      } catch (e) {
        assert.ok(e instanceof TypeError);
        return e.message;
      }
      assert.fail(`${input} was accepted`);
    };
    assert.equal(message(web.decide), message(pkg.decide));
  }
  assert.throws(() => new web.Snapshot('{"inventory": 7}'), (e) => e instanceof web.FlockerError && e.kind === 'invalid_request');
});

test('the example program runs against the installed package', () => {
  const program = join(root, 'examples/hosts/node-package.js');
  for (const ex of examples()) {
    const r = spawnSync(process.execPath, [program, ex.path], {
      encoding: 'utf8',
      env: { ...process.env, NODE_PATH: join(scratch, 'node_modules') },
    });
    assert.equal(r.status, ex.expected.error ? 1 : 0, `${ex.name}: ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout), ex.expected, ex.name);
  }
});
