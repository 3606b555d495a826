//! The raw ABI of `flocker_policy.wasm`, called directly through wasmtime:
//! no imports, and every kind of bad input an error result, never a trap.

use std::sync::OnceLock;

use flocker_host::policy::DEFAULT_MODULE;
use serde_json::Value;
use wasmtime::{Engine, Instance, Memory, Module, Store, TypedFunc};

struct Raw {
    store: Store<()>,
    instance: Instance,
    memory: Memory,
}

impl Raw {
    fn new() -> Raw {
        // Compiled once: cranelift in a debug build takes seconds per compile.
        static MODULE: OnceLock<(Engine, Module)> = OnceLock::new();
        let (engine, module) = MODULE.get_or_init(|| {
            let engine = Engine::default();
            let module = Module::new(&engine, DEFAULT_MODULE).expect("module compiles");
            (engine, module)
        });
        let mut store = Store::new(engine, ());
        let instance =
            Instance::new(&mut store, module, &[]).expect("instantiates with no imports");
        let memory = instance
            .get_memory(&mut store, "memory")
            .expect("exports memory");
        Raw {
            store,
            instance,
            memory,
        }
    }

    fn f<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        name: &str,
    ) -> TypedFunc<P, R> {
        self.instance
            .get_typed_func(&mut self.store, name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Copies `bytes` into a block from `flocker_alloc`.
    fn put(&mut self, bytes: &[u8]) -> (i32, i32) {
        let alloc = self.f::<i32, i32>("flocker_alloc");
        let ptr = alloc
            .call(&mut self.store, bytes.len() as i32)
            .expect("alloc does not trap");
        self.memory
            .write(&mut self.store, ptr as usize, bytes)
            .expect("block in memory");
        (ptr, bytes.len() as i32)
    }

    /// Reads and frees a packed result.
    fn take(&mut self, packed: i64) -> Value {
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let bytes = self.memory.data(&self.store)[ptr..ptr + len].to_vec();
        let free = self.f::<(i32, i32), i32>("flocker_free");
        assert_eq!(
            free.call(&mut self.store, (ptr as i32, len as i32))
                .unwrap(),
            0,
            "result block frees"
        );
        let text = String::from_utf8(bytes).expect("result is UTF-8");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("result is not JSON ({e}): {text}"))
    }

    fn call2(&mut self, name: &str, ptr: i32, len: i32) -> Value {
        let f = self.f::<(i32, i32), i64>(name);
        let packed = f
            .call(&mut self.store, (ptr, len))
            .unwrap_or_else(|e| panic!("{name}({ptr}, {len}) trapped: {e}"));
        self.take(packed)
    }

    fn call3(&mut self, name: &str, handle: i32, ptr: i32, len: i32) -> Value {
        let f = self.f::<(i32, i32, i32), i64>(name);
        let packed = f
            .call(&mut self.store, (handle, ptr, len))
            .unwrap_or_else(|e| panic!("{name}({handle}, {ptr}, {len}) trapped: {e}"));
        self.take(packed)
    }

    fn call1(&mut self, name: &str, handle: i32) -> Value {
        let f = self.f::<i32, i64>(name);
        let packed = f
            .call(&mut self.store, handle)
            .unwrap_or_else(|e| panic!("{name}({handle}) trapped: {e}"));
        self.take(packed)
    }

    fn decide(&mut self, bytes: &[u8]) -> Value {
        let (p, n) = self.put(bytes);
        self.call2("flocker_decide", p, n)
    }

    fn load(&mut self, bytes: &[u8]) -> Value {
        let (p, n) = self.put(bytes);
        self.call2("flocker_snapshot_load", p, n)
    }

    fn handle(&mut self) -> i32 {
        let v = self.load(SNAPSHOT.as_bytes());
        v["handle"]
            .as_i64()
            .unwrap_or_else(|| panic!("no handle: {v}")) as i32
    }
}

const SNAPSHOT: &str = r#"{"inventory":[{"hostname":"n1","address":"10.0.0.1"}],"routes":{"containers":{},"volumes":{}}}"#;
const REQUEST: &str = r#"{"name":"web.1","container":{"Image":"nginx"}}"#;

fn kind(v: &Value) -> &str {
    v["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error result: {v}"))
}

#[test]
fn module_imports_nothing() {
    // Read the import section itself, not just what wasmtime reports.
    let mut imports = 0;
    for payload in wasmparser_payloads(DEFAULT_MODULE) {
        if payload.0 == 2 {
            imports += payload.1;
        }
    }
    assert_eq!(imports, 0, "the module has an import section with entries");
    let module = Module::new(&Engine::default(), DEFAULT_MODULE).unwrap();
    let names: Vec<String> = module
        .imports()
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    assert!(names.is_empty(), "imports: {names:?}");
}

/// `(section id, entry count)` for each section of a module, read by hand
/// from the binary format (magic, version, then id + LEB128 size + body).
fn wasmparser_payloads(bytes: &[u8]) -> Vec<(u8, u64)> {
    fn leb(bytes: &[u8], at: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = bytes[*at];
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    assert_eq!(
        &bytes[..8],
        b"\0asm\x01\0\0\0",
        "a core wasm module, version 1"
    );
    let mut at = 8;
    let mut out = Vec::new();
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let size = leb(bytes, &mut at) as usize;
        let body_start = at;
        let count = if id == 0 {
            0
        } else {
            let mut c = at;
            leb(bytes, &mut c)
        };
        out.push((id, count));
        at = body_start + size;
    }
    out
}

#[test]
fn version_info_and_a_decision() {
    let mut raw = Raw::new();
    let version = raw
        .f::<(), i32>("flocker_abi_version")
        .call(&mut raw.store, ())
        .unwrap();
    assert_eq!(version, 1);
    let info = raw
        .f::<(), i64>("flocker_info")
        .call(&mut raw.store, ())
        .unwrap();
    let info = raw.take(info);
    assert_eq!(info["name"], "flocker-policy");
    assert_eq!(info["abi"], 1);
    assert!(info["version"].is_string());

    let mut input: Value = serde_json::from_str(REQUEST).unwrap();
    let snap: Value = serde_json::from_str(SNAPSHOT).unwrap();
    input["inventory"] = snap["inventory"].clone();
    let out = raw.decide(input.to_string().as_bytes());
    assert_eq!(out["server"]["hostname"], "n1", "{out}");
}

#[test]
fn invalid_utf8_is_an_error_result() {
    let mut raw = Raw::new();
    let bad = b"{\"name\": \"\xff\xfe\", \"container\": {}, \"inventory\": []}";
    assert_eq!(kind(&raw.decide(bad)), "invalid_request");
    assert_eq!(
        kind(&raw.load(b"{\"inventory\": [\"\xc3\"]}")),
        "invalid_request"
    );
    let h = raw.handle();
    let (p, n) = raw.put(b"{\"name\":\"\xe2\x82\"}");
    assert_eq!(
        kind(&raw.call3("flocker_snapshot_decide", h, p, n)),
        "invalid_request"
    );
    let (p, n) = raw.put(b"[\xff]");
    assert_eq!(
        kind(&raw.call3("flocker_snapshot_apply", h, p, n)),
        "invalid_request"
    );
}

#[test]
fn truncated_json_is_an_error_result() {
    let mut raw = Raw::new();
    let full = format!(
        r#"{{"name":"web.1","container":{{"Image":"nginx"}},"inventory":{}}}"#,
        r#"[{"hostname":"n1","address":"a"}]"#
    );
    for cut in [0, 1, full.len() / 2, full.len() - 1] {
        let out = raw.decide(&full.as_bytes()[..cut]);
        assert_eq!(kind(&out), "invalid_request", "cut at {cut}: {out}");
        assert!(
            out["error"]["message"].as_str().unwrap().contains("JSON"),
            "{out}"
        );
    }
    assert_eq!(
        kind(&raw.load(&SNAPSHOT.as_bytes()[..20])),
        "invalid_request"
    );
    let h = raw.handle();
    let (p, n) = raw.put(&REQUEST.as_bytes()[..10]);
    assert_eq!(
        kind(&raw.call3("flocker_snapshot_decide", h, p, n)),
        "invalid_request"
    );
    let (p, n) = raw.put(br#"[{"op":"remove_route","#);
    assert_eq!(
        kind(&raw.call3("flocker_snapshot_apply", h, p, n)),
        "invalid_request"
    );
}

#[test]
fn pointer_or_length_beyond_memory_is_an_error_result() {
    let mut raw = Raw::new();
    let size = raw.memory.data_size(&raw.store) as i64;
    let (p, _) = raw.put(REQUEST.as_bytes());
    let h = raw.handle();
    let cases: [(i32, i32); 6] = [
        (size as i32, 1),       // starts at the end of memory
        (size as i32 - 4, 100), // runs past the end
        (-8, 16),               // 0xfffffff8: near 4 GiB
        (p, i32::MAX),          // length beyond memory
        (p, -1),                // 0xffffffff bytes
        (16, 8),                // in memory but not a block from alloc
    ];
    for (ptr, len) in cases {
        for out in [
            raw.call2("flocker_decide", ptr, len),
            raw.call2("flocker_snapshot_load", ptr, len),
            raw.call3("flocker_snapshot_apply", h, ptr, len),
            raw.call3("flocker_snapshot_decide", h, ptr, len),
        ] {
            assert_eq!(kind(&out), "invalid_request", "({ptr}, {len}): {out}");
        }
    }
    // Freeing what is not a live block is refused, not a heap corruption.
    let free = raw.f::<(i32, i32), i32>("flocker_free");
    assert_eq!(free.call(&mut raw.store, (16, 8)).unwrap(), 1);
    assert_eq!(
        free.call(&mut raw.store, (p, REQUEST.len() as i32))
            .unwrap(),
        0
    );
    assert_eq!(
        free.call(&mut raw.store, (p, REQUEST.len() as i32))
            .unwrap(),
        1,
        "double free"
    );
    // A freed block is no longer readable input.
    assert_eq!(
        kind(&raw.call2("flocker_decide", p, REQUEST.len() as i32)),
        "invalid_request"
    );
    // An allocation the module cannot make returns 0 rather than trapping.
    let alloc = raw.f::<i32, i32>("flocker_alloc");
    assert_eq!(
        alloc.call(&mut raw.store, -16).unwrap(),
        0,
        "4 GiB - 16 bytes cannot fit"
    );
    assert_eq!(alloc.call(&mut raw.store, 0).unwrap(), 0);
    // And the instance still works afterwards.
    let out = raw.decide(REQUEST.as_bytes());
    assert_eq!(kind(&out), "invalid_request");
    let (p, n) = raw.put(REQUEST.as_bytes());
    let out = raw.call3("flocker_snapshot_decide", h, p, n);
    assert_eq!(out["server"]["hostname"], "n1", "{out}");
}

#[test]
fn unknown_or_dropped_handle_is_an_error_result() {
    let mut raw = Raw::new();
    let h = raw.handle();
    for bad in [0, -1, h + 1, 12345] {
        let (p, n) = raw.put(REQUEST.as_bytes());
        assert_eq!(
            kind(&raw.call3("flocker_snapshot_decide", bad, p, n)),
            "unknown_handle"
        );
        let (p, n) = raw.put(b"[]");
        assert_eq!(
            kind(&raw.call3("flocker_snapshot_apply", bad, p, n)),
            "unknown_handle"
        );
        assert_eq!(
            kind(&raw.call1("flocker_snapshot_export", bad)),
            "unknown_handle"
        );
        assert_eq!(
            kind(&raw.call1("flocker_snapshot_drop", bad)),
            "unknown_handle"
        );
    }
    assert_eq!(raw.call1("flocker_snapshot_drop", h)["dropped"], h);
    let (p, n) = raw.put(REQUEST.as_bytes());
    assert_eq!(
        kind(&raw.call3("flocker_snapshot_decide", h, p, n)),
        "unknown_handle"
    );
    assert_eq!(
        kind(&raw.call1("flocker_snapshot_drop", h)),
        "unknown_handle"
    );
    // A new handle is a new number: the dropped one stays unknown.
    assert_ne!(raw.handle(), h);
    let (p, n) = raw.put(REQUEST.as_bytes());
    assert_eq!(
        kind(&raw.call3("flocker_snapshot_decide", h, p, n)),
        "unknown_handle"
    );
}

#[test]
fn change_of_the_wrong_shape_is_an_error_result_and_changes_nothing() {
    let mut raw = Raw::new();
    let h = raw.handle();
    let before = raw.call1("flocker_snapshot_export", h);
    let bad: &[&str] = &[
        r#"{"op":"upsert_server"}"#,
        r#"{"op":"upsert_server","server":{"hostname":"n2"}}"#,
        r#"{"op":"save_route","route":{"name":"a.1"}}"#,
        r#"{"op":"claim_volume","volume":"pg"}"#,
        r#"{"op":"explode","name":"x"}"#,
        r#"{"name":"x"}"#,
        r#""remove_route""#,
        r#"42"#,
        r#"[{"op":"claim_volume","volume":"pg","server":"n1"},{"op":"remove_server","hostname":7}]"#,
    ];
    for change in bad {
        let (p, n) = raw.put(change.as_bytes());
        let out = raw.call3("flocker_snapshot_apply", h, p, n);
        assert_eq!(kind(&out), "invalid_request", "{change}: {out}");
        assert_eq!(
            raw.call1("flocker_snapshot_export", h),
            before,
            "{change} changed the state"
        );
    }
    let (p, n) = raw.put(br#"[{"op":"claim_volume","volume":"pg","server":"n1"},{"op":"remove_server","hostname":"n9"}]"#);
    assert_eq!(raw.call3("flocker_snapshot_apply", h, p, n)["applied"], 2);
    assert_eq!(
        raw.call1("flocker_snapshot_export", h)["routes"]["volumes"]["pg"],
        "n1"
    );
}

#[test]
fn arbitrary_bytes_never_trap() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let raw = std::cell::RefCell::new(Raw::new());
    let h = raw.borrow_mut().handle();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    // Raw bytes, and JSON-looking text cut at random points.
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (0usize..400).prop_map(|cut| {
            let text = format!(r#"{REQUEST}{SNAPSHOT}[{{"op":"save_route","route":{{"name":"a.1","server":"n1"}}}}]"#);
            text.as_bytes()[..cut.min(text.len())].to_vec()
        }),
    ];
    runner
        .run(&bytes, |input| {
            let mut raw = raw.borrow_mut();
            for out in [
                raw.decide(&input),
                raw.load(&input),
                {
                    let (p, n) = raw.put(&input);
                    raw.call3("flocker_snapshot_apply", h, p, n)
                },
                {
                    let (p, n) = raw.put(&input);
                    raw.call3("flocker_snapshot_decide", h, p, n)
                },
            ] {
                prop_assert!(out.is_object(), "{out}");
            }
            Ok(())
        })
        .unwrap();
}
