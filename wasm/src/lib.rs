//! `flocker_policy.wasm`: the flocker engine behind a plain pointer+length
//! ABI with **no imports**, so wasmtime, wazero, V8 and wasmtime-py load it
//! with nothing to provide. `docs/ABI.md` is the full contract; in short:
//!
//! | export | signature | returns |
//! |---|---|---|
//! | `flocker_abi_version` | `() -> i32` | [`ABI_VERSION`] |
//! | `flocker_alloc` | `(len: i32) -> i32` | a zeroed block of `len` bytes the host writes its input into; 0 when `len` is 0 or memory is exhausted |
//! | `flocker_free` | `(ptr: i32, len: i32) -> i32` | frees a block from `flocker_alloc` or a result; 0 freed, 1 not a live block (nothing done) |
//! | `flocker_info` | `() -> i64` | result: `{"name","version","abi","engine"}` |
//! | `flocker_decide` | `(ptr, len) -> i64` | result: SPEC output for SPEC input |
//! | `flocker_snapshot_load` | `(ptr, len) -> i64` | result: `{"handle": n}` |
//! | `flocker_snapshot_apply` | `(handle: i32, ptr, len) -> i64` | result: `{"applied": n}` |
//! | `flocker_snapshot_decide` | `(handle: i32, ptr, len) -> i64` | result: SPEC output for `{name, container, image}` |
//! | `flocker_snapshot_export` | `(handle: i32) -> i64` | result: `{"inventory","routes"}` |
//! | `flocker_snapshot_drop` | `(handle: i32) -> i64` | result: `{"dropped": n}` |
//!
//! A *result* is an `i64` packing a block the module allocated: pointer in
//! the high 32 bits, length in the low 32. The block holds UTF-8 JSON; a
//! failure is the JSON `{"error": {"kind", "message", ...}}`, never a trap.
//! The host frees the block with `flocker_free(ptr, len)`.
//!
//! Everything that is not raw-pointer plumbing lives in [`abi`], safe code
//! that is unit-tested natively; the `extern "C"` shims exist only on wasm32,
//! written by [`export_policy`], which a crate building its own policy module
//! (`examples/custom-policy/`) uses too.

/// The ABI version `flocker_abi_version` returns. A host refuses a module
/// whose version it does not know; the number changes whenever an export's
/// signature or meaning changes (adding an export does not change it).
pub const ABI_VERSION: i32 = 1;

/// The module's name in its policy info.
pub const POLICY_NAME: &str = "flocker-policy";

pub mod size_classes;

// For [`export_policy`]'s expansion in a module crate, which need not name
// flocker-core itself.
#[doc(hidden)]
pub use flocker_core;

pub mod abi {
    //! The ABI's behaviour on byte slices and integers, without pointers.

    use std::collections::BTreeMap;

    use flocker_core::{ffi, Cluster, DecisionError, Preference};
    use serde_json::json;

    /// The policy info JSON the default module's `flocker_info` returns.
    pub fn info() -> String {
        info_of(crate::POLICY_NAME, env!("CARGO_PKG_VERSION"))
    }

    /// The policy info JSON of a module named `name` at `version`.
    pub fn info_of(name: &str, version: &str) -> String {
        ffi::policy_info(name, version, Some(crate::ABI_VERSION))
    }

    /// `{"error": {"kind": "invalid_request", "message": ...}}`.
    pub fn invalid(path: &str, reason: impl Into<String>) -> String {
        DecisionError::InvalidRequest {
            path: path.to_string(),
            reason: reason.into(),
        }
        .to_value()
        .to_string()
    }

    /// The error a call on a handle that was never issued or was dropped gets.
    pub fn unknown_handle(handle: u32) -> String {
        json!({"error": {
            "kind": "unknown_handle",
            "message": format!("handle: {handle} is unknown or was dropped; load a snapshot to get a handle"),
        }})
        .to_string()
    }

    /// Resident cluster states by handle. Handles count up from 1 and are
    /// never reused, so a dropped handle stays unknown.
    #[derive(Default)]
    pub struct Snapshots {
        states: BTreeMap<u32, Cluster>,
        last: u32,
        preference: Preference,
    }

    impl Snapshots {
        /// No states, deciding by the SPEC's preference.
        pub const fn new() -> Snapshots {
            Snapshots::with(Preference::Spread)
        }

        /// No states, choosing among eligible servers by `preference`.
        pub const fn with(preference: Preference) -> Snapshots {
            Snapshots {
                states: BTreeMap::new(),
                last: 0,
                preference,
            }
        }

        /// Loads `{"inventory": [...], "routes": {...}}` and returns
        /// `{"handle": n}`.
        pub fn load(&mut self, input: &[u8]) -> String {
            let cluster = match ffi::load_snapshot(input) {
                Ok(c) => c,
                Err(e) => return e.to_value().to_string(),
            };
            // 2^32 - 1 loads without a drop in between would be needed to
            // run out; skipping live handles keeps the rule "never reused
            // while live" even then.
            let mut handle = self.last;
            loop {
                handle = handle.wrapping_add(1).max(1);
                if !self.states.contains_key(&handle) {
                    break;
                }
            }
            self.last = handle;
            self.states.insert(handle, cluster);
            json!({ "handle": handle }).to_string()
        }

        /// Applies one change record or an array of them, all or nothing,
        /// and returns `{"applied": n}`.
        pub fn apply(&mut self, handle: u32, input: &[u8]) -> String {
            let Some(cluster) = self.states.get_mut(&handle) else {
                return unknown_handle(handle);
            };
            match ffi::apply_changes(cluster, input) {
                Ok(n) => json!({ "applied": n }).to_string(),
                Err(e) => e.to_value().to_string(),
            }
        }

        /// Decides `{name, container, image}` against the state.
        pub fn decide(&self, handle: u32, input: &[u8]) -> String {
            match self.states.get(&handle) {
                Some(cluster) => cluster.decide_json_with(input, self.preference),
                None => unknown_handle(handle),
            }
        }

        /// The state as a snapshot it could be loaded from again.
        pub fn export(&self, handle: u32) -> String {
            match self.states.get(&handle) {
                Some(cluster) => cluster.to_snapshot().to_string(),
                None => unknown_handle(handle),
            }
        }

        /// Forgets the state and returns `{"dropped": n}`.
        pub fn drop_handle(&mut self, handle: u32) -> String {
            match self.states.remove(&handle) {
                Some(_) => json!({ "dropped": handle }).to_string(),
                None => unknown_handle(handle),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn snap() -> &'static [u8] {
            br#"{"inventory":[{"hostname":"n1","address":"10.0.0.1"}],"routes":{"containers":{},"volumes":{}}}"#
        }

        #[test]
        fn handles_count_up_and_are_not_reused_after_drop() {
            let mut s = Snapshots::new();
            assert_eq!(s.load(snap()), r#"{"handle":1}"#);
            assert_eq!(s.drop_handle(1), r#"{"dropped":1}"#);
            assert_eq!(s.load(snap()), r#"{"handle":2}"#);
            assert!(s.decide(1, b"{}").contains("\"unknown_handle\""));
            assert!(s.drop_handle(1).contains("\"unknown_handle\""));
            assert!(s.apply(7, b"[]").contains("\"unknown_handle\""));
            assert!(s.export(0).contains("\"unknown_handle\""));
        }

        #[test]
        fn changes_apply_all_or_nothing() {
            let mut s = Snapshots::new();
            s.load(snap());
            let before = s.export(1);
            let r = s.apply(
                1,
                br#"[{"op":"claim_volume","volume":"pg","server":"n1"},{"op":"claim_volume"}]"#,
            );
            assert!(r.contains("\"invalid_request\""), "{r}");
            assert_eq!(s.export(1), before);
            assert_eq!(
                s.apply(1, br#"{"op":"claim_volume","volume":"pg","server":"n1"}"#),
                r#"{"applied":1}"#
            );
            assert!(s.export(1).contains(r#""volumes":{"pg":"n1"}"#));
        }

        #[test]
        fn bad_bytes_are_error_results() {
            let mut s = Snapshots::new();
            for bad in [&b"\xff\xfe"[..], b"{\"inventory\": [", b"", b"[]"] {
                let r = s.load(bad);
                assert!(
                    r.starts_with(r#"{"error":{"kind":"invalid_request""#),
                    "{r}"
                );
            }
            let info: serde_json::Value = serde_json::from_str(&info()).unwrap();
            assert_eq!(info["abi"], json!(crate::ABI_VERSION));
        }
    }
}

/// Defines a policy module's exports (`flocker_alloc`, `flocker_decide`,
/// ... as listed above) in the crate that invokes it, on wasm32 only, for
/// the engine choosing among eligible servers by `preference` (a
/// [`flocker_core::Preference`]); `name` is the module's name in its policy
/// info, and its version is the invoking crate's `CARGO_PKG_VERSION`.
///
/// A module crate is a `cdylib` that depends on this crate with
/// `default-features = false` (the default feature defines the default
/// module's exports here, which would clash with its own) and says, once:
///
/// ```
/// flocker_policy::export_policy!(name = "flocker-pack", preference = flocker_core::Preference::Pack);
/// ```
///
/// `examples/custom-policy/` is such a crate.
#[macro_export]
macro_rules! export_policy {
    (name = $name:expr, preference = $preference:expr $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        #[expect(
            unsafe_code,
            reason = "the ABI hands the host raw (ptr, len) blocks; see the soundness argument below"
        )]
        mod flocker_policy_exports {
            //! The `extern "C"` shims: pointer checks and block bookkeeping.
            //!
            //! Soundness argument for the `unsafe` below. The module is
            //! single-threaded and imports nothing, so no callback can re-enter it
            //! while an export runs; the host writes linear memory only between
            //! calls. Every block the module hands out (by `flocker_alloc` or as a
            //! result) is a leaked `Box<[u8]>` recorded in `BLOCKS` with its length.
            //! An input `(ptr, len)` is turned into a slice only after checking that
            //! it lies inside one recorded block, so the slice covers initialized
            //! (zeroed, then host-written) bytes that no Rust reference aliases, and
            //! it does not outlive the call. `flocker_free` rebuilds a `Box` only for
            //! an exact recorded `(ptr, len)` and removes the record first, so a
            //! double or bogus free is a no-op instead of heap corruption.

            use std::cell::RefCell;
            use std::collections::BTreeMap;

            // `name` and `preference` are written at the invocation, outside
            // this module: they resolve here as they do there.
            #[allow(unused_imports)]
            use super::*;
            use $crate::abi::{self, Snapshots};

            ::std::thread_local! {
                /// Live blocks: start address -> length.
                static BLOCKS: RefCell<BTreeMap<usize, usize>> = const { RefCell::new(BTreeMap::new()) };
                static SNAPSHOTS: RefCell<Snapshots> = const { RefCell::new(Snapshots::with($preference)) };
            }

            /// Leaks `bytes` as a recorded block and returns its address.
            fn leak(bytes: Box<[u8]>) -> usize {
                let len = bytes.len();
                let ptr = Box::into_raw(bytes) as *mut u8 as usize;
                BLOCKS.with(|b| b.borrow_mut().insert(ptr, len));
                ptr
            }

            /// Packs a result string into a recorded block: `ptr << 32 | len`.
            fn result(json: String) -> i64 {
                let bytes = json.into_bytes().into_boxed_slice();
                let len = bytes.len() as u64;
                let ptr = leak(bytes) as u64;
                ((ptr << 32) | len) as i64
            }

            /// Runs `f` on the input region `(ptr, len)`, or returns the error JSON
            /// saying why the region is not readable.
            fn with_input(ptr: i32, len: i32, f: impl FnOnce(&[u8]) -> String) -> String {
                let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
                if len == 0 {
                    return f(&[]);
                }
                let memory = core::arch::wasm32::memory_size(0) * 65536;
                let end = match ptr.checked_add(len) {
                    Some(end) if end <= memory => end,
                    _ => {
                        return abi::invalid(
                            "",
                            format!("input region {ptr}+{len} lies beyond memory ({memory} bytes)"),
                        )
                    }
                };
                let inside = BLOCKS.with(|b| {
                    b.borrow()
                        .range(..=ptr)
                        .next_back()
                        .is_some_and(|(start, n)| start + n >= end)
                });
                if !inside {
                    return abi::invalid(
                        "",
                        format!("input region {ptr}+{len} is not inside a block from flocker_alloc"),
                    );
                }
                // SAFETY: the region lies inside a live block (see the module docs):
                // initialized, unaliased during this call, and not freed before `f`
                // returns because nothing can call `flocker_free` meanwhile.
                let bytes = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
                f(bytes)
            }

            #[no_mangle]
            pub extern "C" fn flocker_abi_version() -> i32 {
                $crate::ABI_VERSION
            }

            #[no_mangle]
            pub extern "C" fn flocker_alloc(len: i32) -> i32 {
                let len = len as u32 as usize;
                if len == 0 {
                    return 0;
                }
                let mut v: Vec<u8> = Vec::new();
                if v.try_reserve_exact(len).is_err() {
                    return 0;
                }
                v.resize(len, 0);
                leak(v.into_boxed_slice()) as i32
            }

            #[no_mangle]
            pub extern "C" fn flocker_free(ptr: i32, len: i32) -> i32 {
                let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
                let known = BLOCKS.with(|b| {
                    let mut b = b.borrow_mut();
                    if b.get(&ptr) == Some(&len) {
                        b.remove(&ptr);
                        true
                    } else {
                        false
                    }
                });
                if !known {
                    return 1;
                }
                // SAFETY: `(ptr, len)` was recorded by `leak` from a `Box<[u8]>` of
                // exactly this length and the record was just removed, so this is
                // the one and only reconstruction of that box.
                drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr as *mut u8, len)) });
                0
            }

            #[no_mangle]
            pub extern "C" fn flocker_info() -> i64 {
                result(abi::info_of($name, ::core::env!("CARGO_PKG_VERSION")))
            }

            #[no_mangle]
            pub extern "C" fn flocker_decide(ptr: i32, len: i32) -> i64 {
                result(with_input(ptr, len, |input| {
                    $crate::flocker_core::decide_json_with(input, $preference)
                }))
            }

            #[no_mangle]
            pub extern "C" fn flocker_snapshot_load(ptr: i32, len: i32) -> i64 {
                result(with_input(ptr, len, |input| {
                    SNAPSHOTS.with(|s| s.borrow_mut().load(input))
                }))
            }

            #[no_mangle]
            pub extern "C" fn flocker_snapshot_apply(handle: i32, ptr: i32, len: i32) -> i64 {
                result(with_input(ptr, len, |input| {
                    SNAPSHOTS.with(|s| s.borrow_mut().apply(handle as u32, input))
                }))
            }

            #[no_mangle]
            pub extern "C" fn flocker_snapshot_decide(handle: i32, ptr: i32, len: i32) -> i64 {
                result(with_input(ptr, len, |input| {
                    SNAPSHOTS.with(|s| s.borrow().decide(handle as u32, input))
                }))
            }

            #[no_mangle]
            pub extern "C" fn flocker_snapshot_export(handle: i32) -> i64 {
                result(SNAPSHOTS.with(|s| s.borrow().export(handle as u32)))
            }

            #[no_mangle]
            pub extern "C" fn flocker_snapshot_drop(handle: i32) -> i64 {
                result(SNAPSHOTS.with(|s| s.borrow_mut().drop_handle(handle as u32)))
            }
        }
    };
}

// The default module: the SPEC's preference, under this crate's name and
// version. A crate that builds its own module turns this off (see
// [`export_policy`]).
#[cfg(feature = "default-module")]
export_policy!(
    name = POLICY_NAME,
    preference = flocker_core::Preference::Spread
);
