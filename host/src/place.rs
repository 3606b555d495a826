//! `place`: decide against a store's current state and save the decision
//! atomically, re-deciding on fresh state when another writer got there first.
//!
//! 1. Take the store's cached [`Cluster`] (no re-read of the world).
//! 2. Decide the request `{name, container, image}` with the engine.
//! 3. An engine error, or an unnamed container (no route), is the answer:
//!    nothing is saved.
//! 4. Save the route with [`Store::save_decision`], one transaction that
//!    checks the name, the host ports and the volumes were not taken.
//! 5. On [`Saved::Conflict`], count a retry and go back to 1; the store's
//!    cache has the other writer's records by then (the file store reads the
//!    changelog, etcd's cache follows its watch). After `max_retries`
//!    retries the place fails with [`PlaceError::Contention`], which names
//!    every conflict it met; nothing of it was written.
//!
//! Retries are reported in [`Placed::retries`] and [`Placed::conflicts`];
//! `flocker place --report` prints them on stderr, `flocker serve` counts
//! them in `flocker_place_retries_total`.
//!
//! This loop is how places run on etcd. On the embedded store, `flocker
//! place`, `flocker serve` and `flocker bench` use
//! [`crate::store::file::Placer`] instead, which runs the same steps inside
//! the file's write transaction (so a save cannot lose) and batches
//! concurrent places into one transaction; it answers the same [`Placed`].

use std::sync::Arc;

use flocker_core::{Cluster, Decision, DecisionError, Route};
use serde_json::Value;

use crate::store::{Saved, Store, StoreError};

/// Retries after a conflict before a place gives up.
pub const DEFAULT_MAX_RETRIES: u32 = 8;

/// One decision, in the shape both engines give: the SPEC output and the
/// route to save.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The SPEC section 4 output: a decision or `{"error": {...}}`.
    pub output: Value,
    /// The route a successful, named decision saves.
    pub route: Option<Route>,
    /// The `error.kind` when the output is an error.
    pub error_kind: Option<String>,
}

impl Decided {
    /// From the native engine's typed result.
    pub fn from_result(result: &Result<Decision, DecisionError>) -> Decided {
        match result {
            Ok(d) => Decided {
                output: d.to_value(),
                route: d.route.clone(),
                error_kind: None,
            },
            Err(e) => Decided {
                output: e.to_value(),
                route: None,
                error_kind: Some(e.kind().to_string()),
            },
        }
    }

    /// From SPEC output JSON text (what the WASM module returns).
    pub fn from_output(text: &str) -> Result<Decided, PlaceError> {
        let output: Value = serde_json::from_str(text)
            .map_err(|e| PlaceError::Engine(format!("the policy returned invalid JSON: {e}")))?;
        if let Some(err) = output.get("error") {
            let kind = err
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("invalid_request")
                .to_string();
            return Ok(Decided {
                output,
                route: None,
                error_kind: Some(kind),
            });
        }
        let route = match output.get("route") {
            None | Some(Value::Null) => None,
            Some(r) => Some(Route::from_value(r, None, "route").map_err(|e| {
                PlaceError::Engine(format!("the policy returned a bad route: {e}"))
            })?),
        };
        if output.get("server").is_none() {
            return Err(PlaceError::Engine(
                "the policy returned neither a decision nor an error".into(),
            ));
        }
        Ok(Decided {
            output,
            route,
            error_kind: None,
        })
    }

    pub fn is_error(&self) -> bool {
        self.error_kind.is_some()
    }
}

/// Decides requests against a cluster.
pub trait Engine: Send + Sync {
    /// Decides `request` (`{name, container, image}`) against `cluster`.
    /// `Err` is a failure of the engine itself, not a decision error.
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, PlaceError>;

    /// What runs the decisions: `native`, or the module digest.
    fn describe(&self) -> String;
}

/// The engine compiled into the binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

impl Engine for Native {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, PlaceError> {
        Ok(Decided::from_result(&cluster.decide(request)))
    }

    fn describe(&self) -> String {
        "native".into()
    }
}

impl<E: Engine + ?Sized> Engine for Arc<E> {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, PlaceError> {
        (**self).decide(cluster, request)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Why a place could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy module failed (trap, deadline, memory cap, bad output).
    #[error("policy engine failed: {0}")]
    Engine(String),
    /// Every attempt lost to another writer.
    #[error("could not save after {retries} retries, each lost to another writer: {}", .conflicts.join("; "))]
    Contention {
        retries: u32,
        conflicts: Vec<String>,
    },
}

impl PlaceError {
    /// A short machine-readable kind for logs, metrics and HTTP answers.
    pub fn kind(&self) -> &'static str {
        match self {
            PlaceError::Store(_) => "store_unavailable",
            PlaceError::Engine(_) => "policy_failed",
            PlaceError::Contention { .. } => "save_conflict",
        }
    }
}

/// What a place answered.
#[derive(Debug, Clone)]
pub struct Placed {
    pub decided: Decided,
    /// Whether a route was written (false for errors and unnamed containers).
    pub saved: bool,
    /// How many times a save lost to another writer and the place re-decided.
    pub retries: u32,
    /// What each lost save found taken.
    pub conflicts: Vec<String>,
}

/// Decides `request` against `store` and saves it; see the module doc.
pub async fn place<S: Store, E: Engine + ?Sized>(
    store: &S,
    engine: &E,
    request: &Value,
    max_retries: u32,
) -> Result<Placed, PlaceError> {
    let mut conflicts = Vec::new();
    loop {
        let decided = {
            let cluster = store.cluster().await?;
            engine.decide(&cluster, request)?
            // The Arc is dropped here, before the save, so the store can
            // update its cache in place.
        };
        let Some(route) = decided.route.as_ref().filter(|_| !decided.is_error()) else {
            return Ok(Placed {
                decided,
                saved: false,
                retries: conflicts.len() as u32,
                conflicts,
            });
        };
        match store.save_decision(route).await? {
            Saved::Saved => {
                return Ok(Placed {
                    decided,
                    saved: true,
                    retries: conflicts.len() as u32,
                    conflicts,
                })
            }
            Saved::Conflict(why) => {
                conflicts.push(why);
                if conflicts.len() as u32 > max_retries {
                    return Err(PlaceError::Contention {
                        retries: max_retries,
                        conflicts,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use flocker_core::{Change, Server};
    use serde_json::json;
    use tokio::sync::broadcast;

    use super::*;
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
        async fn save_decision(&self, route: &Route) -> Result<Saved, StoreError> {
            let left = self.races.load(Ordering::SeqCst);
            if left > 0 {
                self.races.store(left - 1, Ordering::SeqCst);
                let mut rival = route.clone();
                rival.name = format!("rival.{left}");
                rival.service = "rival".into();
                assert_eq!(self.inner.save_decision(&rival).await?, Saved::Saved);
            }
            self.inner.save_decision(route).await
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
        async fn policy_activate(&self, digest: &str) -> Result<(), StoreError> {
            self.inner.policy_activate(digest).await
        }
    }

    fn raced(races: u32) -> (Raced, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("flocker-place-test-{}-{races}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let inner = FileStore::open(dir.join("s.redb")).unwrap();
        (
            Raced {
                inner,
                races: AtomicU32::new(races),
            },
            dir,
        )
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn request() -> Value {
        json!({"name": "web.1", "container": {"Image": "w"},
               "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}})
    }

    #[test]
    fn a_lost_save_is_re_decided_on_fresh_state() {
        let (store, dir) = raced(2);
        rt().block_on(async {
            let s =
                Server::from_value(&json!({"hostname": "n", "address": "10.0.0.1"}), "s").unwrap();
            store.put_servers(&[s]).await.unwrap();
            let placed = place(&store, &Native, &request(), 8).await.unwrap();
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
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn losing_every_retry_is_a_clear_error_that_wrote_nothing() {
        let (store, dir) = raced(100);
        rt().block_on(async {
            let s =
                Server::from_value(&json!({"hostname": "n", "address": "10.0.0.1"}), "s").unwrap();
            store.put_servers(&[s]).await.unwrap();
            let e = place(&store, &Native, &request(), 3).await.unwrap_err();
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
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn errors_and_unnamed_containers_save_nothing() {
        let (store, dir) = raced(0);
        rt().block_on(async {
            let e = place(&store, &Native, &request(), 8).await.unwrap();
            assert!(!e.saved);
            assert_eq!(e.decided.error_kind.as_deref(), Some("no_eligible_server"));
            let s =
                Server::from_value(&json!({"hostname": "n", "address": "10.0.0.1"}), "s").unwrap();
            store.put_servers(&[s]).await.unwrap();
            let unnamed = place(&store, &Native, &json!({"container": {"Image": "w"}}), 8)
                .await
                .unwrap();
            assert!(!unnamed.saved && !unnamed.decided.is_error());
            assert_eq!(store.cluster().await.unwrap().routes().count(), 0);
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn module_output_is_read_back_into_a_route() {
        let ok = Decided::from_output(
            r#"{"server":{"hostname":"n"},"route":{"name":"a.1","server":"n","ports":{"80/tcp":20000}}}"#,
        )
        .unwrap();
        assert_eq!(ok.route.unwrap().ports[0].1, 20000);
        let err =
            Decided::from_output(r#"{"error":{"kind":"name_in_use","message":"x"}}"#).unwrap();
        assert_eq!(err.error_kind.as_deref(), Some("name_in_use"));
        for bad in ["nope", "{}", r#"{"server":{},"route":{"server":1}}"#] {
            assert!(
                matches!(Decided::from_output(bad), Err(PlaceError::Engine(_))),
                "{bad}"
            );
        }
    }
}
