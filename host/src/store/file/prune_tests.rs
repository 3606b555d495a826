//! `routes prune` and `volumes rm` on the embedded store (issue 11, F12).

use super::*;
use crate::store::{Prune, Released};
use flocker_core::fixtures::{route, server};

async fn store_with_history(dir: &tempfile::TempDir) -> FileStore {
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    store.put_servers(&[server("n1")]).await.unwrap();
    let a = route("a.1", "n1", &[20000], &["pg:/data"]);
    let b = route("b.1", "n1", &[20001], &[]);
    for r in [&a, &b] {
        assert_eq!(store.save_decision(r).await.unwrap(), Saved::Saved);
    }
    store.remove_route("a.1").await.unwrap();
    store
}

#[tokio::test]
async fn prune_deletes_removed_routes_only_and_keeps_volume_claims() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_history(&dir).await;
    let other = FileStore::open(store.path()).unwrap();
    assert!(other.cluster().await.unwrap().route("a.1").is_some());
    let recent = Prune {
        older_than: Some(std::time::Duration::from_secs(3600)),
        name_prefix: String::new(),
    };
    assert_eq!(store.prune_routes(&recent).await.unwrap(), 0);
    assert_eq!(store.prune_routes(&Prune::default()).await.unwrap(), 1);
    for handle in [&store, &other] {
        let cluster = handle.cluster().await.unwrap();
        assert!(cluster.route("a.1").is_none());
        assert!(cluster.live_route("b.1").is_some());
        assert_eq!(cluster.volume_server("pg"), Some("n1"));
    }
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn prune_reads_removal_times_and_takes_old_records_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_history(&dir).await;
    // A record removed a day ago, and one from before `removed_at` existed.
    let mut old = route("old.1", "n1", &[], &[]);
    old.state = flocker_core::REMOVED.to_string();
    let day_old =
        crate::store::prune::removed_record(&old, crate::store::prune::now_secs() - 86_400);
    let txn = store.inner.db.begin_write().unwrap();
    {
        let mut routes = txn.open_table(ROUTES).unwrap();
        routes.insert("old.1", day_old.as_str()).unwrap();
        let text = old.to_value().to_string();
        routes.insert("older.1", text.as_str()).unwrap();
    }
    txn.commit().unwrap();
    let hour = Prune {
        older_than: Some(std::time::Duration::from_secs(3600)),
        name_prefix: String::new(),
    };
    assert_eq!(store.prune_routes(&hour).await.unwrap(), 2);
    let cluster = FileStore::open(store.path())
        .unwrap()
        .cluster()
        .await
        .unwrap();
    assert!(cluster.route("old.1").is_none() && cluster.route("older.1").is_none());
    assert!(cluster.route("a.1").is_some(), "removed a moment ago");
}

#[tokio::test]
async fn a_volume_is_released_only_when_no_live_route_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_history(&dir).await;
    let c = route("c.1", "n1", &[], &["pg:/data"]);
    assert_eq!(store.save_decision(&c).await.unwrap(), Saved::Saved);
    assert_eq!(
        store.release_volume("pg").await.unwrap(),
        Released::InUse(vec!["c.1".to_string()])
    );
    store.remove_route("c.1").await.unwrap();
    assert_eq!(
        store.release_volume("pg").await.unwrap(),
        Released::Released {
            server: "n1".to_string()
        }
    );
    assert_eq!(
        store.release_volume("pg").await.unwrap(),
        Released::NotClaimed
    );
    let cluster = FileStore::open(store.path())
        .unwrap()
        .cluster()
        .await
        .unwrap();
    assert_eq!(cluster.volume_server("pg"), None);
}

/// Many removed routes, written in one bulk transaction, then pruned in
/// batches: every one is gone and decisions on the state still work.
#[tokio::test]
async fn pruning_many_removed_routes_leaves_a_small_working_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    store.put_servers(&[server("n1")]).await.unwrap();
    // More than one prune transaction (10,000 routes each).
    let n = 12_000u64;
    bulk_removed(&store, n);
    assert_eq!(
        FileStore::open(store.path())
            .unwrap()
            .cluster()
            .await
            .unwrap()
            .routes()
            .count() as u64,
        n
    );
    assert_eq!(store.prune_routes(&Prune::default()).await.unwrap(), n);
    let cluster = store.cluster().await.unwrap();
    assert_eq!(cluster.routes().count(), 0);
    let fresh = route("app.1", "n1", &[20000], &[]);
    assert_eq!(store.save_decision(&fresh).await.unwrap(), Saved::Saved);
}

/// Writes `n` removed routes `old-<i>.1` straight into the tables, as one
/// transaction; the generation moves so handles rebuild.
pub(super) fn bulk_removed(store: &FileStore, n: u64) {
    let txn = store.inner.db.begin_write().unwrap();
    {
        let mut routes = txn.open_table(ROUTES).unwrap();
        for i in 0..n {
            let name = format!("old-{i}.1");
            let r = route(&name, "n1", &[], &[]);
            let text = crate::store::prune::removed_record(&r, 1);
            routes.insert(name.as_str(), text.as_str()).unwrap();
        }
        let mut meta = txn.open_table(META).unwrap();
        let g: u64 = meta
            .get(GENERATION)
            .unwrap()
            .map_or(0, |v| v.value().parse().unwrap());
        meta.insert(GENERATION, (g + CHANGELOG_KEEP + 1).to_string().as_str())
            .unwrap();
    }
    txn.commit().unwrap();
}
