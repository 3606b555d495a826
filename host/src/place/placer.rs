//! [`Placer`]: how every caller places, whatever the store.

use std::sync::Arc;

use serde_json::Value;

use super::batch::Batcher;
use super::{place, PlaceError, Placed, Repeat};
use crate::engine::Engine;
use crate::store::any::AnyStore;

/// Decides and saves places over one store with one engine: on the
/// embedded store through a batching writer thread (one transaction and
/// one fsync per batch, decisions made under the write lock so they never
/// conflict with each other), on etcd concurrently, retrying a save that
/// lost to another writer. Cheap to clone.
#[derive(Clone)]
pub struct Placer {
    store: Arc<AnyStore>,
    engine: Arc<dyn Engine>,
    retries: u32,
    batcher: Option<Batcher>,
}

impl Placer {
    /// A placer over `store`; `max_batch` bounds the places one embedded
    /// transaction saves (1 for a one-off command).
    pub fn new(
        store: Arc<AnyStore>,
        engine: Arc<dyn Engine>,
        retries: u32,
        max_batch: usize,
    ) -> Result<Placer, PlaceError> {
        let batcher = match &*store {
            AnyStore::File(fs) => Some(Batcher::start(
                fs.clone(),
                engine.clone(),
                retries,
                max_batch,
            )?),
            AnyStore::Etcd(_) => None,
        };
        Ok(Placer {
            store,
            engine,
            retries,
            batcher,
        })
    }

    /// Decides `request` (`{name, container, image}`) and saves its route;
    /// a name with a live route is `name_in_use` (SPEC section 3).
    pub async fn place(&self, request: Value) -> Result<Placed, PlaceError> {
        self.place_as(request, Repeat::NameInUse).await
    }

    /// [`Placer::place`], or a retry of a place whose answer was lost
    /// ([`Repeat::Replay`]).
    pub async fn place_as(&self, request: Value, repeat: Repeat) -> Result<Placed, PlaceError> {
        match &self.batcher {
            Some(b) => b.place(request, repeat).await,
            None => place(&*self.store, &self.engine, &request, self.retries, repeat).await,
        }
    }

    /// Whether the placer cannot place any more: the embedded store's
    /// writer thread is gone. Never on etcd (places run in the caller).
    pub fn stopped(&self) -> bool {
        self.batcher.as_ref().is_some_and(Batcher::stopped)
    }

    /// The engine the placer decides with.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }
}
