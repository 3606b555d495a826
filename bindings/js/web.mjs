// flocker-policy for browsers and other ES-module hosts. Call init() once
// (optionally with the URL, Response or bytes of flocker_js_bg.wasm), then
// use the same API as in Node.
import rawInit, * as raw from './pkg/web/flocker_js.js';

export class FlockerError extends Error {
  constructor(error) {
    super(error.message);
    this.name = 'FlockerError';
    this.kind = error.kind;
    this.error = error;
  }
}

export async function init(module) {
  await rawInit(module === undefined ? undefined : { module_or_path: module });
}

function text(input, what) {
  if (typeof input === 'string') return input;
  if (input instanceof Uint8Array) return new TextDecoder().decode(input);
  if (input !== null && typeof input === 'object') return JSON.stringify(input);
  throw new TypeError(`${what} must be an object, a JSON string or bytes`);
}

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

export const decideJson = (input) => raw.decideJson(text(input, 'input'));
export const decide = (input) => JSON.parse(decideJson(input));
export const policyInfo = () => JSON.parse(raw.policyInfo());

export class Snapshot {
  constructor(snapshot) {
    try {
      this._raw = new raw.RawSnapshot(text(snapshot, 'snapshot'));
    } catch (e) {
      rethrow(e);
    }
  }
  apply(changes) {
    try {
      return this._raw.applyJson(text(changes, 'changes'));
    } catch (e) {
      return rethrow(e);
    }
  }
  decideJson(request) {
    return this._raw.decideJson(text(request, 'request'));
  }
  decide(request) {
    return JSON.parse(this.decideJson(request));
  }
  toJSON() {
    return JSON.parse(this._raw.exportJson());
  }
  free() {
    if (this._raw) {
      this._raw.free();
      this._raw = undefined;
    }
  }
}
