//! `inventory add` on etcd is all-or-nothing at any size (issue 11, F17),
//! and `remove_server` says true only when it removed a record.

use std::time::Duration;

use flocker_core::Server;
use flocker_host::store::etcd::EtcdStore;
use flocker_host::store::Store;
use flocker_tests::etcd::{config, servers, Cut, Etcd};
use serde_json::json;

const PREFIX: &str = "/inventory-test";

async fn count_servers(etcd: &Etcd) -> usize {
    let fresh = EtcdStore::connect(config(etcd.endpoints(), PREFIX))
        .await
        .expect("connect");
    fresh.cluster().await.expect("cluster").server_count()
}

/// 300 servers, the connection cut as soon as the first of the add's
/// writes reaches etcd: afterwards a host sees none of them or all 300.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_cut_after_its_first_transaction_is_none_or_all() {
    let etcd = Etcd::start();
    let cut = Cut::start(&etcd.endpoint(0)).await;
    let writer = EtcdStore::connect(config(vec![cut.endpoint()], PREFIX))
        .await
        .expect("connect through the forwarder");
    let raw = etcd.client().await;
    let mut watcher = raw.watch_client();
    let mut events = watcher
        .watch(
            format!("{PREFIX}/"),
            Some(etcd_client::WatchOptions::new().with_prefix()),
        )
        .await
        .expect("watch");
    let add = tokio::spawn(async move { writer.put_servers(&servers(300)).await });
    // The first answer carrying an event (the one before may only say
    // that the watch was created).
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.message().await {
                Ok(Some(m)) if !m.events().is_empty() => return true,
                Ok(Some(_)) => continue,
                _ => return false,
            }
        }
    })
    .await
    .expect("the add wrote something");
    cut.cut();
    assert!(first);
    let outcome = add.await.expect("add task");
    let seen = count_servers(&etcd).await;
    assert!(
        seen == 0 || seen == 300,
        "{seen} of 300 servers visible after a cut add ({outcome:?})"
    );
    // A later add (or any host connecting) finishes or ignores it cleanly.
    let again = EtcdStore::connect(config(etcd.endpoints(), PREFIX))
        .await
        .unwrap();
    again.put_servers(&servers(300)).await.unwrap();
    assert_eq!(count_servers(&etcd).await, 300);
}

/// The add's second transaction refused by etcd (a record over its request
/// limit): nothing of the add is visible, where 128 servers used to be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_refused_partway_leaves_nothing() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(config(etcd.endpoints(), PREFIX))
        .await
        .unwrap();
    let mut list = servers(300);
    list[200] = Server::from_value(
        &json!({"hostname": "huge", "address": "10.9.9.9",
                "tags": ["x".repeat(2 * 1024 * 1024)]}),
        "huge server",
    )
    .expect("huge server");
    // etcd (or gRPC before it) refuses the request holding the huge record.
    assert!(store.put_servers(&list).await.is_err());
    assert_eq!(count_servers(&etcd).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_server_is_true_only_for_a_record_it_removed() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(config(etcd.endpoints(), PREFIX))
        .await
        .unwrap();
    store.put_servers(&servers(2)).await.unwrap();
    assert!(store.remove_server("n1").await.unwrap());
    assert!(!store.remove_server("n1").await.unwrap());
    assert!(!store.remove_server("never").await.unwrap());
    assert_eq!(store.cluster().await.unwrap().server_count(), 1);
}
