use super::*;
use flocker_core::fixtures::{route, server};
use flocker_core::REMOVED;

#[tokio::test]
async fn saving_checks_name_ports_and_volumes_then_writes_all_of_it() {
    let dir = tempdir();
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    {
        store
            .put_servers(&[server("n1"), server("n2")])
            .await
            .unwrap();
        let a = route("a.1", "n1", &[20000, 20001], &["pg:/data", "/host:/x"]);
        assert_eq!(store.save_decision(&a).await.unwrap(), Saved::Saved);
        // Same name again while live.
        let again = route("a.1", "n2", &[], &[]);
        assert!(
            matches!(store.save_decision(&again).await.unwrap(), Saved::Conflict(m) if m.contains("live"))
        );
        // A port another name holds.
        let b = route("b.1", "n1", &[20001], &[]);
        assert!(
            matches!(store.save_decision(&b).await.unwrap(), Saved::Conflict(m) if m.contains("20001"))
        );
        // A volume held for another server.
        let c = route("c.1", "n2", &[], &["pg"]);
        assert!(
            matches!(store.save_decision(&c).await.unwrap(), Saved::Conflict(m) if m.contains("pg"))
        );
        let cluster = store.cluster().await.unwrap();
        assert_eq!(cluster.volume_server("pg"), Some("n1"));
        assert!(cluster.live_route("a.1").is_some());
        assert!(cluster.route("b.1").is_none());
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
        // Removing frees the ports, keeps the volume claim.
        let old = store.remove_route("a.1").await.unwrap().unwrap();
        assert!(old.is_live());
        assert_eq!(store.save_decision(&b).await.unwrap(), Saved::Saved);
        let cluster = store.cluster().await.unwrap();
        assert_eq!(cluster.route("a.1").unwrap().state, REMOVED);
        assert_eq!(cluster.volume_server("pg"), Some("n1"));
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
    }
}

#[tokio::test]
async fn another_handle_sees_writes_through_the_changelog_and_after_reopen() {
    let dir = tempdir();
    let path = dir.path().join("s.redb");
    let one = FileStore::open(&path).unwrap();
    let two = FileStore::open(&path).unwrap();
    {
        let mut changes = two.changes();
        one.put_servers(&[server("n1")]).await.unwrap();
        one.save_decision(&route("a.1", "n1", &[20000], &[]))
            .await
            .unwrap();
        let c2 = two.cluster().await.unwrap();
        assert!(c2.live_route("a.1").is_some());
        assert!(matches!(
            changes.recv().await.unwrap(),
            Change::UpsertServer(_)
        ));
        assert!(two.remove_server("n1").await.unwrap());
        assert!(!two.remove_server("n1").await.unwrap());
        assert!(one.cluster().await.unwrap().server("n1").is_none());
    }
    drop(one);
    drop(two);
    let three = FileStore::open(&path).unwrap();
    let c = three.cluster().await.unwrap();
    assert_eq!(c.routes().count(), 1);
    assert_eq!(c.servers().count(), 0);
}

#[tokio::test]
async fn policy_history_and_rollback() {
    let dir = tempdir();
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    {
        assert_eq!(store.policy_active().await.unwrap(), None);
        for (d, bytes) in [("aa", b"one".as_slice()), ("bb", b"two".as_slice())] {
            let rec = PolicyRecord {
                digest: d.into(),
                pushed_at: 1,
                info: "{}".into(),
            };
            store.policy_push(bytes, rec).await.unwrap();
        }
        assert_eq!(store.policy_active().await.unwrap().unwrap().0, "bb");
        assert_eq!(store.policy_history().await.unwrap().len(), 2);
        store.policy_activate("aa", Some("bb")).await.unwrap();
        assert_eq!(
            store.policy_active().await.unwrap(),
            Some(("aa".into(), b"one".to_vec()))
        );
        assert!(matches!(
            store.policy_activate("cc", Some("aa")).await,
            Err(StoreError::NotFound(_))
        ));
        // Conditioned on the active module: "bb" is no longer it.
        assert!(matches!(
            store.policy_activate("bb", Some("bb")).await,
            Err(StoreError::Changed(_))
        ));
        assert_eq!(store.policy_active().await.unwrap().unwrap().0, "aa");
    }
}

#[tokio::test]
async fn check_finds_orphan_and_missing_claims_and_bad_records() {
    let dir = tempdir();
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    {
        store.put_servers(&[server("n1")]).await.unwrap();
        let a = route("a.1", "n1", &[20000, 20001], &["pg"]);
        store.save_decision(&a).await.unwrap();
    }
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    // Break the records behind the store's back, one way at a time.
    let db = &store.inner.db;
    let txn = db.begin_write().unwrap();
    {
        let mut ports = txn.open_table(PORTS).unwrap();
        ports.remove("n1/20001").unwrap();
        ports.insert("n1/29999", "ghost.1").unwrap();
        let mut volumes = txn.open_table(VOLUMES).unwrap();
        volumes.insert("pg", "n2").unwrap();
    }
    txn.commit().unwrap();
    let problems = store.check().unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].contains("n1/20001, which is not claimed"),
        "{problems:?}"
    );
    assert!(problems[1].contains("volume pg"), "{problems:?}");
    assert!(
        problems[2].contains("n1/29999 names ghost.1"),
        "{problems:?}"
    );
    let txn = db.begin_write().unwrap();
    txn.open_table(ROUTES)
        .unwrap()
        .insert("b.1", "{not json")
        .unwrap();
    txn.commit().unwrap();
    let problems = store.check().unwrap();
    assert!(
        problems[0].contains("/routes/containers/b.1"),
        "{problems:?}"
    );
}

#[test]
fn diff_turns_one_cluster_into_the_other() {
    let mut old = Cluster::new();
    let mut new = Cluster::new();
    for c in [&mut old, &mut new] {
        c.apply_change(Change::UpsertServer(server("keep")));
        c.apply_change(Change::SaveRoute(route("same.1", "keep", &[20000], &[])));
    }
    old.apply_change(Change::UpsertServer(server("gone")));
    old.apply_change(Change::SaveRoute(route("old.1", "gone", &[20001], &["v1"])));
    old.apply_change(Change::ClaimVolume {
        volume: "v1".into(),
        server: "gone".into(),
    });
    new.apply_change(Change::UpsertServer(server("added")));
    new.apply_change(Change::SaveRoute(route(
        "new.1",
        "added",
        &[20002],
        &["v2"],
    )));
    new.apply_change(Change::ClaimVolume {
        volume: "v2".into(),
        server: "added".into(),
    });
    let mut patched = old.clone();
    for c in old.changes_to(&new) {
        patched.apply_change(c);
    }
    assert_eq!(patched.to_snapshot(), new.to_snapshot());
    assert!(new.changes_to(&new).is_empty());
}

#[tokio::test]
async fn every_host_port_of_a_route_is_claimed_checked_and_freed() {
    let dir = tempdir();
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    {
        store.put_servers(&[server("n1")]).await.unwrap();
        // 80/tcp bound twice: `ports` records the first, `host_ports` both.
        let mut a = route("a.1", "n1", &[20000], &[]);
        a.host_ports = vec![20000, 20001];
        assert_eq!(store.save_decision(&a).await.unwrap(), Saved::Saved);
        let b = route("b.1", "n1", &[20001], &[]);
        match store.save_decision(&b).await.unwrap() {
            Saved::Conflict(why) => assert!(why.contains("port 20001"), "{why}"),
            Saved::Saved => panic!("b.1 saved over a.1's second binding"),
        }
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
        store.remove_route("a.1").await.unwrap();
        assert_eq!(store.save_decision(&b).await.unwrap(), Saved::Saved);
    }
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[cfg(unix)]
#[test]
fn a_new_store_file_is_private_and_an_existing_one_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let fresh = dir.path().join("new.redb");
    let store = FileStore::open(&fresh).unwrap();
    drop(store);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o600);
    // Reopening does not touch it; a mode the owner chose stays.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = FileStore::open(&fresh).unwrap();
    drop(store);
    assert_eq!(mode(&fresh), 0o640);
}

#[tokio::test]
async fn an_orphan_port_claim_is_seen_by_decisions_and_repaired() {
    let dir = tempdir();
    let path = dir.path().join("s.redb");
    let store = FileStore::open(&path).unwrap();
    store.put_servers(&[server("n1")]).await.unwrap();
    let txn = store.inner.db.begin_write().unwrap();
    {
        let mut ports = txn.open_table(PORTS).unwrap();
        ports.insert("n1/20000", "ghost.1").unwrap();
        ports.insert("n1/20001", "web.2").unwrap();
    }
    txn.commit().unwrap();
    let web = |name: &str| serde_json::json!({"name": name, "container": {"Image": "nginx", "ExposedPorts": {"80/tcp": {}}}});
    let store = FileStore::open(&path).unwrap();
    let cluster = store.cluster().await.unwrap();
    let d = cluster.decide(&web("web.1")).unwrap();
    assert_eq!(d.route.as_ref().unwrap().host_ports, vec![20002]);
    // A save over a claim that names it already takes the claim over.
    let adopt = route("web.2", "n1", &[20001], &[]);
    assert_eq!(store.save_decision(&adopt).await.unwrap(), Saved::Saved);
    assert!(!store.cluster().await.unwrap().is_claimed("n1", 20001));
    let found = store.check_repair(false).unwrap();
    assert_eq!(found.problems.len(), 1, "{found:?}");
    assert!(
        found.problems[0].contains("n1/20000 names ghost.1"),
        "{found:?}"
    );
    let repaired = store.check_repair(true).unwrap();
    assert_eq!(repaired.repaired.len(), 1, "{repaired:?}");
    assert!(repaired.problems.is_empty(), "{repaired:?}");
    let cluster = store.cluster().await.unwrap();
    assert!(!cluster.is_claimed("n1", 20000));
    let d = cluster.decide(&web("web.1")).unwrap();
    assert_eq!(d.route.as_ref().unwrap().host_ports, vec![20000]);
    // Another handle follows the repair through the changelog.
    let other = FileStore::open(&path).unwrap();
    assert_eq!(other.cluster().await.unwrap().claimed_ports().count(), 0);
}
