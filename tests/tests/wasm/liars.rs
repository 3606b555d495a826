//! Modules that lie. A module's decision is checked before it is saved: a
//! module that routes another container, or to a server not in the
//! inventory, is refused (`policy_failed`, saying which check failed) and
//! nothing is saved. And `policy check` finds such a module before a push.

use std::sync::Arc;

use flocker_host::engine::{self, EngineChoice, StoredModule};
use flocker_host::place::{PlaceError, Placer};
use flocker_host::policy::{self, digest, Limits, Runtime};
use flocker_host::rollout::{self, check, PushError};
use flocker_host::store::any::AnyStore;
use flocker_host::store::file::FileStore;
use flocker_host::store::{PolicyRecord, Store};
use serde_json::json;

use crate::modules::{fixed_answer, lying_decision};

/// A file store with two servers whose active module is `module`, stored
/// through the store's own API as a host without the push-time check (or
/// a direct write) would.
async fn store_with(dir: &tempfile::TempDir, module: &[u8]) -> Arc<AnyStore> {
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    let servers = [
        flocker_core::fixtures::server("node1"),
        flocker_core::fixtures::server("node2"),
    ];
    store.put_servers(&servers).await.unwrap();
    let record = PolicyRecord {
        digest: digest(module),
        pushed_at: 1,
        info: r#"{"name":"test","version":"0.0.1","abi":1}"#.into(),
    };
    store.policy_push(module, record).await.unwrap();
    Arc::new(AnyStore::File(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_routing_another_container_or_to_a_ghost_server_saves_nothing() {
    let cases = [
        (
            lying_decision("node1", "other.1"),
            "the route names container \"other.1\", not the request's \"web.1\"",
        ),
        (
            lying_decision("ghost", "web.1"),
            "chose server \"ghost\", which is not in the inventory",
        ),
    ];
    for (decision, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(&dir, &fixed_answer(&decision)).await;
        let opened = engine::open(EngineChoice::Wasm, &*store, StoredModule::Required)
            .await
            .expect("the module loads: it passes validation");
        let placer = Placer::new(store.clone(), opened.engine, 2, 1).unwrap();
        let err = placer
            .place(json!({"name": "web.1", "container": {"Image": "nginx"}}))
            .await
            .expect_err("a lie is refused");
        assert!(matches!(err, PlaceError::Engine(_)), "{err:?}");
        assert_eq!(err.kind(), "policy_failed");
        assert!(err.to_string().contains(says), "{says}: {err}");
        assert_eq!(store.cluster().await.unwrap().routes().count(), 0);
    }
}

/// `flocker policy check` (and every push) finds the lie on generated
/// inputs and shrinks it to a small counterexample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_finds_a_lying_module_with_a_shrunk_counterexample_and_push_refuses_it() {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let liar = fixed_answer(&lying_decision("node00", "other.1"));
    let (policy, _) = policy::load_validated(&runtime, &liar).expect("it passes validation");
    let e = check::check(&policy, 100).expect_err("the check finds the lie");
    // Shrunk: no more servers than the one it names, no routes left over.
    let servers = e.input["inventory"].as_array().map_or(0, Vec::len);
    let routes = e.input["routes"]["containers"]
        .as_object()
        .map_or(0, |m| m.len());
    assert!(servers <= 1 && routes == 0, "not shrunk: {}", e.input);
    assert!(e.output.contains("other.1"), "{e}");
    let refused = rollout::validate(&runtime, liar)
        .await
        .err()
        .expect("push refuses it");
    assert!(matches!(refused, PushError::Refused(_)), "{refused:?}");
    assert!(
        refused.to_string().contains("breaks the contract"),
        "{refused}"
    );
}
