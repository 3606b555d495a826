// Shared by the Node host tests: where the built artifacts and examples are.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const target = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
/** The raw-ABI module: $FLOCKER_POLICY_WASM, else the wasm-release build. */
export const modulePath =
  process.env.FLOCKER_POLICY_WASM ?? join(target, 'wasm32-unknown-unknown/wasm-release/flocker_policy.wasm');

/** [{name, input (text), expected (parsed output)}] for every examples/*.input.json. */
export function examples() {
  const dir = join(root, 'examples');
  const out = readdirSync(dir)
    .filter((f) => f.endsWith('.input.json'))
    .sort()
    .map((f) => ({
      name: f.replace('.input.json', ''),
      path: join(dir, f),
      input: readFileSync(join(dir, f), 'utf8'),
      expected: JSON.parse(readFileSync(join(dir, f.replace('.input.json', '.output.json')), 'utf8')),
    }));
  if (out.length < 5) throw new Error(`only ${out.length} examples in ${dir}`);
  return out;
}

/** The request half and the cluster half of an input. */
export function split(inputText) {
  const { inventory, routes, ...request } = JSON.parse(inputText);
  return { request, snapshot: { inventory, routes } };
}
