//! `flocker serve --store etcd://...` with the default (WASM) engine: a
//! burst of concurrent places through one service. The module decides on
//! its resident state, so it must see this host's saves in flight as the
//! native engine does, or every place of the burst picks the same lowest
//! port and all but one lose each round.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use flocker_tests::etcd::{audit, fresh_flocker_bin, run_flocker, Etcd};
use serde_json::{json, Value};

const PREFIX: &str = "/serve";
const BURST: usize = 32;

/// A running `flocker serve`, killed on drop.
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(url: &str) -> Serve {
        let mut child = Command::new(fresh_flocker_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--store", url])
            .env_remove("FLOCKER_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flocker serve");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Serve { child, addr }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(addr: &str, path: &str, body: &Value) -> (u16, String) {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}

#[test]
fn a_burst_through_serve_with_the_default_engine_all_lands() {
    let etcd = Etcd::start();
    let url = etcd.store_url(PREFIX);
    let inventory = json!([
        {"hostname": "n1", "address": "10.9.0.1", "port_range": [20000, 20199]}
    ]);
    let r = run_flocker(
        &["inventory", "add", "--store", &url],
        &inventory.to_string(),
        &[],
    );
    assert_eq!(r.code, 0, "inventory add: {}", r.stderr);
    let serve = Serve::start(&url);

    let threads: Vec<_> = (0..BURST)
        .map(|i| {
            let addr = serve.addr.clone();
            std::thread::spawn(move || {
                let name = format!("burst.{i}");
                let req = json!({"name": name, "container": {"Image": "web",
                    "ExposedPorts": {"80/tcp": {}}}});
                let (status, body) = post(&addr, "/v1/place", &req);
                (name, status, body)
            })
        })
        .collect();
    let answers: Vec<(String, u16, String)> = threads
        .into_iter()
        .map(|t| t.join().expect("a placing thread"))
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let au = rt.block_on(async { audit(&etcd.client().await, PREFIX).await });
    assert!(au.problems.is_empty(), "{:?}", au.problems);
    let refused: Vec<&(String, u16, String)> =
        answers.iter().filter(|(_, s, _)| *s != 200).collect();
    // Nothing a caller was told failed is left behind in etcd.
    for (name, status, _) in &refused {
        if *status == 409 || *status == 422 {
            assert!(
                !au.routes.contains_key(name),
                "{name} was answered {status} yet etcd holds it"
            );
        }
    }
    assert!(refused.is_empty(), "refused: {refused:?}");
    let mut ports = Vec::new();
    for (name, _, _) in &answers {
        let (server, state, p) = &au.routes[name];
        assert_eq!((server.as_str(), state.as_str()), ("n1", "live"), "{name}");
        ports.extend(p.iter().copied());
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), BURST, "one host port each");
}
