'use strict';
// flocker-policy for Node: the flocker engine compiled to WebAssembly.
//
//   const { decide, Snapshot } = require('flocker-policy');
//   decide({ name: 'web.1', container: { Image: 'nginx' }, inventory: [...] });
//
// Inputs are objects or JSON strings; outputs are objects. decideJson()
// returns the engine's exact output bytes as a string.

const raw = require('./pkg/node/flocker_js.js');

/** An error the engine reported: kind is one of SPEC section 4's kinds. */
class FlockerError extends Error {
  constructor(error) {
    super(error.message);
    this.name = 'FlockerError';
    this.kind = error.kind;
    this.error = error;
  }
}

function text(input, what) {
  if (typeof input === 'string') return input;
  if (input instanceof Uint8Array) return Buffer.from(input).toString('utf8');
  if (input !== null && typeof input === 'object') return JSON.stringify(input);
  throw new TypeError(`${what} must be an object, a JSON string or bytes, not ${input === null ? 'null' : typeof input}`);
}

// The raw snapshot throws an Error whose message is the SPEC error JSON.
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
  /** @param snapshot {inventory, routes} as an object or JSON string. Throws FlockerError. */
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

module.exports = { decide, decideJson, policyInfo, Snapshot, FlockerError };
