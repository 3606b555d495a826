//! Bytes as a proxied `POST /containers/create`: the query up to the first
//! newline, the body after it, through the proxy's own reading and
//! rewriting (`flocker_host::proxy::create_request`). A create is read or
//! is a 400, never a panic; a create that reads is decided on two servers,
//! and a decided one sends on a body that reads again with the same
//! `Image` and a path that names the container exactly once, by the name
//! decided. A create without a name is given one the engine accepts.
#![no_main]

use flocker_host::proxy::create_request::{self, CreateBody};
use flocker_host::proxy::forward::percent_decode;
use flocker_host::proxy::ProxyError;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let CreateBody {
        container,
        image,
        name,
    } = match create_request::read(body, query) {
        Ok(read) => read,
        Err(ProxyError::BadRequest(_)) => return,
        Err(other) => panic!("a create body is a 400 or read, not {other:?}"),
    };
    let asked = name.is_some();
    let name = name.unwrap_or_else(|| create_request::fresh_name(&image, 0x1234, 7));
    let config = json!({"Config": {"ExposedPorts": {"80/tcp": {}}}});
    let mut input = create_request::decision_request(&name, &container, Some(&config));
    input["inventory"] = json!([
        {"hostname": "a", "address": "127.0.0.1"},
        {"hostname": "b", "address": "127.0.0.2"}
    ]);
    input["routes"] = json!({});
    let decided = flocker_core::decide(&input);
    let output: Value =
        serde_json::from_str(&flocker_core::render(&decided)).expect("the output is JSON");
    match decided {
        Err(e) => assert!(
            asked || e.kind() != "invalid_name",
            "the fresh name {name:?} was refused: {e}"
        ),
        Ok(_) => {
            let sent = create_request::rewritten_body(&output).expect("the body writes");
            let again = create_request::read(&sent, None).expect("the sent body reads");
            assert_eq!(again.image, image, "the sent body keeps the image");
            let path = create_request::server_path("/v1.41", query, &name);
            let (_, sent_query) = path.split_once('?').expect("the path has a query");
            // Keys decoded as the daemon (Go's url.ParseQuery) decodes them.
            let names: Vec<String> = sent_query
                .split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .filter(|(k, _)| !k.is_empty() && percent_decode(k) == "name")
                .map(|(_, v)| percent_decode(v))
                .collect();
            assert_eq!(names, [name], "the path names the container once: {path}");
        }
    }
});
