//! The file store on a bad day (issue 11, F13): a bad record, a newer
//! binary's changelog entry, a writer that never lets go.

use super::*;
use flocker_core::fixtures::{route, server};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn one_unreadable_route_record_is_an_error_for_its_name_only() {
    let dir = tempdir();
    let path = dir.path().join("s.redb");
    {
        let store = FileStore::open(&path).unwrap();
        store.put_servers(&[server("n1")]).await.unwrap();
        let txn = store.inner.db.begin_write().unwrap();
        txn.open_table(ROUTES)
            .unwrap()
            .insert("bad.1", "{not json")
            .unwrap();
        txn.commit().unwrap();
    }
    // A fresh handle rebuilds from the tables, past the bad record.
    let store = FileStore::open(&path).unwrap();
    let cluster = store.cluster().await.unwrap();
    assert_eq!(cluster.server_count(), 1);
    assert!(cluster.route("bad.1").is_none());
    let ok = route("good.1", "n1", &[20000], &[]);
    assert_eq!(store.save_decision(&ok).await.unwrap(), Saved::Saved);
    // The bad name itself is refused, not overwritten.
    let again = route("bad.1", "n1", &[20001], &[]);
    assert!(matches!(
        store.save_decision(&again).await,
        Err(StoreError::Corrupt { key, .. }) if key.contains("bad.1")
    ));
    let problems = store.check().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("/routes/containers/bad.1")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_change_this_binary_cannot_read_rebuilds_from_the_tables() {
    let dir = tempdir();
    let path = dir.path().join("s.redb");
    let store = FileStore::open(&path).unwrap();
    store.put_servers(&[server("n1")]).await.unwrap();
    let other = FileStore::open(&path).unwrap();
    assert_eq!(other.cluster().await.unwrap().server_count(), 1);
    // A newer binary wrote a server and a change of an op unknown here.
    let txn = store.inner.db.begin_write().unwrap();
    {
        let text = server("n2").to_value().to_string();
        txn.open_table(INVENTORY)
            .unwrap()
            .insert("n2", text.as_str())
            .unwrap();
        let mut meta = txn.open_table(META).unwrap();
        let g: u64 = meta
            .get(GENERATION)
            .unwrap()
            .unwrap()
            .value()
            .parse()
            .unwrap();
        meta.insert(GENERATION, (g + 1).to_string().as_str())
            .unwrap();
        txn.open_table(CHANGELOG)
            .unwrap()
            .insert(g + 1, r#"{"op": "frobnicate_server", "hostname": "n2"}"#)
            .unwrap();
    }
    txn.commit().unwrap();
    let cluster = other.cluster().await.unwrap();
    assert!(cluster.server("n2").is_some());
    let problems = other.check().unwrap();
    assert!(
        problems.iter().any(|p| p.contains("frobnicate_server")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_write_lock_held_elsewhere_fails_a_write_with_a_clear_error() {
    let dir = tempdir();
    let path = dir.path().join("s.redb");
    let store = FileStore::open(&path).unwrap();
    // Another writer's transaction, never committed while the write waits.
    let held = store.inner.db.begin_write().unwrap();
    let err = store.put_servers(&[server("n1")]).await.unwrap_err();
    assert!(err.to_string().contains("write lock"), "{err}");
    drop(held);
    store.put_servers(&[server("n1")]).await.unwrap();
    assert_eq!(store.cluster().await.unwrap().server_count(), 1);
}
