//! `flocker serve` over real HTTP on a loopback port.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::serve::Server;
use crate::common::*;
use serde_json::{json, Value};

fn web(name: &str) -> Value {
    json!({"name": name, "container": {"Image": "web"}, "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}})
}

#[test]
fn serve_places_decides_and_reports_metrics() {
    let s = Scratch::new("serve");
    let store = seed(&s, &demo_inventory());
    let server = Server::start(&["--store", &store, "--engine", "native"]);

    let (status, health) = server.request("GET", "/healthz", "");
    assert_eq!(status, 200, "{health}");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["servers"], 3);
    // The store's kind, never its path (F18).
    assert_eq!(health["store"], "file");
    let dir = s.dir().display().to_string();
    assert!(!health.to_string().contains(&dir), "{health}");

    let (status, d) = server.post("/v1/place", &web("web.1"));
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["route"]["name"], "web.1");
    // The same request again is `name_in_use` (SPEC section 3); asked as a
    // retry, it gets the saved decision (F9).
    let (status, again) = server.post("/v1/place", &web("web.1"));
    assert_eq!(status, 422, "{again}");
    assert_eq!(again["error"]["kind"], "name_in_use");
    let (status, again) = server.post("/v1/place?retry=true", &web("web.1"));
    assert_eq!((status, &again), (200, &d));
    // Another request for the taken name is refused.
    let mut other = web("web.1");
    other["container"]["Image"] = json!("httpd");
    let (status, e) = server.post("/v1/place?retry=true", &other);
    assert_eq!(status, 422);
    assert_eq!(e["error"]["kind"], "name_in_use");

    // Decide only: nothing saved.
    let (status, d) = server.post("/v1/decide", &web("web.2"));
    assert_eq!(status, 200, "{d}");
    let routes = ok(&["routes", "ls", "--store", &store, "--json"], None, 0).json();
    assert!(routes["containers"].get("web.2").is_none());
    // A full decision input is decided on its own.
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("examples/least-loaded.input.json")).unwrap(),
    )
    .unwrap();
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("examples/least-loaded.output.json")).unwrap(),
    )
    .unwrap();
    let (status, d) = server.post("/v1/decide", &input);
    assert_eq!((status, d), (200, want));
    // A full input carries the cluster: past the default 1 MiB cap
    // (transport.rs shows the 413), --max-body-kib lets a larger one in.
    let mut big = input.clone();
    big["container"]["Labels"] = json!({"padding": "x".repeat(3 << 20)});
    let roomy = Server::start(&[
        "--store",
        &store,
        "--engine",
        "native",
        "--max-body-kib",
        "8192",
    ]);
    let (status, d) = roomy.post("/v1/decide", &big);
    assert_eq!(status, 200, "{}", d["error"]);
    assert_eq!(
        d["container"]["Labels"]["padding"].as_str().map(str::len),
        Some(3 << 20)
    );

    let (status, body) = server.request("POST", "/v1/place", "{not json");
    assert_eq!(status, 400);
    assert!(body.contains("invalid_body"), "{body}");

    // The CLI shares the file with the running service.
    place(&store, &web("cli.1"), 0);
    let (status, d) = server.post("/v1/place", &web("web.3"));
    assert_eq!(status, 200, "{d}");
    let (_, health) = server.request("GET", "/healthz", "");
    assert!(health.contains("\"routes\":3"), "{health}");

    let m = server.metrics();
    for want in [
        "flocker_decisions_total{endpoint=\"place\",outcome=\"decision\"} 3",
        "flocker_decisions_total{endpoint=\"place\",outcome=\"error\"} 3",
        "flocker_decision_errors_total{endpoint=\"place\",kind=\"name_in_use\"} 2",
        "flocker_decision_errors_total{endpoint=\"place\",kind=\"invalid_body\"} 1",
        // The third went to the roomy server.
        "flocker_decisions_total{endpoint=\"decide\",outcome=\"decision\"} 2",
        "flocker_decision_seconds_count{endpoint=\"place\"} 6",
        // The replayed retry wrote nothing.
        "flocker_place_saved_total 2",
        "flocker_policy_info{digest=\"native\"",
    ] {
        assert!(m.contains(want), "missing {want:?} in\n{m}");
    }
    let (status, _) = server.request("GET", "/nope", "");
    assert_eq!(status, 404);
}

#[test]
fn concurrent_clients_never_double_book_through_serve() {
    let s = Scratch::new("serve-race");
    let store = seed(
        &s,
        &json!([
            {"hostname": "r1", "address": "10.7.0.1", "port_range": [20000, 20400]},
            {"hostname": "r2", "address": "10.7.0.2", "port_range": [20000, 20400]}
        ]),
    );
    let server = Server::start(&["--store", &store, "--engine", "native"]);
    let clients: Vec<_> = (0..8)
        .map(|w| {
            let client = server.client.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let (status, d) = client.post("/v1/place", &web(&format!("r{w}.{i}")));
                    assert_eq!(status, 200, "{d}");
                }
            })
        })
        .collect();
    // A CLI writer races the service on the same file.
    for i in 0..10 {
        place(&store, &web(&format!("cli.{i}")), 0);
    }
    for c in clients {
        c.join().expect("client");
    }
    let routes = ok(&["routes", "ls", "--store", &store, "--json"], None, 0).json();
    let containers = routes["containers"].as_object().unwrap();
    assert_eq!(containers.len(), 210);
    let mut seen = std::collections::BTreeSet::new();
    for r in containers.values() {
        let port = r["ports"]["80/tcp"].as_u64().unwrap();
        assert!(
            seen.insert((r["server"].to_string(), port)),
            "port booked twice: {r}"
        );
    }
    ok(&["store", "check", "--store", &store], None, 0);
    assert!(server.metrics().contains("flocker_place_saved_total 200"));
}

fn policy_digest(metrics: &str) -> Option<String> {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("flocker_policy_info{"))?;
    let rest = line.split("digest=\"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_hot_swaps_pushed_modules_without_failing_a_decision() {
    let s = Scratch::new("swap");
    let store = seed(&s, &demo_inventory());
    let (v1, bytes) = export_embedded(&s, &store);
    let v2 = module_variant(&bytes, "v2");
    std::fs::write(s.path("v2.wasm"), &v2).unwrap();
    let watched = s.path("watched.wasm");

    let server = Server::start(&[
        "--store",
        &store,
        "--poll-ms",
        "100",
        "--policy-file",
        watched.to_str().unwrap(),
    ]);
    let first = policy_digest(&server.metrics()).expect("a digest");
    assert_ne!(first, "native");

    // At least 1,000 decisions run while other processes push v2, push v3
    // and roll back to v2; every one must succeed.
    std::fs::write(s.path("v3.wasm"), module_variant(&bytes, "v3")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (client, stop, done) = (server.client.clone(), stop.clone(), done.clone());
        std::thread::spawn(move || {
            let mut failures = 0;
            while !(stop.load(Ordering::SeqCst) && done.load(Ordering::SeqCst) >= 1000) {
                let i = done.fetch_add(1, Ordering::SeqCst);
                let (status, d) = client.post("/v1/decide", &web(&format!("load.{i}")));
                if status != 200 {
                    failures += 1;
                    eprintln!("decision {i} failed: {status} {d}");
                }
            }
            failures
        })
    };
    wait_for("the load to start", || done.load(Ordering::SeqCst) > 20);
    let mut swapped_during_load = 0;
    let mut expect = |digest: &str, what: &str| {
        wait_for(what, || {
            policy_digest(&server.metrics()).as_deref() == Some(digest)
        });
        if !load.is_finished() {
            swapped_during_load += 1;
        }
    };
    let push = |file: &str| {
        let pushed = ok(
            &[
                "policy",
                "push",
                "--store",
                &store,
                s.path(file).to_str().unwrap(),
            ],
            None,
            0,
        );
        pushed.stdout.split_whitespace().nth(1).unwrap().to_string()
    };
    let d2 = push("v2.wasm");
    expect(&d2, "v2");
    let d3 = push("v3.wasm");
    expect(&d3, "v3");
    ok(&["policy", "rollback", "--store", &store], None, 0);
    expect(&d2, "the rollback to v2");
    stop.store(true, Ordering::SeqCst);
    assert_eq!(load.join().unwrap(), 0, "decisions failed during the swaps");
    assert_eq!(
        swapped_during_load, 3,
        "the swaps did not overlap the decisions"
    );
    assert!(done.load(Ordering::SeqCst) >= 1000);
    let (status, d) = server.post("/v1/place", &web("after.1"));
    assert_eq!(status, 200, "{d}");

    // A watched file that fails validation is refused; the module keeps serving.
    std::fs::write(&watched, b"\0asm\x01\0\0\0garbage").unwrap();
    wait_for("the refusal", || {
        server
            .metrics()
            .contains("flocker_policy_swaps_total{result=\"failed\"} 1")
    });
    assert_eq!(
        policy_digest(&server.metrics()).as_deref(),
        Some(d2.as_str())
    );
    let (status, _) = server.post("/v1/place", &web("after.2"));
    assert_eq!(status, 200);

    // A module written to the watched file is pushed and swapped in.
    std::fs::write(&watched, std::fs::read(&v1).unwrap()).unwrap();
    wait_for("the watched module", || {
        policy_digest(&server.metrics()).as_deref() == Some(first.as_str())
    });
    let ls = ok(&["policy", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(ls["active"], first.as_str());
    assert_eq!(ls["history"].as_array().unwrap().len(), 3);
    assert!(server
        .metrics()
        .contains("flocker_policy_swaps_total{result=\"ok\"} 4"));
}
