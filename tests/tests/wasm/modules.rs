//! Modules written in WAT that speak the ABI (the right exports and
//! signatures, valid policy info) and do what a test needs when asked to
//! decide: loop, trap, grow, or answer a fixed decision.

/// Text placed in linear memory by a data segment at `at`.
pub struct Text {
    pub at: u64,
    pub text: String,
}

impl Text {
    /// The ABI's packed result pointing at this text: `(ptr << 32) | len`.
    pub fn packed(&self) -> i64 {
        ((self.at << 32) | self.text.len() as u64) as i64
    }

    fn segment(&self) -> String {
        let escaped = self.text.replace('\\', "\\5c").replace('"', "\\22");
        format!("(data (i32.const {}) \"{escaped}\")", self.at)
    }
}

/// A module of ABI version `abi` with `memory_pages` of initial memory,
/// whose `flocker_decide` and `flocker_snapshot_decide` run `decide` (an
/// expression giving the i64 result, with the input at `$p`, `$l` bytes
/// long), with the functions `funcs` and the data `texts` beside. Info,
/// snapshot load, apply, export and drop answer what a caller expects.
pub fn abi_module(
    memory_pages: u32,
    abi: i32,
    funcs: &str,
    texts: &[Text],
    decide: &str,
) -> Vec<u8> {
    let fixed = [
        Text {
            at: 1024,
            text: format!(r#"{{"name":"test","version":"0.0.1","abi":{abi}}}"#),
        },
        Text {
            at: 3072,
            text: r#"{"handle":1}"#.into(),
        },
        Text {
            at: 3584,
            text: r#"{"applied":1}"#.into(),
        },
    ];
    let [info, handle, applied] = &fixed;
    let data: String = fixed.iter().chain(texts).map(Text::segment).collect();
    let wat = format!(
        r#"(module
  (memory (export "memory") {memory_pages})
  (global $next (mut i32) (i32.const 65536))
  {data}
  (func (export "flocker_abi_version") (result i32) (i32.const {abi}))
  (func (export "flocker_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (local.get $n) (i32.const 65536)) (i32.const 1))))))
    (local.get $p))
  (func (export "flocker_free") (param i32 i32) (result i32) (i32.const 0))
  (func (export "flocker_info") (result i64) (i64.const {info}))
  {funcs}
  (func (export "flocker_decide") (param $p i32) (param $l i32) (result i64) {decide})
  (func (export "flocker_snapshot_load") (param i32 i32) (result i64) (i64.const {handle}))
  (func (export "flocker_snapshot_apply") (param i32 i32 i32) (result i64) (i64.const {applied}))
  (func (export "flocker_snapshot_decide") (param i32) (param $p i32) (param $l i32) (result i64) {decide})
  (func (export "flocker_snapshot_export") (param i32) (result i64) (i64.const {handle}))
  (func (export "flocker_snapshot_drop") (param i32) (result i64) (i64.const {handle}))
)"#,
        info = info.packed(),
        handle = handle.packed(),
        applied = applied.packed(),
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("WAT: {e}\n{wat}"))
}

/// A module that passes validation but answers every decision, one-shot
/// and resident, with `decision`, whatever it was asked; except a request
/// named `auth...` (the validation sample that expects `name_in_use`),
/// which it answers with an error.
pub fn fixed_answer(decision: &serde_json::Value) -> Vec<u8> {
    let refusal = Text {
        at: 4096,
        text: r#"{"error":{"kind":"name_in_use","message":"liar"}}"#.into(),
    };
    let answer = Text {
        at: 8192,
        text: decision.to_string(),
    };
    // The request's name is its first member: `{"name":"auth` puts
    // "auth" at byte 9, little-endian 0x68747561.
    let decide = format!(
        "(if (result i64) (i32.and (i32.gt_u (local.get $l) (i32.const 13)) (i32.eq (i32.load offset=9 (local.get $p)) (i32.const 0x68747561))) (then (i64.const {})) (else (i64.const {})))",
        refusal.packed(),
        answer.packed()
    );
    abi_module(2, 1, "", &[refusal, answer], &decide)
}

/// A decision on `server` whose route is `route_name`'s: what a lying
/// module answers.
pub fn lying_decision(server: &str, route_name: &str) -> serde_json::Value {
    serde_json::json!({
        "server": {"hostname": server, "address": "10.0.0.1", "docker": "tcp://10.0.0.1:2375"},
        "container": {"Image": "nginx"},
        "links_env": [],
        "route": {"name": route_name, "service": "other", "server": server, "address": "10.0.0.1",
                  "ports": {}, "host_ports": [], "env": [], "volumes": [], "state": "live"},
        "explain": {"summary": "lies", "rejected": {}}
    })
}
