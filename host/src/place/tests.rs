use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::Arc;

use flocker_core::fixtures::server;
use flocker_core::{Change, Cluster, Route, Server};
use serde_json::json;
use tokio::sync::broadcast;

use super::*;
use crate::engine::Native;
use crate::store::file::FileStore;
use crate::store::PolicyRecord;

/// A file store where another writer gets in first `races` times: just
/// before each of those saves, a rival route takes the decided route's
/// host ports.
struct Raced {
    inner: FileStore,
    races: AtomicU32,
}

impl Store for Raced {
    async fn cluster(&self) -> Result<Arc<Cluster>, StoreError> {
        self.inner.cluster().await
    }
    fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes()
    }
    async fn put_servers(&self, servers: &[Server]) -> Result<(), StoreError> {
        self.inner.put_servers(servers).await
    }
    async fn remove_server(&self, hostname: &str) -> Result<bool, StoreError> {
        self.inner.remove_server(hostname).await
    }
    async fn answer(&self, name: &str) -> Result<Option<crate::store::Answer>, StoreError> {
        self.inner.answer(name).await
    }
    async fn save_answered(
        &self,
        route: &Route,
        answer: Option<&crate::store::Answer>,
    ) -> Result<Saved, StoreError> {
        let left = self.races.load(Ordering::SeqCst);
        if left > 0 {
            self.races.store(left - 1, Ordering::SeqCst);
            let mut rival = route.clone();
            rival.name = format!("rival.{left}");
            rival.service = "rival".into();
            assert_eq!(self.inner.save_decision(&rival).await?, Saved::Saved);
        }
        self.inner.save_answered(route, answer).await
    }
    async fn remove_route(&self, name: &str) -> Result<Option<Route>, StoreError> {
        self.inner.remove_route(name).await
    }
    async fn policy_push(&self, module: &[u8], record: PolicyRecord) -> Result<(), StoreError> {
        self.inner.policy_push(module, record).await
    }
    async fn policy_history(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        self.inner.policy_history().await
    }
    async fn policy_active(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.inner.policy_active().await
    }
    async fn policy_activate(
        &self,
        digest: &str,
        expected: Option<&str>,
    ) -> Result<(), StoreError> {
        self.inner.policy_activate(digest, expected).await
    }
    async fn prune_routes(&self, prune: &crate::store::Prune) -> Result<u64, StoreError> {
        self.inner.prune_routes(prune).await
    }
    async fn release_volume(&self, volume: &str) -> Result<crate::store::Released, StoreError> {
        self.inner.release_volume(volume).await
    }
}

fn raced(races: u32) -> (Raced, tempfile::TempDir) {
    let dir = tempdir();
    let inner = FileStore::open(dir.path().join("s.redb")).unwrap();
    (
        Raced {
            inner,
            races: AtomicU32::new(races),
        },
        dir,
    )
}

fn request() -> Value {
    json!({"name": "web.1", "container": {"Image": "w"},
           "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}})
}

#[tokio::test]
async fn a_lost_save_is_re_decided_on_fresh_state() {
    let (store, dir) = raced(2);
    {
        let s = Server::from_value(&json!({"hostname": "n", "address": "10.0.0.1"}), "s").unwrap();
        store.put_servers(&[s]).await.unwrap();
        let placed = place(&store, &Arc::new(Native), &request(), 8, Repeat::NameInUse)
            .await
            .unwrap();
        assert!(placed.saved);
        assert_eq!(placed.retries, 2);
        assert_eq!(placed.conflicts.len(), 2);
        assert!(
            placed.conflicts[0].contains("port 20000 on n is held by rival.2"),
            "{:?}",
            placed.conflicts
        );
        // The third decision saw both rivals and took the next free port.
        let route = placed.decided.route.unwrap();
        assert_eq!(route.ports[0].1, 20002);
        assert!(store.inner.check().unwrap().is_empty());
    }
    drop(dir);
}

#[tokio::test]
async fn losing_every_retry_is_a_clear_error_that_wrote_nothing() {
    let (store, dir) = raced(100);
    {
        let s = Server::from_value(&json!({"hostname": "n", "address": "10.0.0.1"}), "s").unwrap();
        store.put_servers(&[s]).await.unwrap();
        let e = place(&store, &Arc::new(Native), &request(), 3, Repeat::NameInUse)
            .await
            .unwrap_err();
        match &e {
            PlaceError::Contention { retries, conflicts } => {
                assert_eq!(*retries, 3);
                assert_eq!(conflicts.len(), 4);
            }
            other => panic!("{other}"),
        }
        assert_eq!(e.kind(), "save_conflict");
        assert!(
            e.to_string().starts_with("could not save after 3 retries"),
            "{e}"
        );
        let cluster = store.cluster().await.unwrap();
        assert!(cluster.route("web.1").is_none());
        assert_eq!(cluster.routes().count(), 4, "only the rivals");
    }
    drop(dir);
}

#[tokio::test]
async fn errors_and_unnamed_containers_save_nothing() {
    let (store, dir) = raced(0);
    {
        let e = place(&store, &Arc::new(Native), &request(), 8, Repeat::NameInUse)
            .await
            .unwrap();
        assert!(!e.saved);
        assert_eq!(e.decided.error_kind.as_deref(), Some("no_eligible_server"));
        let s = Server::from_value(&json!({"hostname": "n", "address": "10.0.0.1"}), "s").unwrap();
        store.put_servers(&[s]).await.unwrap();
        let unnamed = place(
            &store,
            &Arc::new(Native),
            &json!({"container": {"Image": "w"}}),
            8,
            Repeat::NameInUse,
        )
        .await
        .unwrap();
        assert!(!unnamed.saved && !unnamed.decided.is_error());
        assert_eq!(store.cluster().await.unwrap().routes().count(), 0);
    }
    drop(dir);
}

/// A batching placer over a handle of the embedded store.
fn placer(store: &FileStore, retries: u32, batch: usize) -> Placer {
    let store = Arc::new(crate::store::any::AnyStore::File(store.clone()));
    Placer::new(store, Arc::new(Native), retries, batch).unwrap()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_placer_batches_concurrent_places_as_if_one_after_another() {
    let dir = tempdir();
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    {
        store
            .put_servers(&[server("n1"), server("n2")])
            .await
            .unwrap();
        let placer = placer(&store, 8, 64);
        let req = |n: String| {
            json!({"name": n, "container": {"Image": "w"},
                   "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}})
        };
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (p, r) = (placer.clone(), req(format!("w.{i}")));
                tokio::spawn(async move { p.place(r).await })
            })
            .collect();
        // The same name twice in flight with different containers: one is
        // placed, the other is decided after it and refused.
        let twins: Vec<_> = (0..2)
            .map(|i| {
                let mut r = req("twin.1".into());
                r["container"]["Image"] = json!(format!("w{i}"));
                let p = placer.clone();
                tokio::spawn(async move { p.place(r).await })
            })
            .collect();
        for t in tasks {
            let placed = t.await.unwrap().unwrap();
            assert!(placed.saved, "{}", placed.decided.output);
            assert_eq!(placed.retries, 0);
        }
        let mut kinds: Vec<Option<String>> = Vec::new();
        for t in twins {
            kinds.push(t.await.unwrap().unwrap().decided.error_kind);
        }
        kinds.sort();
        assert_eq!(kinds, vec![None, Some("name_in_use".to_string())]);
        let cluster = store.cluster().await.unwrap();
        assert_eq!(cluster.routes().count(), 41);
        let mut ports = std::collections::BTreeSet::new();
        for r in cluster.routes() {
            assert!(ports.insert((r.server.clone(), r.ports[0].1)), "{r:?}");
        }
        // Least loaded, as one after another: 21 and 20 (or 20 and 21).
        let on_n1 = cluster.routes().filter(|r| r.server == "n1").count();
        assert!(on_n1 == 20 || on_n1 == 21, "{on_n1}");
    }
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    // Another handle (another process) reads the same records back.
    let other = FileStore::open(dir.path().join("s.redb")).unwrap();
    let c = other.cluster().await.unwrap();
    assert_eq!(c.routes().count(), 41);
}

#[tokio::test]
async fn placers_of_two_handles_catch_up_under_the_write_lock_and_never_conflict() {
    let dir = tempdir();
    let one = FileStore::open(dir.path().join("s.redb")).unwrap();
    let two = FileStore::open(dir.path().join("s.redb")).unwrap();
    {
        one.put_servers(&[server("n1")]).await.unwrap();
        let p1 = placer(&one, 0, 8);
        let p2 = placer(&two, 0, 8);
        for i in 0..10 {
            let placer = if i % 2 == 0 { &p1 } else { &p2 };
            let req = json!({"name": format!("w.{i}"), "container": {"Image": "w"},
                             "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}});
            // max_retries 0: a lost save would be an error.
            let placed = placer.place(req).await.unwrap();
            assert!(placed.saved);
            let port = placed.decided.route.unwrap().ports[0].1;
            assert_eq!(port, 20000 + i);
        }
    }
    assert_eq!(one.check().unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn places_binding_one_port_twice_never_share_a_host_port() {
    let dir = tempdir();
    let one = FileStore::open(dir.path().join("s.redb")).unwrap();
    let two = FileStore::open(dir.path().join("s.redb")).unwrap();
    let mut bound = std::collections::BTreeSet::new();
    {
        one.put_servers(&[server("n1")]).await.unwrap();
        let p1 = placer(&one, 0, 8);
        let p2 = placer(&two, 0, 8);
        for i in 0..6 {
            let placer = if i % 2 == 0 { &p1 } else { &p2 };
            let req = json!({"name": format!("w.{i}"), "container": {"Image": "w",
                "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}, {"HostIp": "::1"}]}}}});
            let placed = placer.place(req).await.unwrap();
            assert!(placed.saved, "{}", placed.decided.output);
            let route = placed.decided.route.unwrap();
            assert_eq!(route.host_ports.len(), 2, "{route:?}");
            for p in route.host_ports {
                assert!(bound.insert(p), "host port {p} bound twice");
            }
        }
    }
    assert_eq!(one.check().unwrap(), Vec::<String>::new());
    assert_eq!(bound.len(), 12);
}

#[test]
fn clients_are_not_told_paths_endpoints_or_other_names() {
    let store = PlaceError::Store(StoreError::unavailable(
        "etcd at 127.0.0.1:23790 (user flocker): connection refused",
    ));
    let lost = PlaceError::Contention {
        retries: 8,
        conflicts: vec!["port 30001 on s1 is held by someone-elses.1".into()],
    };
    for (e, secret) in [(&store, "127.0.0.1:23790"), (&lost, "someone-elses.1")] {
        assert!(e.to_string().contains(secret), "the log keeps the cause");
        assert!(
            !e.public_message().contains(secret),
            "{}",
            e.public_message()
        );
    }
    assert!(lost.public_message().contains("8 retries"));
}

/// An engine that refuses its first `refusals` decisions as contract
/// breaches (what the policy guard answers); with `path`, the first
/// refusal is made while another handle of that store adds a server, as a
/// module's change feed can run ahead of the cluster it was given.
struct Refusing {
    path: std::sync::Mutex<Option<std::path::PathBuf>>,
    refusals: AtomicU32,
}

impl Engine for Refusing {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, EngineError> {
        if self.refusals.load(Ordering::SeqCst) == 0 {
            return Native.decide(cluster, request);
        }
        self.refusals.fetch_sub(1, Ordering::SeqCst);
        let path = self.path.lock().unwrap().take();
        if let Some(path) = path {
            std::thread::spawn(move || {
                let other = FileStore::open(path).unwrap();
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(other.put_servers(&[server("n2")]))
                    .unwrap();
            })
            .join()
            .unwrap();
        }
        Err(EngineError::Policy(PolicyError::Contract(
            "chose server \"n2\", which is not in the inventory".into(),
        )))
    }

    fn describe(&self) -> String {
        "refusing".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_decision_is_re_decided_only_when_the_cluster_changed_meanwhile() {
    let dir = tempdir();
    let path = dir.path().join("s.redb");
    let store = FileStore::open(&path).unwrap();
    store.put_servers(&[server("n1")]).await.unwrap();
    let changed = Refusing {
        path: std::sync::Mutex::new(Some(path)),
        refusals: AtomicU32::new(1),
    };
    let placed = place(&store, &Arc::new(changed), &request(), 8, Repeat::NameInUse)
        .await
        .unwrap();
    assert!(placed.saved);
    assert_eq!(placed.retries, 1);
    assert!(
        placed.conflicts[0].contains("decided on a cluster that changed"),
        "{:?}",
        placed.conflicts
    );
    let same = Refusing {
        path: std::sync::Mutex::new(None),
        refusals: AtomicU32::new(1),
    };
    let mut other = request();
    other["name"] = json!("web.2");
    let e = place(&store, &Arc::new(same), &other, 8, Repeat::NameInUse)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "policy_failed");
    assert!(e.to_string().contains("not in the inventory"), "{e}");
    assert!(store.cluster().await.unwrap().route("web.2").is_none());
}
