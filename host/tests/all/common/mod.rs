//! Helpers shared by the host integration tests: the real `flocker` binary,
//! scratch directories and a demo cluster.

pub mod fake_daemon;
pub mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_flocker");

/// A scratch directory removed on drop.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("flocker-host-{tag}-"))
            .tempdir()
            .expect("create scratch dir");
        Scratch(dir)
    }

    pub fn dir(&self) -> &Path {
        self.0.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// `file:<dir>/store.redb`
    pub fn store(&self) -> String {
        format!("file:{}", self.path("store.redb").display())
    }

    pub fn write(&self, name: &str, v: &Value) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, v.to_string()).expect("write scratch file");
        p
    }
}

/// The `flocker` command with no store taken from the environment.
pub fn flocker() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("FLOCKER_STORE");
    c
}

/// What one run of `flocker` gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `flocker args...` with `stdin` (empty when None).
pub fn run(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = flocker()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flocker");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write stdin");
        }
    }
    finish(child.wait_with_output().expect("wait flocker"))
}

/// Runs and asserts the exit code, returning the run.
pub fn ok(args: &[&str], stdin: Option<&str>, code: i32) -> Run {
    let r = run(args, stdin);
    assert_eq!(r.code, code, "flocker {args:?} exited {}: {r:?}", r.code);
    r
}

/// Places `request` against `store`, expecting `code`; returns the output JSON.
pub fn place(store: &str, request: &Value, code: i32) -> Value {
    ok(
        &["place", "--store", store],
        Some(&request.to_string()),
        code,
    )
    .json()
}

/// Three servers; node3 has a narrow port range.
pub fn demo_inventory() -> Value {
    json!([
        {"hostname": "node1", "address": "10.0.0.1", "tags": ["ssd"]},
        {"hostname": "node2", "address": "10.0.0.2", "tags": ["ssd"]},
        {"hostname": "node3", "address": "10.0.0.3", "port_range": [30000, 30009]}
    ])
}

pub fn seed(scratch: &Scratch, inventory: &Value) -> String {
    let store = scratch.store();
    let file = scratch.write("inventory.json", inventory);
    ok(
        &[
            "inventory",
            "add",
            "--store",
            &store,
            file.to_str().expect("utf8 path"),
        ],
        None,
        0,
    );
    store
}

pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
}

/// `Env` of a decision's rewritten container body.
pub fn env_of(decision: &Value) -> Vec<String> {
    decision["container"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The embedded module with a custom section appended: valid, same
/// behaviour, another digest.
pub fn module_variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"flocker-test";
    let mut out = bytes.to_vec();
    out.push(0);
    out.push((1 + name.len() + tag.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(tag.as_bytes());
    out
}

/// `flocker policy export --embedded` into the scratch folder: its path and bytes.
pub fn export_embedded(s: &Scratch, store: &str) -> (PathBuf, Vec<u8>) {
    let path = s.path("v1.wasm");
    let out = path.to_str().expect("utf8 path").to_string();
    ok(
        &[
            "policy",
            "export",
            "--embedded",
            "--store",
            store,
            "-o",
            &out,
        ],
        None,
        0,
    );
    let bytes = std::fs::read(&path).expect("exported module");
    (path, bytes)
}
