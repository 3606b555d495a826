package flocker

import _ "embed"

// DefaultModule is flocker_policy.wasm as built from this repository's
// wasm/ crate (the wasm-release profile). update-module.sh refreshes it;
// TestEmbeddedModuleIsFresh checks it against $FLOCKER_POLICY_WASM.
//
//go:embed flocker_policy.wasm
var DefaultModule []byte
