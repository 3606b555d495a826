//! A batch of decisions saved in one write transaction: the primitive the
//! batching placer ([`crate::place`]) is built on.

#[allow(unused_imports)]
use super::*;

/// What a batch's `decide` returns for one item: the route to save and
/// the answer to keep beside it, or None to save nothing.
pub type ToSave = Option<(Route, Option<Answer>)>;

impl FileStore {
    /// Runs one write transaction (one fsync) over the cluster as it is
    /// when the transaction starts: `decide` is called for each item in
    /// turn with the cached cluster and returns the route to save (with
    /// the answer to keep beside it), or None to save nothing; each route is saved (with the checks of
    /// [`Store::save_decision`]) before the next item is decided, so every
    /// item sees the ones before it. Returns what each save came to.
    ///
    /// The transaction holds redb's write lock (across processes) and first
    /// brings the cache to the generation it starts from (reading what
    /// other processes wrote, as a read transaction sees it while no one
    /// else can commit), so every decision is made on exactly the state it
    /// is saved over: the same answers as placing the items one after
    /// another. The save's checks still run (and a conflict is reported),
    /// as a guard.
    ///
    /// The cache shows the batch's routes from their decision on (like the
    /// etcd store's saves in flight); if the commit fails, the cache is
    /// rebuilt from the file. Blocking: call it from a thread of its own
    /// or `spawn_blocking`.
    pub fn write_batch<T>(
        &self,
        items: &mut [T],
        mut decide: impl FnMut(&mut T, &Arc<Cluster>) -> ToSave,
    ) -> Result<Vec<Option<Saved>>, StoreError> {
        self.inner.write_batch(items, &mut decide)
    }
}

impl Inner {
    pub(super) fn write_batch<T>(
        &self,
        items: &mut [T],
        decide: &mut dyn FnMut(&mut T, &Arc<Cluster>) -> ToSave,
    ) -> Result<Vec<Option<Saved>>, StoreError> {
        let txn = self.begin_write()?;
        let start = self.generation_in_write(&txn)?;
        let mut cache = self.lock();
        if cache.generation != start {
            // Another process wrote since the cache last looked. While this
            // transaction holds the write lock nothing else can commit, so a
            // read transaction sees exactly the state it starts from.
            let rtxn = self.begin_read()?;
            let generation = self.generation_in(&rtxn)?;
            self.catch_up(&mut cache, &rtxn, generation)?;
            if cache.generation != start {
                cache.generation = 0;
                return Err(StoreError::corrupt(
                    "meta/generation",
                    format!("read {generation} beside a write from {start}"),
                ));
            }
        }
        let mut outcomes = Vec::with_capacity(items.len());
        let mut changes = Vec::new();
        for item in items.iter_mut() {
            let Some((route, answer)) = decide(item, &cache.cluster.share()) else {
                outcomes.push(None);
                continue;
            };
            let (saved, made) = match self.save_in(&txn, &route, answer.as_ref()) {
                Ok(x) => x,
                Err(e) => {
                    cache.generation = 0; // the cache may show this batch: rebuild
                    return Err(e);
                }
            };
            if !made.is_empty() {
                for c in &made {
                    cache.cluster.apply(c.clone());
                    let _ = self.changes.send(c.clone());
                }
                changes.extend(made);
            }
            outcomes.push(Some(saved));
        }
        if changes.is_empty() {
            drop(cache);
            tried!(self, txn.abort())?;
            return Ok(outcomes);
        }
        // The decisions are made; readers may take the cache (with this
        // batch in it) while the commit waits for the disk.
        drop(cache);
        let committed = self
            .record(&txn, &changes)
            .and_then(|_| tried!(self, txn.commit()));
        let mut cache = self.lock();
        match committed {
            Ok(()) => {
                let end = start + changes.len() as u64;
                if cache.generation < end {
                    // Unless a reader already caught up through the log.
                    cache.generation = if cache.generation == start { end } else { 0 };
                }
                Ok(outcomes)
            }
            Err(e) => {
                cache.generation = 0;
                Err(e)
            }
        }
    }
}
