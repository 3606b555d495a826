//! The transport limits of a listener, against the real `flocker serve`
//! over loopback with raw sockets (the only client that can misbehave on
//! purpose): a slow-loris head is cut off, idle connections do not starve
//! others, the connection cap closes the one too many, and a body over the
//! cap is refused before it is sent whole.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::serve::Server;
use crate::common::*;

/// `flocker serve` on the demo cluster with the native engine and `extra`
/// flags; the scratch directory lives as long as the server is used.
fn serve(tag: &str, extra: &[&str]) -> (Scratch, Server) {
    let s = Scratch::new(tag);
    let store = seed(&s, &demo_inventory());
    let mut args = vec!["--store", &store, "--engine", "native"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    (s, server)
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the server closes; what it sent.
fn read_to_close(s: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither answered nor closed: {e}"),
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

fn decide_body() -> String {
    json!({
        "inventory": [{"hostname": "s1", "address": "10.0.0.1", "docker": "tcp://10.0.0.1:2375", "port_range": [30000, 30099]}],
        "routes": {"containers": {}, "volumes": {}},
        "name": "web.1",
        "container": {"Image": "web"},
        "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}},
    })
    .to_string()
}

#[test]
fn a_slow_loris_head_is_cut_off_and_others_are_served() {
    let (_s, server) = serve("loris", &["--header-timeout-ms", "1500"]);
    let mut loris = connect(&server.addr);
    let start = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut cut = None;
    // One byte every 400 ms: each arrives well inside any per-read
    // timeout, the head as a whole never finishes.
    for (i, b) in head.iter().chain(b"aaaaaaaaaaaaaaaaaaaaaaaa").enumerate() {
        if loris.write_all(&[*b]).is_err() {
            cut = Some(i);
            break;
        }
        if i >= head.len() {
            std::thread::sleep(Duration::from_millis(400));
        }
        if start.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    // The server may close between two writes (the write then fails) or
    // while the client is sleeping (a read sees it).
    if cut.is_none() {
        loris
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let answer = read_to_close(&mut loris);
        assert!(
            !answer.contains("200 OK"),
            "the slow head was served: {answer}"
        );
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "a head trickled for {took:?} was not cut at 1.5 s"
    );
    let (status, body) = server.request("GET", "/healthz", "");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_thousand_idle_connections_do_not_starve_health_or_decisions() {
    let (_s, server) = serve("idle", &[]);
    let idle: Vec<TcpStream> = (0..1000).map(|_| connect(&server.addr)).collect();
    let start = Instant::now();
    let (status, body) = server.request("GET", "/healthz", "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.request("POST", "/v1/decide", &decide_body());
    assert_eq!(status, 200, "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "answers took {:?} beside 1,000 idle connections",
        start.elapsed()
    );
    drop(idle);
}

#[test]
fn the_connection_over_the_cap_is_closed_and_the_cap_frees_up() {
    let (_s, server) = serve("cap", &["--max-connections", "4"]);
    let held: Vec<TcpStream> = (0..4).map(|_| connect(&server.addr)).collect();
    // Give the accept loop time to take all four slots.
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = connect(&server.addr);
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = read_to_close(&mut extra);
    assert!(
        answer.is_empty(),
        "the fifth connection was served: {answer}"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect(&server.addr);
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if read_to_close(&mut s).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "slots were not freed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_body_over_the_cap_is_refused_before_it_is_sent() {
    let (_s, server) = serve("cap-body", &["--max-body-kib", "16"]);
    // Declares 10 MiB and sends none of it: the answer must not wait.
    let mut s = connect(&server.addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        10 << 20
    )
    .unwrap();
    let answer = read_to_close(&mut s);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("invalid_body"), "{answer}");

    // Chunked, no length given: cut at the cap as it arrives.
    let mut s = connect(&server.addr);
    s.write_all(
        b"POST /v1/place HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    // Exactly one byte over, then nothing: the server has read all that
    // was sent when it answers, so its close is a clean one.
    for size in [8 << 10, 8 << 10, 1] {
        write!(s, "{size:x}\r\n").unwrap();
        s.write_all(&vec![b' '; size]).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    let answer = read_to_close(&mut s);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Under the cap it is decided.
    let (status, body) = server.request("POST", "/v1/decide", &decide_body());
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_body_sent_too_slowly_is_a_408() {
    let (_s, server) = serve("slow-body", &["--body-timeout-ms", "500"]);
    let mut s = connect(&server.addr);
    s.write_all(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let answer = read_to_close(&mut s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Runs `flocker args...` expecting it to exit by itself within 30 s
/// (killed, and the test failed, if it goes on serving).
fn exits(args: &[&str]) -> (i32, String) {
    let mut child = flocker()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn flocker");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("flocker {args:?} went on serving");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_non_loopback_listener_needs_tlsverify_or_insecure_listen() {
    let s = Scratch::new("exposed");
    let store = s.store();
    let (code, err) = exits(&["serve", "--store", &store, "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without --tlsverify"), "{err}");
    assert!(err.contains("--insecure-listen"), "{err}");
    let (code, err) = exits(&["proxy", "--store", &store, "--listen", "tcp://0.0.0.0:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without --tlsverify"), "{err}");
    // TLS without checking clients is still open to anyone.
    let (code, err) = exits(&[
        "serve",
        "--store",
        &store,
        "--listen",
        "0.0.0.0:0",
        "--tlscert",
        "/nonexistent/cert.pem",
        "--tlskey",
        "/nonexistent/key.pem",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without --tlsverify"), "{err}");
}
