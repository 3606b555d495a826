//! Issue 2's bad-input cases through the real `flocker decide`, both engines:
//! each answers `invalid_request` or `invalid_name` on stdout with exit 1, a
//! message naming the field by its JSON path, and nothing on stderr.

use crate::common::*;

const INV: &str = r#"[{"hostname":"n1","address":"10.0.0.1"}]"#;

fn cases() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "not JSON",
            "{\"name\": \"web.1\", ".to_string(),
            "invalid_request",
            "not valid JSON",
        ),
        (
            "not an object",
            "[1, 2, 3]".to_string(),
            "invalid_request",
            "expected an object",
        ),
        (
            "wrong type",
            format!(r#"{{"container":{{"Env":"A=1"}},"inventory":{INV}}}"#),
            "invalid_request",
            "container.Env: expected an array",
        ),
        (
            "wrong type in a list",
            format!(r#"{{"container":{{"HostConfig":{{"Binds":["a:/a",7]}}}},"inventory":{INV}}}"#),
            "invalid_request",
            "container.HostConfig.Binds[1]",
        ),
        (
            "missing container",
            format!(r#"{{"name":"web.1","inventory":{INV}}}"#),
            "invalid_request",
            "container: is required",
        ),
        (
            "missing inventory",
            r#"{"container":{}}"#.to_string(),
            "invalid_request",
            "inventory: is required",
        ),
        (
            "server without an address",
            r#"{"container":{},"inventory":[{"hostname":"n1"},{"hostname":"n2"}]}"#.to_string(),
            "invalid_request",
            "inventory[0].address",
        ),
        (
            "port http/tcp",
            format!(r#"{{"container":{{"ExposedPorts":{{"http/tcp":{{}}}}}},"inventory":{INV}}}"#),
            "invalid_request",
            r#"container.ExposedPorts["http/tcp"]"#,
        ),
        (
            "port 70000/tcp",
            format!(
                r#"{{"container":{{}},"image":{{"Config":{{"ExposedPorts":{{"70000/tcp":{{}}}}}}}},"inventory":{INV}}}"#
            ),
            "invalid_request",
            r#"image.Config.ExposedPorts["70000/tcp"]"#,
        ),
        (
            "link with two colons",
            format!(
                r#"{{"container":{{"HostConfig":{{"Links":["db","a:b:c"]}}}},"inventory":{INV}}}"#
            ),
            "invalid_request",
            "container.HostConfig.Links[1]",
        ),
        (
            "invalid name",
            format!(r#"{{"name":"my app","container":{{}},"inventory":{INV}}}"#),
            "invalid_name",
            "\"my app\"",
        ),
    ]
}

#[test]
fn bad_input_exits_1_with_the_field_named_by_its_json_path() {
    for engine in ["native", "wasm"] {
        for (what, input, kind, path) in cases() {
            let r = ok(&["decide", "--engine", engine], Some(&input), 1);
            let v = r.json();
            assert_eq!(v["error"]["kind"], kind, "{engine} {what}: {r:?}");
            let message = v["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(path),
                "{engine} {what}: {message:?} lacks {path:?}"
            );
            assert!(r.stderr.is_empty(), "{engine} {what}: {r:?}");
        }
    }
}

/// An input of 3,000 routes: about 0.7 MB, needing some 9 MiB in the module.
fn large_input() -> String {
    let inventory: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({"hostname": format!("s{i:03}"), "address": "10.0.0.1"}))
        .collect();
    let mut containers = serde_json::Map::new();
    for r in 0..3000 {
        let name = format!("svc{}.{r}", r % 50);
        containers.insert(
            name.clone(),
            serde_json::json!({"name": name, "server": format!("s{:03}", r % 100),
                               "address": "10.0.0.1", "ports": {"80/tcp": 20000 + r / 100},
                               "env": ["PASSWORD=x"], "state": "live"}),
        );
    }
    serde_json::json!({"name": "app.1", "container": {"Image": "app"}, "inventory": inventory,
                       "routes": {"containers": containers}})
    .to_string()
}

#[test]
fn module_limits_contain_a_large_one_shot_call_and_can_be_raised() {
    let input = large_input();
    let capped = ok(
        &["decide", "--engine", "wasm", "--memory-mib", "3"],
        Some(&input),
        3,
    );
    assert!(capped.stdout.is_empty(), "{capped:?}");
    assert!(capped.stderr.contains("over the cap"), "{capped:?}");
    let decided = ok(
        &["decide", "--engine", "wasm", "--memory-mib", "64"],
        Some(&input),
        0,
    );
    let native = ok(&["decide"], Some(&input), 0);
    assert_eq!(decided.stdout, native.stdout);
    // Refused before any input is read.
    let bad = ok(
        &["decide", "--engine", "wasm", "--deadline-ms", "0"],
        None,
        2,
    );
    assert!(bad.stderr.contains("--deadline-ms"), "{bad:?}");
}
