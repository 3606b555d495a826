//! `flocker place` and friends against the embedded store, through the real
//! binary: placements read back what earlier ones saved.

use crate::common::*;
use serde_json::json;

fn server_of(d: &serde_json::Value) -> String {
    d["server"]["hostname"]
        .as_str()
        .expect("a decision")
        .to_string()
}

#[test]
fn place_and_re_place_with_volume_pins_volumes_from_and_links() {
    let s = Scratch::new("place");
    let store = seed(&s, &demo_inventory());
    let web = json!({"Config": {"ExposedPorts": {"80/tcp": {}}}});

    let a1 = place(
        &store,
        &json!({"name": "auth.1", "container": {"Image": "acme/auth", "Env": ["PASSWORD=x"]}, "image": web}),
        0,
    );
    let a2 = place(
        &store,
        &json!({"name": "auth.2", "container": {"Image": "acme/auth", "Env": ["PASSWORD=x"]}, "image": web}),
        0,
    );
    assert_ne!(
        server_of(&a1),
        server_of(&a2),
        "least loaded spreads the group"
    );

    let db = place(
        &store,
        &json!({"name": "db.1", "container": {"Image": "postgres",
        "HostConfig": {"Binds": ["pgdata:/var/lib/postgresql/data"]}}}),
        0,
    );
    let db_server = server_of(&db);
    assert_eq!(db["route"]["volumes"], json!(["pgdata"]));

    let data = place(
        &store,
        &json!({"name": "data.1", "container": {"Image": "busybox",
        "HostConfig": {"Binds": ["appdata:/data"]}}}),
        0,
    );
    let app = place(
        &store,
        &json!({"name": "myapp.1", "container": {"Image": "acme/myapp",
        "HostConfig": {"Links": ["auth:auth"], "VolumesFrom": ["data.1"]}},
        "image": {"Config": {"ExposedPorts": {"8080/tcp": {}}}}}),
        0,
    );
    assert_eq!(
        server_of(&app),
        server_of(&data),
        "volumes_from pins to the source's server"
    );
    let env = env_of(&app);
    assert!(
        env.contains(&"AUTH_NAME=/myapp.1/auth".to_string()),
        "{env:?}"
    );
    assert!(
        env.contains(&"AUTH_MEMBERS=auth.1,auth.2".to_string()),
        "{env:?}"
    );
    // pid 1 of a group of two: the plain variables point at auth.2.
    let a2_addr = a2["server"]["address"].as_str().unwrap();
    assert!(
        env.contains(&format!("AUTH_PORT_80_TCP_ADDR={a2_addr}")),
        "{env:?}"
    );
    assert!(env.contains(&"AUTH_ENV_PASSWORD=x".to_string()), "{env:?}");
    assert!(app["container"]["HostConfig"].get("Links").is_none());

    // The same name again while live.
    let again = place(
        &store,
        &json!({"name": "db.1", "container": {"Image": "postgres"}}),
        1,
    );
    assert_eq!(again["error"]["kind"], "name_in_use");

    // Removed, then placed again: its named volume brings it back.
    ok(&["routes", "rm", "--store", &store, "db.1"], None, 0);
    let back = place(
        &store,
        &json!({"name": "db.1", "container": {"Image": "postgres",
        "HostConfig": {"Binds": ["pgdata:/var/lib/postgresql/data"]}}}),
        0,
    );
    assert_eq!(server_of(&back), db_server);
    // Another container using the volume is pinned there too.
    let other = place(
        &store,
        &json!({"name": "backup.1", "container": {"Image": "backup",
        "HostConfig": {"Binds": ["pgdata:/backup"]}}}),
        0,
    );
    assert_eq!(server_of(&other), db_server);

    // A volumes_from source that is not live.
    let lost = place(
        &store,
        &json!({"name": "x.1", "container": {"Image": "x",
        "HostConfig": {"VolumesFrom": ["nothing.1"]}}}),
        1,
    );
    assert_eq!(lost["error"]["kind"], "unknown_container");

    // Everything read back agrees.
    let routes = ok(&["routes", "ls", "--store", &store, "--json"], None, 0).json();
    for name in ["auth.1", "auth.2", "db.1", "data.1", "myapp.1", "backup.1"] {
        assert_eq!(
            routes["containers"][name]["state"], "live",
            "{name}: {routes}"
        );
    }
    assert_eq!(routes["volumes"]["pgdata"], db_server.as_str());
    assert_eq!(routes["volumes"]["appdata"], server_of(&data).as_str());
    let check = ok(&["store", "check", "--store", &store], None, 0);
    assert!(
        check.stdout.starts_with("consistent: 3 servers, 6 routes"),
        "{check:?}"
    );

    let table = ok(&["routes", "ls", "--store", &store], None, 0).stdout;
    assert!(table.starts_with("NAME "), "{table}");
    assert!(table.contains("myapp.1"), "{table}");
}

#[test]
fn routes_rm_frees_ports() {
    let s = Scratch::new("ports");
    let store = seed(
        &s,
        &json!([{"hostname": "tiny", "address": "10.1.0.1", "port_range": [30000, 30001]}]),
    );
    let req = |n: &str| json!({"name": n, "container": {"Image": "w"}, "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}});
    let w1 = place(&store, &req("w.1"), 0);
    let w2 = place(&store, &req("w.2"), 0);
    assert_eq!(w1["route"]["ports"]["80/tcp"], 30000);
    assert_eq!(w2["route"]["ports"]["80/tcp"], 30001);
    let full = place(&store, &req("w.3"), 1);
    assert_eq!(full["error"]["kind"], "no_eligible_server", "{full}");

    let rm = ok(&["routes", "rm", "--store", &store, "w.1"], None, 0);
    assert!(rm.stdout.contains("freed port 30000"), "{rm:?}");
    let w3 = place(&store, &req("w.3"), 0);
    assert_eq!(w3["route"]["ports"]["80/tcp"], 30000);

    let routes = ok(&["routes", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(routes["containers"]["w.1"]["state"], "removed");
    let again = ok(&["routes", "rm", "--store", &store, "w.1"], None, 0);
    assert!(again.stdout.contains("already removed"), "{again:?}");
    let missing = ok(&["routes", "rm", "--store", &store, "nope"], None, 1);
    assert!(
        missing.stderr.contains("no route named nope"),
        "{missing:?}"
    );
    ok(&["store", "check", "--store", &store], None, 0);
}

#[test]
fn inventory_add_rm_ls() {
    let s = Scratch::new("inventory");
    let store = s.store();
    // One record, from stdin.
    let one = ok(
        &["inventory", "add", "--store", &store],
        Some(r#"{"hostname": "a", "address": "10.2.0.1"}"#),
        0,
    );
    assert_eq!(one.stdout, "added 1 server: a\n");
    // An array replaces and adds.
    ok(
        &["inventory", "add", "--store", &store, "-"],
        Some(
            r#"[{"hostname": "a", "address": "10.2.0.9", "reserved": true}, {"hostname": "b", "address": "10.2.0.2"}]"#,
        ),
        0,
    );
    let ls = ok(&["inventory", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(ls[0]["address"], "10.2.0.9");
    assert_eq!(ls[0]["docker"], "tcp://10.2.0.9:2375");
    assert_eq!(ls.as_array().unwrap().len(), 2);
    let table = ok(&["inventory", "ls", "--store", &store], None, 0).stdout;
    assert!(table.contains("reserved"), "{table}");
    // A bad record names its field and changes nothing.
    let bad = ok(
        &["inventory", "add", "--store", &store],
        Some(r#"[{"hostname": "c", "address": "x"}, {"hostname": "d"}]"#),
        1,
    );
    assert!(bad.stderr.contains("[1].address"), "{bad:?}");
    assert_eq!(
        ok(&["inventory", "ls", "--store", &store, "--json"], None, 0)
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    ok(&["inventory", "rm", "--store", &store, "b"], None, 0);
    let gone = ok(&["inventory", "rm", "--store", &store, "b"], None, 1);
    assert!(gone.stderr.contains("no such server: b"), "{gone:?}");
}

#[test]
fn explain_prints_every_server_with_its_reason() {
    let s = Scratch::new("explain");
    let store = seed(&s, &demo_inventory());
    let req = json!({"name": "api.1", "container": {"Image": "api", "Env": ["VIKING_TAGS=ssd"]}});
    let out = ok(&["explain", "--store", &store], Some(&req.to_string()), 0).stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("SERVER"), "{out}");
    assert!(
        lines[1].starts_with("node1") && lines[1].contains("chosen"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("node2") && lines[2].contains("eligible, tied with node1"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("node3")
            && lines[3].contains("rejected")
            && lines[3].contains("missing tag ssd"),
        "{out}"
    );
    assert!(
        out.contains("2/3 servers eligible: 1 missing tag ssd"),
        "{out}"
    );

    // A request nothing can take: exit 1, every server rejected.
    let none = json!({"name": "api.2", "container": {"Image": "api", "Env": ["VIKING_TAGS=gpu"]}});
    let r = ok(&["explain", "--store", &store], Some(&none.to_string()), 1);
    assert_eq!(r.stdout.matches("rejected").count(), 3, "{r:?}");
    assert!(r.stdout.contains("error no_eligible_server"), "{r:?}");

    // A full decision input needs no store.
    let full = crate::common::workspace().join("examples/least-loaded.input.json");
    let r = ok(
        &[
            "explain",
            "--store",
            "file:/nonexistent/dir/x.redb",
            full.to_str().unwrap(),
        ],
        None,
        0,
    );
    assert!(r.stdout.contains("chosen"), "{r:?}");
}

#[test]
fn concurrent_places_on_one_file_never_double_book() {
    let s = Scratch::new("concurrent");
    let store = seed(
        &s,
        &json!([
            {"hostname": "n1", "address": "10.3.0.1", "port_range": [20000, 20100]},
            {"hostname": "n2", "address": "10.3.0.2", "port_range": [20000, 20100]}
        ]),
    );
    // Four processes, each placing 10 containers one after another.
    let children: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut retries = 0;
                for i in 0..10 {
                    let req = json!({"name": format!("c{w}.{i}"), "container": {"Image": "c"},
                                     "image": {"Config": {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}}}});
                    let r = ok(&["place", "--report", "--store", &store], Some(&req.to_string()), 0);
                    let line: serde_json::Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
                    assert_eq!(line["place"]["saved"], true, "{r:?}");
                    retries += line["place"]["retries"].as_u64().unwrap();
                }
                retries
            })
        })
        .collect();
    for c in children {
        c.join().expect("worker");
    }
    let routes = ok(&["routes", "ls", "--store", &store, "--json"], None, 0).json();
    let containers = routes["containers"].as_object().unwrap();
    assert_eq!(containers.len(), 40);
    let mut seen = std::collections::BTreeSet::new();
    for r in containers.values() {
        for port in r["ports"].as_object().unwrap().values() {
            assert!(
                seen.insert((r["server"].to_string(), port.to_string())),
                "port booked twice: {r}"
            );
        }
    }
    ok(&["store", "check", "--store", &store], None, 0);
}

#[test]
fn the_same_place_twice_is_name_in_use_unless_it_is_asked_as_a_retry() {
    let s = Scratch::new("place-retry");
    let store = seed(&s, &demo_inventory());
    let web = json!({"name": "web.1", "container": {"Image": "nginx"},
                     "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}});
    let first = place(&store, &web, 0);
    // SPEC section 3: a live route with the same name is `name_in_use`.
    let again = place(&store, &web, 1);
    assert_eq!(again["error"]["kind"], "name_in_use", "{again}");
    let retried = ok(
        &["place", "--retry", "--report", "--store", &store],
        Some(&web.to_string()),
        0,
    );
    assert_eq!(retried.json(), first);
    assert!(
        retried.stderr.contains(r#""replayed":true"#)
            && retried.stderr.contains(r#""saved":false"#),
        "{}",
        retried.stderr
    );
    // A different request for the name is refused, retry or not.
    let other = json!({"name": "web.1", "container": {"Image": "httpd"}});
    let refused = ok(
        &["place", "--retry", "--store", &store],
        Some(&other.to_string()),
        1,
    );
    assert_eq!(refused.json()["error"]["kind"], "name_in_use");
}
