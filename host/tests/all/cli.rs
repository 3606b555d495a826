//! The `flocker` command line through the real binary: exit codes, output
//! shapes, usage errors, policy push/ls/rollback.

use crate::common::*;
use serde_json::Value;

fn example(name: &str) -> String {
    workspace()
        .join("examples")
        .join(name)
        .to_str()
        .expect("utf8 path")
        .to_string()
}

#[test]
fn decide_exits_0_for_a_decision_and_1_for_an_error_object() {
    let r = ok(&["decide", &example("least-loaded.input.json")], None, 0);
    assert!(r.json().get("server").is_some(), "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "one line: {r:?}");
    let e = ok(
        &["decide", &example("no-eligible-server.input.json")],
        None,
        1,
    );
    assert_eq!(e.json()["error"]["kind"], "no_eligible_server");
    assert!(e.stderr.is_empty(), "{e:?}");
    // Not JSON, from stdin.
    let bad = ok(&["decide"], Some("{nope"), 1);
    assert_eq!(bad.json()["error"]["kind"], "invalid_request");
    // `-` is stdin too.
    let input = std::fs::read_to_string(example("least-loaded.input.json")).unwrap();
    let dash = ok(&["decide", "-"], Some(&input), 0);
    assert_eq!(dash.stdout, r.stdout);
}

#[test]
fn decide_output_is_the_recorded_example_output() {
    for name in [
        "least-loaded",
        "link-group",
        "port-publishing",
        "conflicting-pins",
    ] {
        let r = run(&["decide", &example(&format!("{name}.input.json"))], None);
        let want: Value = serde_json::from_str(
            &std::fs::read_to_string(example(&format!("{name}.output.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(r.json(), want, "{name}");
        let code = if want.get("error").is_some() { 1 } else { 0 };
        assert_eq!(r.code, code, "{name}");
    }
}

#[test]
fn decide_pretty_prints_the_same_value() {
    let one = ok(&["decide", &example("link-single.input.json")], None, 0);
    let pretty = ok(
        &["decide", "--pretty", &example("link-single.input.json")],
        None,
        0,
    );
    assert!(pretty.stdout.lines().count() > 5, "{pretty:?}");
    assert_eq!(one.json(), pretty.json());
}

#[test]
fn usage_problems_exit_2_and_a_missing_store_exits_3() {
    let s = Scratch::new("usage");
    let nowhere = format!("file:{}", s.path("nothing.redb").display());
    for args in [
        vec!["routes", "ls", "--store", nowhere.as_str()],
        vec!["inventory", "ls", "--store", nowhere.as_str()],
        vec!["store", "check", "--store", nowhere.as_str()],
    ] {
        let r = ok(&args, None, 3);
        assert!(r.stderr.contains("no embedded store at"), "{args:?}: {r:?}");
    }
    let r = ok(
        &["place", "--store", nowhere.as_str()],
        Some(r#"{"name":"a.1","container":{}}"#),
        3,
    );
    assert!(r.stderr.contains("inventory add"), "{r:?}");
    assert!(!s.path("nothing.redb").exists(), "a read created the store");
    let missing = ok(&["decide", "/nonexistent/input.json"], None, 2);
    assert!(
        missing
            .stderr
            .contains("cannot read /nonexistent/input.json"),
        "{missing:?}"
    );
    assert!(missing.stdout.is_empty());
    ok(&["decide", "--engine", "quantum"], None, 2);
    ok(&["decide", "--bogus"], None, 2);
    ok(&["frobnicate"], None, 2);
    ok(&[], None, 2);
    let url = ok(&["routes", "ls", "--store", "http://x:1"], None, 2);
    assert!(url.stderr.contains("bad store URL"), "{url:?}");
    let policy = ok(
        &[
            "decide",
            "--policy",
            "/nonexistent.wasm",
            &example("least-loaded.input.json"),
        ],
        None,
        2,
    );
    assert!(policy.stderr.contains("cannot read policy"), "{policy:?}");
    ok(
        &["place", "--store", "file:/nonexistent-dir/x.redb"],
        Some("{}"),
        3,
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["decide", "--help"],
        vec!["place", "--help"],
        vec!["explain", "--help"],
        vec!["inventory", "add", "--help"],
        vec!["inventory", "rm", "--help"],
        vec!["inventory", "ls", "--help"],
        vec!["routes", "ls", "--help"],
        vec!["routes", "rm", "--help"],
        vec!["policy", "push", "--help"],
        vec!["policy", "check", "--help"],
        vec!["policy", "ls", "--help"],
        vec!["policy", "rollback", "--help"],
        vec!["policy", "export", "--help"],
        vec!["serve", "--help"],
        vec!["store", "check", "--help"],
        vec!["bench", "--help"],
    ] {
        let r = ok(&args, None, 0);
        assert!(r.stdout.contains("Usage: flocker"), "{args:?}: {r:?}");
    }
}

#[test]
fn the_store_defaults_to_flocker_store_then_a_file_in_the_current_directory() {
    let s = Scratch::new("default-store");
    let add = flocker()
        .current_dir(s.dir())
        .args(["inventory", "add"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(br#"{"hostname":"d","address":"10.9.9.9"}"#)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(add.status.success());
    assert!(s.path("flocker.redb").exists());
    let env = flocker()
        .env(
            "FLOCKER_STORE",
            format!("file:{}", s.path("flocker.redb").display()),
        )
        .args(["inventory", "ls", "--json"])
        .output()
        .unwrap();
    let servers: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(servers[0]["hostname"], "d");
}

#[test]
fn decide_with_the_embedded_module_agrees_with_native() {
    let native = ok(&["decide", &example("link-group.input.json")], None, 0);
    let wasm = ok(
        &[
            "decide",
            "--engine",
            "wasm",
            &example("link-group.input.json"),
        ],
        None,
        0,
    );
    assert_eq!(native.stdout, wasm.stdout);
    let e = ok(
        &[
            "decide",
            "--engine",
            "wasm",
            &example("conflicting-pins.input.json"),
        ],
        None,
        1,
    );
    assert_eq!(e.json()["error"]["kind"], "conflicting_pins");
}

#[test]
fn policy_push_ls_rollback() {
    let s = Scratch::new("policy");
    let store = s.store();
    // Reading a store that was never created is an error and creates nothing.
    let missing = ok(&["policy", "ls", "--store", &store], None, 3);
    assert!(
        missing.stderr.contains("no embedded store at"),
        "{missing:?}"
    );
    assert!(!s.path("store.redb").exists());
    ok(
        &["inventory", "add", "--store", &store],
        Some(r#"{"hostname":"n","address":"10.0.0.1"}"#),
        0,
    );
    let empty = ok(&["policy", "ls", "--store", &store], None, 0);
    assert!(
        empty.stdout.contains("embedded default module is active"),
        "{empty:?}"
    );
    ok(&["policy", "rollback", "--store", &store], None, 1);

    // Not a module: refused, nothing stored.
    std::fs::write(s.path("junk.wasm"), b"not wasm").unwrap();
    let junk = ok(
        &[
            "policy",
            "push",
            "--store",
            &store,
            s.path("junk.wasm").to_str().unwrap(),
        ],
        None,
        1,
    );
    assert!(junk.stderr.contains("refused, nothing changed"), "{junk:?}");

    let (v1, bytes) = export_embedded(&s, &store);
    assert_eq!(&bytes[..4], b"\0asm");
    let v2 = s.path("v2.wasm");
    std::fs::write(&v2, module_variant(&bytes, "v2")).unwrap();

    let p1 = ok(
        &["policy", "push", "--store", &store, v1.to_str().unwrap()],
        None,
        0,
    );
    let p2 = ok(
        &["policy", "push", "--store", &store, v2.to_str().unwrap()],
        None,
        0,
    );
    let d1 = p1.stdout.split_whitespace().nth(1).unwrap().to_string();
    let d2 = p2.stdout.split_whitespace().nth(1).unwrap().to_string();
    assert_ne!(d1, d2);
    let ls = ok(&["policy", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(ls["active"], d2.as_str());
    assert_eq!(ls["history"].as_array().unwrap().len(), 2);

    let back = ok(&["policy", "rollback", "--store", &store], None, 0);
    assert!(back.stdout.contains(&format!("active: {d1}")), "{back:?}");
    let ls = ok(&["policy", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(ls["active"], d1.as_str());
    // Forward again by digest prefix; an unknown digest is an error.
    ok(
        &["policy", "rollback", "--store", &store, &d2[..12]],
        None,
        0,
    );
    ok(
        &["policy", "rollback", "--store", &store, "ffffffffffff"],
        None,
        1,
    );
    let exported = s.path("active.wasm");
    ok(
        &[
            "policy",
            "export",
            "--store",
            &store,
            "-o",
            exported.to_str().unwrap(),
        ],
        None,
        0,
    );
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(&v2).unwrap()
    );

    // place --engine wasm runs the store's active module.
    let placed = ok(
        &["place", "--engine", "wasm", "--store", &store],
        Some(r#"{"name":"w.1","container":{"Image":"w"}}"#),
        0,
    );
    assert_eq!(placed.json()["route"]["server"], "n");
}
