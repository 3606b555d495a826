//! The etcd store against a real etcd (Debian's `etcd`, started by the
//! harness on loopback): SPEC section 5 keys, atomic saves, the watch-fed
//! cache, its resync, route removal and policy modules.

use std::time::{Duration, Instant};

use flocker_core::{Change, Route};
use flocker_host::store::etcd::EtcdStore;
use flocker_host::store::{PolicyRecord, Saved, Store, StoreError};
use flocker_tests::etcd::{audit, config, dump, place, servers, Cut, Etcd};
use serde_json::{json, Value};

const PREFIX: &str = "/flocker";

async fn store(etcd: &Etcd) -> EtcdStore {
    EtcdStore::connect(config(etcd.endpoints(), PREFIX))
        .await
        .expect("connect to etcd")
}

fn web(name: &str) -> Value {
    json!({"name": name, "container": {"Image": "nginx", "ExposedPorts": {"80/tcp": {}}}})
}

fn route(name: &str, server: &str, port: u16, volumes: &[&str]) -> Route {
    Route::from_value(
        &json!({"name": name, "server": server, "address": "10.0.0.1",
                "ports": {"80/tcp": port}, "volumes": volumes, "state": "live"}),
        None,
        "route",
    )
    .expect("route")
}

/// Polls `f` every 20 ms for at most `limit`.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_and_save_writes_the_spec_keys() {
    let etcd = Etcd::start();
    let s = store(&etcd).await;
    s.put_servers(&servers(3)).await.unwrap();
    assert_eq!(s.cluster().await.unwrap().servers().count(), 3);

    let placed = place(&s, &web("web.1"), 8).await.unwrap();
    let d = placed.decision.expect("decision");
    let r = d.route.expect("route");
    assert_eq!(placed.retries, 0);
    assert_eq!(r.server, "n1");

    let raw = etcd.client().await;
    let keys = dump(&raw, PREFIX).await;
    let stored: Value = serde_json::from_str(&keys["/flocker/routes/containers/web.1"]).unwrap();
    assert_eq!(stored, r.to_value());
    assert_eq!(keys["/flocker/ports/n1/20000"], "web.1");
    let inv: Value = serde_json::from_str(&keys["/flocker/inventory/n2"]).unwrap();
    assert_eq!(inv["address"], "10.0.0.2");

    // The cache has our own write: the next decision goes elsewhere.
    let next = place(&s, &web("web.2"), 8).await.unwrap();
    assert_eq!(next.decision.unwrap().route.unwrap().server, "n2");
    assert!(audit(&raw, PREFIX).await.problems.is_empty());

    // The same name again is the engine's name_in_use, not a save.
    let again = place(&s, &web("web.1"), 8).await.unwrap();
    assert_eq!(again.decision.unwrap_err().kind(), "name_in_use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_conflict_on_a_taken_name_port_or_volume() {
    let etcd = Etcd::start();
    let a = store(&etcd).await;
    let b = store(&etcd).await;
    a.put_servers(&servers(2)).await.unwrap();
    assert_eq!(
        a.save_decision(&route("x.1", "n1", 20000, &["pg:/data"]))
            .await
            .unwrap(),
        Saved::Saved
    );
    // Whatever b's cache has seen by now, the transaction decides.
    let port = b
        .save_decision(&route("y.1", "n1", 20000, &[]))
        .await
        .unwrap();
    assert!(
        matches!(&port, Saved::Conflict(w) if w.contains("20000") && w.contains("x.1")),
        "{port:?}"
    );
    let name = b
        .save_decision(&route("x.1", "n2", 20001, &[]))
        .await
        .unwrap();
    assert!(
        matches!(&name, Saved::Conflict(w) if w.contains("x.1")),
        "{name:?}"
    );
    let vol = b
        .save_decision(&route("z.1", "n2", 20002, &["pg"]))
        .await
        .unwrap();
    assert!(
        matches!(&vol, Saved::Conflict(w) if w.contains("pg")),
        "{vol:?}"
    );
    // A volume held for the same server is no conflict.
    assert_eq!(
        b.save_decision(&route("w.1", "n1", 20003, &["pg"]))
            .await
            .unwrap(),
        Saved::Saved
    );
    let raw = etcd.client().await;
    let au = audit(&raw, PREFIX).await;
    assert!(au.problems.is_empty(), "{:?}", au.problems);
    assert_eq!(au.routes.len(), 2);
    assert_eq!(au.volumes["pg"], "n1");
    // Nothing of the losing saves was written.
    assert!(!au.routes.contains_key("y.1") && !au.routes.contains_key("z.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_with_volume_pins_volumes_from_and_links_read_back_from_etcd() {
    let etcd = Etcd::start();
    {
        let s = store(&etcd).await;
        s.put_servers(&servers(3)).await.unwrap();
        for req in [
            json!({"name": "auth.1", "container": {"Image": "auth", "Env": ["PASSWORD=x"], "ExposedPorts": {"80/tcp": {}}}}),
            json!({"name": "auth.2", "container": {"Image": "auth", "Env": ["PASSWORD=y"], "ExposedPorts": {"80/tcp": {}}}}),
            json!({"name": "db.1", "container": {"Image": "postgres", "HostConfig": {"Binds": ["pgdata:/var/lib/postgresql/data"]}}}),
            json!({"name": "data.1", "container": {"Image": "busybox", "Volumes": {"/data": {}}}}),
        ] {
            let p = place(&s, &req, 8).await.unwrap();
            p.decision.expect("decision");
        }
    }
    // A fresh host: everything below comes from etcd.
    let s = store(&etcd).await;
    let cluster = s.cluster().await.unwrap();
    let db_server = cluster.route("db.1").unwrap().server.clone();
    let data_server = cluster.route("data.1").unwrap().server.clone();
    assert_eq!(cluster.volume_server("pgdata"), Some(db_server.as_str()));
    drop(cluster);

    let app = place(
        &s,
        &json!({"name": "myapp.1", "container": {"Image": "myapp",
            "HostConfig": {"Links": ["auth:auth"], "VolumesFrom": ["data.1"]}}}),
        8,
    )
    .await
    .unwrap()
    .decision
    .expect("myapp decision");
    assert_eq!(app.server.hostname, data_server, "volumes_from pins");
    let env = app.links_env.join("\n");
    assert!(env.contains("AUTH_MEMBERS=auth.1,auth.2"), "{env}");
    assert!(env.contains("AUTH_ENV_PASSWORD="), "{env}");

    // db.1 removed, then placed again by yet another host: the volume pins it.
    assert!(s.remove_route("db.1").await.unwrap().is_some());
    let other = store(&etcd).await;
    assert!(other.cluster().await.unwrap().live_route("db.1").is_none());
    let again = place(
        &other,
        &json!({"name": "db.2", "container": {"Image": "postgres", "HostConfig": {"Binds": ["pgdata:/var/lib/postgresql/data"]}}}),
        8,
    )
    .await
    .unwrap()
    .decision
    .expect("db.2 decision");
    assert_eq!(again.server.hostname, db_server, "volume pin");
    let back = place(
        &other,
        &json!({"name": "db.1", "container": {"Image": "postgres", "HostConfig": {"Binds": ["/srv/x:/x"]}}}),
        8,
    )
    .await
    .unwrap()
    .decision
    .expect("db.1 again");
    assert_eq!(back.server.hostname, db_server, "previous location");
    let raw = etcd.client().await;
    let au = audit(&raw, PREFIX).await;
    assert!(au.problems.is_empty(), "{:?}", au.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hosts_writes_are_seen_through_the_watch() {
    let etcd = Etcd::start();
    let a = store(&etcd).await;
    let b = store(&etcd).await;
    let mut changes = b.changes();
    a.put_servers(&servers(2)).await.unwrap();
    let placed = place(&a, &web("web.1"), 8).await.unwrap();
    let r = placed.decision.unwrap().route.unwrap();

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.len() < 3 && Instant::now() < deadline {
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(200), changes.recv()).await {
            seen.push(c);
        }
    }
    assert!(seen.contains(&Change::SaveRoute(r.clone())), "{seen:?}");
    assert!(
        seen.iter()
            .any(|c| matches!(c, Change::UpsertServer(s) if s.hostname == "n2")),
        "{seen:?}"
    );
    assert_eq!(b.cluster().await.unwrap().route("web.1"), Some(&r));

    // b decides on what a wrote: same name is in use, the next goes elsewhere.
    let dup = place(&b, &web("web.1"), 8).await.unwrap();
    assert_eq!(dup.decision.unwrap_err().kind(), "name_in_use");
    let next = place(&b, &web("web.2"), 8).await.unwrap();
    assert_eq!(next.retries, 0);
    assert_eq!(next.decision.unwrap().route.unwrap().server, "n2");

    // Removal and server changes travel too.
    a.remove_route("web.1").await.unwrap();
    a.remove_server("n2").await.unwrap();
    assert!(eventually(Duration::from_secs(5), || b.revision() >= a.revision()).await);
    let c = b.cluster().await.unwrap();
    assert_eq!(c.route("web.1").unwrap().state, "removed");
    assert!(c.server("n2").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_resyncs_after_a_lost_connection_and_after_compaction() {
    let etcd = Etcd::start();
    let cut = Cut::start(&etcd.endpoint(0)).await;
    let a = store(&etcd).await;
    let b = EtcdStore::connect(config(vec![cut.endpoint()], PREFIX))
        .await
        .unwrap();
    a.put_servers(&servers(2)).await.unwrap();
    assert!(b.wait_for_revision(a.revision()).await);

    // 1. Lost connection: b watches again from its revision and misses nothing.
    cut.cut();
    assert!(eventually(Duration::from_secs(5), || b.down().is_some()).await);
    place(&a, &web("lost.1"), 8)
        .await
        .unwrap()
        .decision
        .unwrap();
    cut.restore();
    assert!(
        b.wait_for_revision(a.revision()).await,
        "caught up after reconnect"
    );
    assert!(b.down().is_none());
    assert!(b.cluster().await.unwrap().live_route("lost.1").is_some());
    assert_eq!(b.reloads(), 0, "a lost connection resumes the watch");

    // 2. Compaction while b is away: its revision is gone, it re-reads all.
    let mut changes = b.changes();
    cut.cut();
    assert!(eventually(Duration::from_secs(5), || b.down().is_some()).await);
    place(&a, &web("compacted.1"), 8)
        .await
        .unwrap()
        .decision
        .unwrap();
    a.remove_route("lost.1").await.unwrap();
    a.remove_server("n2").await.unwrap();
    let raw = etcd.client().await;
    let rev = raw
        .kv_client()
        .get("/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    raw.kv_client()
        .compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    cut.restore();
    assert!(b.wait_for_revision(rev).await, "resynced after compaction");
    assert_eq!(b.reloads(), 1, "a compacted revision re-reads everything");
    let c = b.cluster().await.unwrap();
    assert!(c.live_route("compacted.1").is_some());
    assert_eq!(c.route("lost.1").unwrap().state, "removed");
    assert!(c.server("n2").is_none());
    // Receivers were told the difference.
    let mut seen = Vec::new();
    while let Ok(ch) = changes.try_recv() {
        seen.push(ch);
    }
    assert!(
        seen.iter()
            .any(|ch| matches!(ch, Change::RemoveServer { hostname } if hostname == "n2")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|ch| matches!(ch, Change::SaveRoute(r) if r.name == "compacted.1")),
        "{seen:?}"
    );
    // And b's cache equals a fresh read.
    let fresh = store(&etcd).await;
    assert_eq!(
        fresh.cluster().await.unwrap().to_snapshot(),
        b.cluster().await.unwrap().to_snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_route_frees_ports_and_keeps_volumes() {
    let etcd = Etcd::start();
    let s = store(&etcd).await;
    s.put_servers(&servers(1)).await.unwrap();
    assert_eq!(
        s.save_decision(&route("db.1", "n1", 20000, &["pg:/data"]))
            .await
            .unwrap(),
        Saved::Saved
    );
    let was = s.remove_route("db.1").await.unwrap().unwrap();
    assert!(was.is_live());
    assert_eq!(s.remove_route("nope").await.unwrap(), None);
    let raw = etcd.client().await;
    let keys = dump(&raw, PREFIX).await;
    assert!(!keys.contains_key("/flocker/ports/n1/20000"));
    assert_eq!(keys["/flocker/routes/volumes/pg"], "n1");
    assert!(keys["/flocker/routes/containers/db.1"].contains(r#""state":"removed""#));
    // The port is free again, and the name can be saved again.
    assert_eq!(
        s.save_decision(&route("db.1", "n1", 20000, &["pg:/data"]))
            .await
            .unwrap(),
        Saved::Saved
    );
    assert!(audit(&raw, PREFIX).await.problems.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_binding_one_port_twice_claim_both_and_never_share_a_host_port() {
    let etcd = Etcd::start();
    let a = store(&etcd).await;
    let b = store(&etcd).await;
    a.put_servers(&servers(1)).await.unwrap();
    // b learns of the server through its watch; placing on b before that
    // would find no server at all.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.cluster().await.unwrap().server("n1").is_none() {
        assert!(
            Instant::now() < deadline,
            "b never saw n1 through its watch"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let twice = |name: String| {
        json!({"name": name, "container": {"Image": "w", "HostConfig": {"PortBindings":
            {"80/tcp": [{"HostIp": "127.0.0.1"}, {"HostIp": "::1"}]}}}})
    };
    let mut bound = std::collections::BTreeSet::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { &a } else { &b };
        let placed = place(s, &twice(format!("w.{i}")), 8).await.unwrap();
        let r = placed.decision.expect("decision").route.expect("route");
        assert_eq!(r.host_ports.len(), 2, "{r:?}");
        for p in &r.host_ports {
            assert!(bound.insert(*p), "host port {p} bound twice");
        }
    }
    let raw = etcd.client().await;
    let keys = dump(&raw, PREFIX).await;
    let claims = keys.keys().filter(|k| k.starts_with("/flocker/ports/n1/"));
    assert_eq!(claims.count(), 12);
    let au = audit(&raw, PREFIX).await;
    assert!(au.problems.is_empty(), "{:?}", au.problems);

    // The second binding is claimed like the first: a save over it loses,
    // and removing its holder frees it.
    let holder = au.ports[&("n1".to_string(), 20001)].clone();
    let over = b
        .save_decision(&route("x.1", "n1", 20001, &[]))
        .await
        .unwrap();
    assert!(
        matches!(&over, Saved::Conflict(w) if w.contains("20001") && w.contains(&holder)),
        "{over:?}"
    );
    a.remove_route(&holder).await.unwrap();
    let keys = dump(&raw, PREFIX).await;
    assert!(!keys.contains_key("/flocker/ports/n1/20000"));
    assert!(!keys.contains_key("/flocker/ports/n1/20001"));
    assert_eq!(
        b.save_decision(&route("x.1", "n1", 20001, &[]))
            .await
            .unwrap(),
        Saved::Saved
    );
    assert!(audit(&raw, PREFIX).await.problems.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_modules_are_stored_in_chunks_with_history() {
    let etcd = Etcd::start();
    let s = store(&etcd).await;
    // Another host watches for pushes.
    let other = store(&etcd).await;
    let mut watch = other.policy_watch();
    assert_eq!(s.policy_active().await.unwrap(), None);
    let big: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    let rec = |d: &str, t| PolicyRecord {
        digest: d.into(),
        pushed_at: t,
        info: r#"{"abi":1}"#.into(),
    };
    s.policy_push(&big, rec("aaa", 1)).await.unwrap();
    s.policy_push(b"small", rec("bbb", 2)).await.unwrap();
    assert_eq!(
        s.policy_active().await.unwrap(),
        Some(("bbb".to_string(), b"small".to_vec()))
    );
    s.policy_activate("aaa", Some("bbb")).await.unwrap();
    let (digest, bytes) = s.policy_active().await.unwrap().unwrap();
    assert_eq!(digest, "aaa");
    assert!(bytes == big);
    let hist: Vec<String> = s
        .policy_history()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.digest)
        .collect();
    assert_eq!(hist, ["aaa", "bbb"]);
    assert!(matches!(
        s.policy_activate("ccc", Some("aaa")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(tokio::time::timeout(
        Duration::from_secs(5),
        watch.wait_for(|d| d.as_deref() == Some("aaa"))
    )
    .await
    .is_ok());
    assert_eq!(
        other.policy_active_digest().await.unwrap().as_deref(),
        Some("aaa")
    );
    assert_eq!(
        other
            .policy_active()
            .await
            .unwrap()
            .map(|(d, b)| (d, b.len())),
        Some(("aaa".to_string(), big.len()))
    );
}

/// A rollback reads the active module, then activates an earlier one on
/// condition that the active one is still what it read: a push from
/// another host in between fails it with "active module changed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_racing_a_push_fails_and_leaves_the_push_active() {
    let etcd = Etcd::start();
    let s = store(&etcd).await;
    let other = store(&etcd).await;
    let rec = |d: &str| PolicyRecord {
        digest: d.into(),
        pushed_at: 1,
        info: r#"{"abi":1}"#.into(),
    };
    // Nothing pushed yet: the condition is "no active key".
    s.policy_push(b"one", rec("aaa")).await.unwrap();
    assert!(matches!(
        s.policy_activate("aaa", None).await,
        Err(StoreError::Changed(_))
    ));
    s.policy_push(b"two", rec("bbb")).await.unwrap();
    // The rollback's read: bbb is active, aaa is the one before.
    let read = s.policy_active_digest().await.unwrap();
    assert_eq!(read.as_deref(), Some("bbb"));
    other.policy_push(b"three", rec("ccc")).await.unwrap();
    let e = s.policy_activate("aaa", read.as_deref()).await.unwrap_err();
    assert!(matches!(e, StoreError::Changed(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("active module changed: ccc is active, not bbb"),
        "{e}"
    );
    assert_eq!(other.policy_active().await.unwrap().unwrap().0, "ccc");
    // Against what is active now it goes through.
    s.policy_activate("aaa", Some("ccc")).await.unwrap();
    assert_eq!(other.policy_active().await.unwrap().unwrap().0, "aaa");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_etcd_is_a_clear_error_fast_and_nothing_is_written() {
    // Nobody listening at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let err = EtcdStore::connect(config(vec![format!("127.0.0.1:{port}")], PREFIX))
        .await
        .err()
        .expect("no etcd there");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(err, StoreError::Unavailable { .. })
            && err.to_string().contains(&port.to_string()),
        "{err}"
    );

    // etcd goes away under a connected store.
    let mut etcd = Etcd::start();
    let s = store(&etcd).await;
    s.put_servers(&servers(2)).await.unwrap();
    place(&s, &web("web.1"), 8).await.unwrap().decision.unwrap();
    tokio::task::block_in_place(|| etcd.stop_all());
    let start = Instant::now();
    let e = s
        .save_decision(&route("web.2", "n2", 20000, &["v"]))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    let e = place(&s, &web("web.3"), 8).await.unwrap_err();
    assert!(e.contains("unavailable"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );

    tokio::task::block_in_place(|| etcd.restart_and_wait(0));
    let raw = etcd.client().await;
    let au = audit(&raw, PREFIX).await;
    assert!(au.problems.is_empty(), "{:?}", au.problems);
    assert_eq!(au.routes.keys().collect::<Vec<_>>(), ["web.1"]);
    assert!(au.volumes.is_empty());
    // And the store comes back by itself.
    assert!(
        eventually(Duration::from_secs(10), || s.down().is_none()).await,
        "{:?}",
        s.down()
    );
    place(&s, &web("web.4"), 8).await.unwrap().decision.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_larger_than_grpcs_default_4_mib_loads_and_watches() {
    let etcd = Etcd::start();
    let raw = etcd.client().await;
    let pad = "X".repeat(1000);
    let mut kv = raw.kv_client();
    for batch in 0..60 {
        let ops: Vec<etcd_client::TxnOp> = (0..100)
            .map(|i| {
                let name = format!("big.{}", batch * 100 + i);
                let r = json!({"name": name, "server": "n1", "env": [format!("PAD={pad}")],
                               "state": "removed"});
                etcd_client::TxnOp::put(
                    format!("{PREFIX}/routes/containers/{name}"),
                    r.to_string(),
                    None,
                )
            })
            .collect();
        kv.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
    }
    let s = store(&etcd).await;
    assert_eq!(s.cluster().await.unwrap().routes().count(), 6000);
    // One watch response bigger than 4 MiB: a transaction rewriting many at once.
    let ops: Vec<etcd_client::TxnOp> = (0..120)
        .map(|i| {
            let name = format!("big.{i}");
            let r = json!({"name": name, "server": "n1", "env": [format!("PAD={}", "Y".repeat(40_000))],
                           "state": "removed"});
            etcd_client::TxnOp::put(format!("{PREFIX}/routes/containers/{name}"), r.to_string(), None)
        })
        .collect();
    let mut chunks = ops.chunks(30);
    let mut last = 0;
    for c in chunks.by_ref() {
        let resp = kv
            .txn(etcd_client::Txn::new().and_then(c.to_vec()))
            .await
            .unwrap();
        last = resp.header().unwrap().revision();
    }
    assert!(s.wait_for_revision(last).await);
    assert!(s.down().is_none());
    assert!(s.cluster().await.unwrap().route("big.7").unwrap().env[0].starts_with("PAD=YYY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_etcd_is_a_clear_error_in_bounded_time_not_a_hang() {
    let mut etcd = Etcd::start();
    let s = store(&etcd).await;
    s.put_servers(&servers(1)).await.unwrap();
    tokio::task::block_in_place(|| etcd.pause(0));
    let start = Instant::now();
    let e = s
        .save_decision(&route("hung.1", "n1", 20000, &[]))
        .await
        .unwrap_err();
    let took = start.elapsed();
    tokio::task::block_in_place(|| etcd.resume(0));
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    // The request timeout is 2 s in tests; one more attempt may be running.
    // The bound only tells "answered" from "hung" (keepalive would take
    // 15 s), with room for a loaded machine.
    assert!(took < Duration::from_secs(12), "{took:?}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    // Thawed, it answers again; the save above may or may not have landed,
    // and either way the records agree.
    assert!(eventually(Duration::from_secs(10), || s.down().is_none()).await);
    let raw = etcd.client().await;
    assert!(audit(&raw, PREFIX).await.problems.is_empty());
    place(&s, &web("after.1"), 8)
        .await
        .unwrap()
        .decision
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_more_claims_than_one_transaction_allows_is_refused_whole() {
    let etcd = Etcd::start();
    let s = store(&etcd).await;
    s.put_servers(&servers(1)).await.unwrap();
    let ports: serde_json::Map<String, Value> = (0..200u16)
        .map(|i| (format!("{}/tcp", 1000 + i), json!(20000 + i)))
        .collect();
    let r = Route::from_value(
        &json!({"name": "many.1", "server": "n1", "ports": ports}),
        None,
        "r",
    )
    .unwrap();
    let e = s.save_decision(&r).await.unwrap_err();
    assert!(e.to_string().contains("--max-txn-ops"), "{e}");
    // Asking again would not help: the request is invalid, not the store down.
    assert!(matches!(e, StoreError::Unstorable { .. }), "{e:?}");
    let raw = etcd.client().await;
    assert!(dump(&raw, PREFIX)
        .await
        .keys()
        .all(|k| k.starts_with("/flocker/inventory/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_etcd_refuses_fails_at_once_with_its_reason() {
    let etcd = Etcd::start();
    let s = store(&etcd).await;
    // etcd refuses requests over 1.5 MiB.
    let big = flocker_core::Server::from_value(
        &json!({"hostname": "big", "address": "a", "tags": ["t".repeat(2_000_000)]}),
        "s",
    )
    .unwrap();
    let start = Instant::now();
    let e = s.put_servers(&[big]).await.unwrap_err();
    // Refused at once, not retried until the 2 s request timeout.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(e.to_string().contains("too large"), "{e}");
    assert_eq!(s.cluster().await.unwrap().servers().count(), 0);
}

/// The host port a place of `name` got, with no save lost on the way.
async fn placed_port(s: &EtcdStore, name: &str) -> u16 {
    let placed = place(s, &web(name), 8).await.expect("place");
    assert_eq!(placed.retries, 0, "{name}: {:?}", placed.conflicts);
    placed
        .decision
        .expect("decision")
        .route
        .expect("route")
        .host_ports[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_port_claim_is_seen_by_decisions_and_repaired_by_check() {
    let etcd = Etcd::start();
    let raw = etcd.client().await;
    let mut kv = raw.kv_client();
    store(&etcd).await.put_servers(&servers(1)).await.unwrap();
    // Claims no route explains: one there before the cache loads...
    kv.put("/flocker/ports/n1/20000", "ghost.1", None)
        .await
        .unwrap();
    let s = store(&etcd).await;
    assert_eq!(placed_port(&s, "web.1").await, 20001);
    // ...one written while it follows...
    let put = kv
        .put("/flocker/ports/n1/20002", "ghost.2", None)
        .await
        .unwrap();
    assert!(s.wait_for_revision(put.header().unwrap().revision()).await);
    assert_eq!(placed_port(&s, "web.2").await, 20003);
    // ...and the claim of a live route deleted behind the store's back.
    let del = kv
        .delete("/flocker/routes/containers/web.1", None)
        .await
        .unwrap();
    assert!(s.wait_for_revision(del.header().unwrap().revision()).await);
    assert_eq!(placed_port(&s, "web.3").await, 20004);

    let found = s.check_repair(false).await.unwrap();
    assert_eq!(found.problems.len(), 3, "{found:?}");
    assert!(
        found.problems.iter().all(|p| p.contains("no live route")),
        "{found:?}"
    );
    assert!(found.repaired.is_empty());
    let repaired = s.check_repair(true).await.unwrap();
    assert_eq!(repaired.repaired.len(), 3, "{repaired:?}");
    assert!(repaired.problems.is_empty(), "{repaired:?}");
    let keys = dump(&raw, PREFIX).await;
    assert!(!keys.contains_key("/flocker/ports/n1/20000"), "{keys:?}");
    assert_eq!(keys["/flocker/ports/n1/20003"], "web.2");
    assert!(audit(&raw, PREFIX).await.problems.is_empty());
    // The repaired ports are free again for decisions.
    assert_eq!(placed_port(&s, "web.5").await, 20000);
    assert_eq!(placed_port(&s, "web.6").await, 20001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_store_cannot_hold_is_invalid_request_on_both() {
    use flocker_host::engine::Native;
    use flocker_host::place::Placer;
    use flocker_host::store::any::AnyStore;
    use flocker_host::store::file::FileStore;
    use std::sync::Arc;

    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let file = FileStore::open(dir.path().join("s.redb")).unwrap();
    let stores = [
        Arc::new(AnyStore::Etcd(Box::new(store(&etcd).await))),
        Arc::new(AnyStore::File(file)),
    ];
    let slash = json!({"name": "db.1", "container": {"Image": "pg",
        "HostConfig": {"Binds": ["a/b:/data"]}}});
    let huge = json!({"name": "big.1", "container": {"Image": "x",
        "Env": [format!("BLOB={}", "x".repeat(1_600_000))]}});
    for s in &stores {
        s.put_servers(&servers(1)).await.unwrap();
        let placer = Placer::new(s.clone(), Arc::new(Native), 8, 1).unwrap();
        for request in [&slash, &huge] {
            let placed = placer
                .place(request.clone())
                .await
                .expect("an answer, not an error");
            assert_eq!(
                placed.decided.error_kind.as_deref(),
                Some("invalid_request"),
                "{}: {}",
                s.kind(),
                placed.decided.output
            );
            assert!(!placed.saved);
        }
        let cluster = s.cluster().await.unwrap();
        assert_eq!(cluster.routes().count(), 0, "{}", s.kind());
    }
}
