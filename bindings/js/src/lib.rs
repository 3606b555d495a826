//! The flocker engine for JavaScript, through wasm-bindgen.
//!
//! This crate exports string-in, string-out functions; the npm package's
//! `index.js` wraps them so that callers pass objects or JSON strings and
//! get objects back (`bindings/js/index.d.ts` has the types). Outputs are the
//! exact bytes `flocker_core` renders, the same as the raw-ABI module's.

use flocker_core::{ffi, Cluster};
use wasm_bindgen::prelude::*;

/// SPEC input JSON in, SPEC output JSON out (a decision or `{"error": ...}`).
#[wasm_bindgen(js_name = decideJson)]
pub fn decide_json(input: &str) -> String {
    flocker_core::decide_json(input.as_bytes())
}

/// `{"name", "version", "engine"}` of this build.
#[wasm_bindgen(js_name = policyInfo)]
pub fn policy_info() -> String {
    ffi::policy_info("flocker-js", env!("CARGO_PKG_VERSION"), None)
}

/// Resident cluster state: loaded once, kept current with changes, and
/// deciding requests of only `{name, container, image}`.
///
/// Methods that can fail throw a `JsError` whose message is the SPEC error
/// JSON (`{"error": {"kind", "message"}}`); `index.js` turns it into a
/// `FlockerError`.
#[wasm_bindgen(js_name = RawSnapshot)]
pub struct Snapshot {
    cluster: Cluster,
}

fn error_json(e: &flocker_core::DecisionError) -> JsError {
    JsError::new(&e.to_value().to_string())
}

#[wasm_bindgen(js_class = RawSnapshot)]
impl Snapshot {
    /// Loads `{"inventory": [...], "routes": {...}}`.
    #[wasm_bindgen(constructor)]
    pub fn new(snapshot: &str) -> Result<Snapshot, JsError> {
        let cluster = ffi::load_snapshot(snapshot.as_bytes()).map_err(|e| error_json(&e))?;
        Ok(Snapshot { cluster })
    }

    /// Applies one change record or an array of them, all or nothing;
    /// returns how many were applied.
    #[wasm_bindgen(js_name = applyJson)]
    pub fn apply_json(&mut self, changes: &str) -> Result<u32, JsError> {
        let n = ffi::apply_changes(&mut self.cluster, changes.as_bytes())
            .map_err(|e| error_json(&e))?;
        // An array longer than u32::MAX cannot fit in a 4 GiB wasm32 memory
        // as JSON text (each record is several bytes), so this saturates
        // only in theory; it keeps the conversion panic-free.
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Decides `{name, container, image}`: SPEC output JSON.
    #[wasm_bindgen(js_name = decideJson)]
    pub fn decide_json(&self, request: &str) -> String {
        self.cluster.decide_json(request.as_bytes())
    }

    /// The state as snapshot JSON.
    #[wasm_bindgen(js_name = exportJson)]
    pub fn export_json(&self) -> String {
        self.cluster.to_snapshot().to_string()
    }
}
