// The wrapper logic of flocker-policy, shared by both entry points.
//
// This file is not loaded as it is: lib/gen-entries.mjs (run by build.sh)
// wraps it into index.js (CommonJS, Node's wasm-bindgen build) and web.mjs
// (ES module, the web build), so the two cannot drift apart. It expects a
// binding named `raw` (the wasm-bindgen module) in scope and defines what the
// entries export: decide, decideJson, policyInfo, Snapshot, FlockerError.
//
// Inputs are objects, JSON strings or UTF-8 bytes; outputs are objects.
// decideJson() returns the engine's exact output bytes as a string.

/** An error the engine reported: kind is one of SPEC section 4's kinds. */
class FlockerError extends Error {
  constructor(error) {
    super(error.message);
    this.name = 'FlockerError';
    this.kind = error.kind;
    this.error = error;
  }
}

// One decoder for every host: TextDecoder is global in Node (>= 11),
// browsers and Deno. Not `fatal`: bytes that are not UTF-8 become U+FFFD
// (as Buffer#toString did), so decide() still never throws for bad input.
// The raw-ABI module refuses such bytes instead: pass text or valid UTF-8
// when the output must match it byte for byte.
const utf8 = new TextDecoder('utf-8');

function text(input, what) {
  if (typeof input === 'string') return input;
  if (input instanceof Uint8Array) return utf8.decode(input);
  if (input !== null && typeof input === 'object') return JSON.stringify(input);
  throw new TypeError(`${what} must be an object, a JSON string or bytes, not ${input === null ? 'null' : typeof input}`);
}

// The raw snapshot throws an Error whose message is the SPEC error JSON;
// anything else (a TypeError, a wasm trap) is passed on untouched.
function rethrow(e) {
  let parsed;
  try {
    parsed = JSON.parse(e.message);
  } catch {
    throw e;
  }
  if (parsed && parsed.error) throw new FlockerError(parsed.error);
  throw e;
}

/** Decides a SPEC input; returns the output JSON text exactly as the engine renders it. */
function decideJson(input) {
  return raw.decideJson(text(input, 'input'));
}

/** Decides a SPEC input; returns the decision or {error} object. */
function decide(input) {
  return JSON.parse(decideJson(input));
}

/** {name, version, engine} of this build. */
function policyInfo() {
  return JSON.parse(raw.policyInfo());
}

/** Cluster state loaded once and kept current with changes. */
class Snapshot {
  /** @param snapshot {inventory, routes} as an object, JSON string or bytes. Throws FlockerError. */
  constructor(snapshot) {
    try {
      this._raw = new raw.RawSnapshot(text(snapshot, 'snapshot'));
    } catch (e) {
      rethrow(e);
    }
  }

  /** Applies one change record or an array of them, all or nothing; returns how many. Throws FlockerError. */
  apply(changes) {
    try {
      return this._raw.applyJson(text(changes, 'changes'));
    } catch (e) {
      return rethrow(e);
    }
  }

  /** Decides {name, container, image} against the state; the engine's output JSON text. */
  decideJson(request) {
    return this._raw.decideJson(text(request, 'request'));
  }

  /** Decides {name, container, image} against the state; the decision or {error} object. */
  decide(request) {
    return JSON.parse(this.decideJson(request));
  }

  /** The state as {inventory, routes}. */
  toJSON() {
    return JSON.parse(this._raw.exportJson());
  }

  /** Frees the WebAssembly memory now instead of at garbage collection. */
  free() {
    if (this._raw) {
      this._raw.free();
      this._raw = undefined;
    }
  }
}
