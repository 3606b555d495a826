//! Safe retries: a place asked again after its answer was lost (a timeout,
//! a 503 after the write applied, a client that went away) gets back the
//! decision that was saved, not `name_in_use`, when the caller says it is
//! a retry ([`super::Repeat::Replay`]). Without that, a live name is
//! `name_in_use` as SPEC section 3 says, even for the request that saved it.
//!
//! Each save keeps the answer beside its route ([`Store::save_answered`]),
//! keyed by a digest of the request; the answer goes when the route is
//! removed. When the engine answers `name_in_use`, the saved answer is
//! given instead if it answers this very request (same name, container and
//! image) and the name's live route is still the one it saved. Any other
//! request for a taken name still gets `name_in_use`.

use flocker_core::{Cluster, DecisionError, Route};
use serde_json::Value;

use crate::engine::Decided;
use crate::store::{Answer, Store};

/// The answer to keep beside the route `decided` saves.
pub(super) fn answer_for(request: &Value, decided: &Decided) -> Answer {
    Answer::new(request, &decided.output)
}

/// The `invalid_request` answer to a decision no store can hold
/// ([`crate::store::storable`]): the same on both stores.
pub(super) fn unstorable(path: String, reason: String) -> Decided {
    Decided::from_result(&Err(DecisionError::InvalidRequest { path, reason }))
}

/// Whether `decided` is the engine's `name_in_use`, the one answer a
/// saved one may replace.
pub(super) fn is_name_in_use(decided: &Decided) -> bool {
    decided.error_kind.as_deref() == Some("name_in_use")
}

/// The request's container name, when it has one.
pub(super) fn name_of(request: &Value) -> Option<&str> {
    request.get("name").and_then(Value::as_str)
}

/// The saved decision, if `answer` answers `request` and the name's live
/// route in `cluster` is still the one that answer saved.
pub(super) fn replayed(answer: Answer, cluster: &Cluster, request: &Value) -> Option<Decided> {
    if !answer.answers(request) {
        return None;
    }
    let name = name_of(request)?;
    let saved = Route::from_value(answer.output.get("route")?, Some(name), "route").ok()?;
    let live = cluster.live_route(name)?;
    (*live == saved).then(|| Decided {
        output: answer.output,
        route: Some(saved),
        error_kind: None,
    })
}

/// [`replayed`] over a store: the saved answer for a `name_in_use`, or
/// None to answer `name_in_use` after all. A store that cannot say (down,
/// a corrupt answer record) leaves the engine's answer standing.
pub(super) async fn replay<S: Store>(store: &S, request: &Value) -> Option<Decided> {
    let name = name_of(request)?;
    let answer = match store.answer(name).await {
        Ok(a) => a?,
        Err(e) => {
            tracing::warn!(name, error = %e, "could not read the saved answer");
            return None;
        }
    };
    let cluster = store.cluster().await.ok()?;
    replayed(answer, &cluster, request)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flocker_core::fixtures::server;
    use serde_json::json;

    use crate::engine::Native;
    use crate::place::{Placer, Repeat};
    use crate::store::any::AnyStore;
    use crate::store::file::FileStore;
    use crate::store::Store;

    fn web(image: &str) -> serde_json::Value {
        json!({"name": "web.1", "container": {"Image": image, "Env": ["A=1"]},
               "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_request_again_gets_the_saved_decision_and_another_name_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("s.redb")).unwrap();
        store.put_servers(&[server("n1")]).await.unwrap();
        let any = Arc::new(AnyStore::File(store.clone()));
        for batch in [1, 8] {
            let placer = Placer::new(any.clone(), Arc::new(Native), 8, batch).unwrap();
            let first = placer.place(web("nginx")).await.unwrap();
            assert!(
                first.saved && !first.decided.is_error(),
                "{}",
                first.decided.output
            );
            // Another place took the next port meanwhile: the retry still
            // gets the answer that was saved, not a fresh decision.
            let mut other = web("nginx");
            other["name"] = json!("web.2");
            placer.place(other).await.unwrap();
            // Not asked as a retry, the same request is `name_in_use`.
            let plain = placer.place(web("nginx")).await.unwrap();
            assert_eq!(plain.decided.error_kind.as_deref(), Some("name_in_use"));
            assert!(!plain.saved && !plain.replayed);
            let again = placer.place_as(web("nginx"), Repeat::Replay).await.unwrap();
            assert_eq!(again.decided.output, first.decided.output);
            assert!(again.replayed && !again.saved);
            let different = placer.place_as(web("httpd"), Repeat::Replay).await.unwrap();
            assert_eq!(different.decided.error_kind.as_deref(), Some("name_in_use"));
            // Removed, the name is free and its old answer is gone with it.
            for name in ["web.1", "web.2"] {
                any.remove_route(name).await.unwrap();
            }
            assert!(any.answer("web.1").await.unwrap().is_none());
            let fresh = placer.place(web("httpd")).await.unwrap();
            assert!(fresh.saved, "{}", fresh.decided.output);
            assert_ne!(fresh.decided.output, first.decided.output);
            any.remove_route("web.1").await.unwrap();
        }
    }
}
