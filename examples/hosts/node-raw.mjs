// A Node host for the raw-ABI module flocker_policy.wasm (docs/ABI.md),
// with plain WebAssembly: no bindings, no imports to provide.
//
//   node examples/hosts/node-raw.mjs flocker_policy.wasm [INPUT.json]
//
// prints the decision for a SPEC input read from INPUT.json or stdin.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export class FlockerPolicy {
  static async load(bytes) {
    const { instance } = await WebAssembly.instantiate(bytes, {});
    return new FlockerPolicy(instance.exports);
  }

  constructor(exports) {
    this.x = exports;
    if (exports.flocker_abi_version() !== 1) {
      throw new Error(`unsupported ABI version ${exports.flocker_abi_version()}`);
    }
  }

  // Copies text into a block from flocker_alloc: [ptr, len].
  #write(text) {
    const bytes = new TextEncoder().encode(text);
    if (bytes.length === 0) return [0, 0];
    const ptr = this.x.flocker_alloc(bytes.length);
    if (ptr === 0) throw new Error(`the module could not allocate ${bytes.length} bytes`);
    // Take the buffer after alloc: growing memory replaces it.
    new Uint8Array(this.x.memory.buffer, ptr, bytes.length).set(bytes);
    return [ptr, bytes.length];
  }

  // Reads and frees a packed result (ptr << 32 | len) as text.
  #read(packed) {
    const p = BigInt.asUintN(64, packed);
    const ptr = Number(p >> 32n);
    const len = Number(p & 0xffffffffn);
    const text = new TextDecoder().decode(new Uint8Array(this.x.memory.buffer, ptr, len));
    this.x.flocker_free(ptr, len);
    return text;
  }

  #withInput(text, f) {
    const [ptr, len] = this.#write(text);
    try {
      return this.#read(f(ptr, len));
    } finally {
      this.x.flocker_free(ptr, len);
    }
  }

  info() {
    return JSON.parse(this.#read(this.x.flocker_info()));
  }

  /** SPEC input JSON text -> SPEC output JSON text. */
  decide(input) {
    return this.#withInput(input, (p, n) => this.x.flocker_decide(p, n));
  }

  /** Loads {inventory, routes}; returns the handle. Throws on an error result. */
  load(snapshot) {
    return check(this.#withInput(snapshot, (p, n) => this.x.flocker_snapshot_load(p, n))).handle;
  }

  /** Applies one change record or an array (JSON text); returns how many. */
  apply(handle, changes) {
    return check(this.#withInput(changes, (p, n) => this.x.flocker_snapshot_apply(handle, p, n))).applied;
  }

  /** {name, container, image} JSON text -> SPEC output JSON text. */
  decideOn(handle, request) {
    return this.#withInput(request, (p, n) => this.x.flocker_snapshot_decide(handle, p, n));
  }

  export(handle) {
    return check(this.#read(this.x.flocker_snapshot_export(handle)));
  }

  drop(handle) {
    check(this.#read(this.x.flocker_snapshot_drop(handle)));
  }
}

function check(text) {
  const v = JSON.parse(text);
  if (v.error) {
    const e = new Error(`${v.error.kind}: ${v.error.message}`);
    e.kind = v.error.kind;
    throw e;
  }
  return v;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [modulePath, inputPath] = process.argv.slice(2);
  if (!modulePath) {
    console.error('usage: node-raw.mjs flocker_policy.wasm [INPUT.json]');
    process.exit(2);
  }
  const policy = await FlockerPolicy.load(readFileSync(modulePath));
  const output = policy.decide(readFileSync(inputPath ?? 0, 'utf8'));
  console.log(output);
  process.exit(JSON.parse(output).error ? 1 : 0);
}
