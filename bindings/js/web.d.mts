export * from './index.js';
/** Loads the module; pass the URL, Response or bytes of flocker_js_bg.wasm, or nothing to fetch it beside this file. */
export function init(module?: URL | string | Response | BufferSource | WebAssembly.Module): Promise<void>;
