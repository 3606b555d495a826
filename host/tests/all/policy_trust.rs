//! Policy modules cannot lie (issue 10): stored bytes are checked against
//! their digest, a rollback is conditioned on the module it replaces, and
//! `flocker policy check` holds a module to the contract's hard rules. (A
//! lying module's decision refused before a save: `tests/tests/wasm/liars.rs`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flocker_host::engine::{policy_host, EngineChoice, StoredModule};
use flocker_host::policy::{digest, PolicyHost, DEFAULT_MODULE};
use flocker_host::rollout::{follow, push, rollback_target, Follow, FollowEvents};
use flocker_host::store::file::FileStore;
use flocker_host::store::{PolicyRecord, Store};

use crate::common::{export_embedded, module_variant, ok, Scratch};

/// Counts the swaps the follower tries, by outcome.
#[derive(Clone, Default)]
struct Swaps(Arc<(AtomicUsize, AtomicUsize)>);

impl FollowEvents for Swaps {
    fn swapped(&self, _host: &PolicyHost, ok: bool) {
        let counter = if ok { &self.0 .0 } else { &self.0 .1 };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_their_digest_are_refused_once_and_the_old_module_keeps_serving() {
    let s = Scratch::new("corrupt");
    let store = Arc::new(FileStore::open(s.path("store.redb")).expect("open store"));
    let host = Arc::new(policy_host(None).expect("default module"));
    let swaps = Swaps::default();
    let follower = tokio::spawn(follow(
        store.clone(),
        host.clone(),
        Follow {
            file: None,
            every: Duration::from_millis(10),
        },
        swaps.clone(),
    ));
    let good = module_variant(DEFAULT_MODULE, "good");
    let runtime = host.runtime().clone();
    push(&*store, &runtime, good.clone()).await.expect("push");
    until("the good module", || host.info().digest == digest(&good)).await;

    // Valid module bytes, stored under the digest of other bytes: without
    // the check they would swap in and, their digest never matching the
    // stored one, swap in again on every poll.
    let claimed = digest(&module_variant(DEFAULT_MODULE, "claimed"));
    let record = PolicyRecord {
        digest: claimed.clone(),
        pushed_at: 2,
        info: String::new(),
    };
    let corrupt = module_variant(DEFAULT_MODULE, "corrupt");
    store.policy_push(&corrupt, record).await.expect("store");
    until("the refusal", || swaps.0 .1.load(Ordering::SeqCst) == 1).await;
    // Forty more polls.
    tokio::time::sleep(Duration::from_millis(400)).await;
    follower.abort();
    assert_eq!(
        host.info().digest,
        digest(&good),
        "the old module keeps serving"
    );
    assert_eq!(
        swaps.0 .0.load(Ordering::SeqCst),
        1,
        "one swap: the good module"
    );
    // Each fetch of the bad bytes ends in a refusal: one refusal over forty
    // polls is one fetch.
    assert_eq!(
        swaps.0 .1.load(Ordering::SeqCst),
        1,
        "fetched and refused once"
    );

    // `engine::open`, as `flocker serve` starts: the embedded default
    // serves, and a one-off command fails naming the digest.
    let opened = flocker_host::engine::open(EngineChoice::Wasm, &*store, StoredModule::FallBack)
        .await
        .expect("falls back");
    assert_eq!(
        opened.engine.describe(),
        format!("wasm {}", digest(DEFAULT_MODULE))
    );
    let err = flocker_host::engine::open(EngineChoice::Wasm, &*store, StoredModule::Required)
        .await
        .err()
        .expect("a one-off command refuses");
    assert!(
        err.to_string().contains(&format!(
            "stored as {claimed} has digest {}",
            digest(&corrupt)
        )),
        "{err}"
    );
}

#[test]
fn a_rollback_racing_a_push_fails_with_active_module_changed() {
    let s = Scratch::new("rollback-race");
    let store = s.store();
    let record = |d: &str| PolicyRecord {
        digest: d.into(),
        pushed_at: 1,
        info: r#"{"name":"m","version":"1"}"#.into(),
    };
    tokio_block(async {
        let fs = FileStore::open(s.path("store.redb")).expect("open store");
        fs.policy_push(b"one", record("aaa")).await.expect("push");
        fs.policy_push(b"two", record("bbb")).await.expect("push");
        // The rollback's reads, as `flocker policy rollback` makes them.
        let history = fs.policy_history().await.expect("history");
        let active = fs.policy_active_digest().await.expect("active");
        let target = rollback_target(&history, active.as_deref(), None).expect("target");
        assert_eq!((target.as_str(), active.as_deref()), ("aaa", Some("bbb")));
        // Another process pushes in between.
        let other = FileStore::open(s.path("store.redb")).expect("open store");
        other
            .policy_push(b"three", record("ccc"))
            .await
            .expect("push");
        let e = fs
            .policy_activate(&target, active.as_deref())
            .await
            .expect_err("the push is not undone");
        assert!(
            e.to_string()
                .contains("active module changed: ccc is active, not bbb"),
            "{e}"
        );
        assert_eq!(
            other
                .policy_active_digest()
                .await
                .expect("active")
                .as_deref(),
            Some("ccc")
        );
    });
    // Without a race the command rolls back to the module before ccc.
    let back = ok(&["policy", "rollback", "--store", &store], None, 0);
    assert!(back.stdout.contains("active: bbb (was ccc)"), "{back:?}");
}

fn tokio_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn policy_check_passes_the_embedded_module_and_says_how_many_cases() {
    let s = Scratch::new("check");
    let (path, _) = export_embedded(&s, &s.store());
    let path = path.to_str().expect("utf8 path");
    let run = ok(&["policy", "check", "--cases", "200", path], None, 0);
    assert!(run.stdout.contains("200 cases checked ("), "{run:?}");
    assert!(
        run.stdout.contains("every answer within the contract"),
        "{run:?}"
    );
    // Not a module at all: refused before any case runs.
    let junk = s.path("junk.wasm");
    std::fs::write(&junk, b"not wasm").expect("write");
    let bad = ok(&["policy", "check", junk.to_str().expect("utf8")], None, 1);
    assert!(bad.stderr.contains("refused"), "{bad:?}");
}
