//! `routes prune` and `volumes rm` on etcd, and the compaction after a
//! prune (issue 11, F12).

use std::time::Duration;

use flocker_core::Route;
use flocker_host::store::etcd::EtcdStore;
use flocker_host::store::{Prune, Released, Saved, Store};
use flocker_tests::etcd::{audit, config, dump, servers, Etcd};
use serde_json::json;

const PREFIX: &str = "/prune";

fn route(name: &str, port: u16, volumes: &[&str]) -> Route {
    Route::from_value(
        &json!({"name": name, "server": "n1", "address": "10.0.0.1",
                "ports": {"80/tcp": port}, "volumes": volumes, "state": "live"}),
        None,
        "route",
    )
    .expect("route")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_removed_routes_keeps_claims_and_compacts() {
    let etcd = Etcd::start();
    let s = EtcdStore::connect(config(etcd.endpoints(), PREFIX))
        .await
        .unwrap();
    let other = EtcdStore::connect(config(etcd.endpoints(), PREFIX))
        .await
        .unwrap();
    s.put_servers(&servers(1)).await.unwrap();
    for i in 0..300u16 {
        let r = route(&format!("old{i}.1"), 20000 + i, &["pg:/data"]);
        assert_eq!(s.save_decision(&r).await.unwrap(), Saved::Saved);
        s.remove_route(&r.name).await.unwrap();
    }
    let live = route("live.1", 21000, &["pg:/data"]);
    assert_eq!(s.save_decision(&live).await.unwrap(), Saved::Saved);
    let hour = Prune {
        older_than: Some(Duration::from_secs(3600)),
        name_prefix: String::new(),
    };
    assert_eq!(s.prune_routes(&hour).await.unwrap(), 0);
    assert_eq!(s.prune_routes(&Prune::default()).await.unwrap(), 300);
    let raw = etcd.client().await;
    let keys = dump(&raw, PREFIX).await;
    let routes: Vec<&String> = keys
        .keys()
        .filter(|k| k.starts_with("/prune/routes/containers/"))
        .collect();
    assert_eq!(routes, vec!["/prune/routes/containers/live.1"]);
    assert_eq!(keys["/prune/routes/volumes/pg"], "n1");
    assert!(audit(&raw, PREFIX).await.problems.is_empty());
    // History before the prune is compacted away.
    let mut kv = raw.kv_client();
    let old = kv
        .get(
            "/prune/routes/containers/old0.1",
            Some(etcd_client::GetOptions::new().with_revision(2)),
        )
        .await;
    assert!(
        old.as_ref()
            .is_err_and(|e| e.to_string().contains("compacted")),
        "{old:?}"
    );
    // Both hosts' caches follow: the other one through its resync.
    s.save_decision(&route("after.1", 22000, &[]))
        .await
        .unwrap();
    let mut seen = 0;
    for _ in 0..250 {
        seen = other.cluster().await.unwrap().routes().count();
        if seen == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, 2);
    assert_eq!(s.cluster().await.unwrap().routes().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_is_released_only_when_no_live_route_uses_it() {
    let etcd = Etcd::start();
    let s = EtcdStore::connect(config(etcd.endpoints(), PREFIX))
        .await
        .unwrap();
    s.put_servers(&servers(1)).await.unwrap();
    let db = route("db.1", 20000, &["pg:/data"]);
    assert_eq!(s.save_decision(&db).await.unwrap(), Saved::Saved);
    assert_eq!(
        s.release_volume("pg").await.unwrap(),
        Released::InUse(vec!["db.1".to_string()])
    );
    s.remove_route("db.1").await.unwrap();
    assert_eq!(
        s.release_volume("pg").await.unwrap(),
        Released::Released {
            server: "n1".to_string()
        }
    );
    assert_eq!(s.release_volume("pg").await.unwrap(), Released::NotClaimed);
    let keys = dump(&etcd.client().await, PREFIX).await;
    assert!(!keys.contains_key("/prune/routes/volumes/pg"));
    assert_eq!(s.cluster().await.unwrap().volume_server("pg"), None);
}
