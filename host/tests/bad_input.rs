//! Issue 2's bad-input cases through the real `flocker decide`, both engines:
//! each answers `invalid_request` or `invalid_name` on stdout with exit 1, a
//! message naming the field by its JSON path, and nothing on stderr.

mod common;

use common::*;

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
