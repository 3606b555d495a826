// Every export of the ES-module typings (web.d.mts: index.d.ts's types plus
// init), imported as a browser bundle or Deno program would.
import {
  init,
  decide,
  decideJson,
  policyInfo,
  Snapshot,
  FlockerError,
  type Change,
  type ErrorKind,
  type Input,
  type Output,
  type SnapshotData,
} from 'flocker-policy/web';

await init();
await init(new URL('https://example.com/flocker_js_bg.wasm'));
await init('/flocker_js_bg.wasm');
await init(new Uint8Array(8));

const input: Input = { name: 'web.1', container: { Image: 'nginx' }, inventory: [{ hostname: 'n1', address: '10.0.0.1' }] };
const out: Output = decide(input);
const hostname: string = 'error' in out ? out.error.kind : out.server.hostname;
const text: string = decideJson(JSON.stringify(input));
const version: string = policyInfo().version;

const data: SnapshotData = { inventory: input.inventory };
const snap = new Snapshot(data);
const change: Change = { op: 'claim_volume', volume: 'pg', server: 'n1' };
const n: number = snap.apply([change]);
const out2: Output = snap.decide({ container: { Image: 'nginx' } });
const text2: string = snap.decideJson({ container: { Image: 'nginx' } });
snap.free();

try {
  snap.apply('{"op": "claim_volume"}');
} catch (e) {
  if (e instanceof FlockerError) {
    const kind: ErrorKind = e.kind;
    void kind;
  }
}

// @ts-expect-error: init takes a module source or nothing, not null. (Any
// other value type-checks: WebAssembly.Module is an empty interface.)
await init(null);
// @ts-expect-error: decideJson returns text, not an object
const wrong: Output = decideJson(input);

void [hostname, text, version, n, out2, text2, wrong];
