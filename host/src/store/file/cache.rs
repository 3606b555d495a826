//! The cached cluster and the changelog that keeps handles of one file in step.

#[allow(unused_imports)]
use super::*;

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the cache half
        // updated (it is replaced whole), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        tried!(self, self.db.begin_read())
    }

    /// redb's write lock, waited for at most [`WRITE_LOCK_WAIT`]: a writer
    /// that is stuck (a stopped process mid-transaction) makes every other
    /// write fail with a clear error instead of hanging forever.
    pub(super) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let deadline = std::time::Instant::now() + WRITE_LOCK_WAIT;
        let mut pause = std::time::Duration::from_micros(200);
        loop {
            if let Some(txn) = tried!(self, self.db.try_begin_write())? {
                return Ok(txn);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(StoreError::unavailable(format!(
                    "{}: another writer has held the store's write lock for over {} s \
                     (a stopped or stuck flocker process?); nothing was written",
                    self.path.display(),
                    WRITE_LOCK_WAIT.as_secs()
                )));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(std::time::Duration::from_millis(5));
        }
    }

    pub(super) fn generation_in(&self, txn: &ReadTransaction) -> Result<u64, StoreError> {
        self.generation_of(&tried!(self, txn.open_table(META))?)
    }

    /// The generation recorded in the meta table, read or write.
    pub(super) fn generation_of(
        &self,
        meta: &impl ReadableTable<&'static str, &'static str>,
    ) -> Result<u64, StoreError> {
        let g = tried!(self, meta.get(GENERATION))?;
        match g {
            None => Ok(0),
            Some(v) => v
                .value()
                .parse()
                .map_err(|e| StoreError::corrupt("meta/generation", e)),
        }
    }

    /// The cached cluster, first brought up to the store's generation.
    pub(super) fn fresh_cluster(&self) -> Result<Arc<Cluster>, StoreError> {
        let mut cache = self.lock();
        self.fresh_in(&mut cache)
    }

    /// [`Inner::fresh_cluster`] when no one holds the cache; None (without
    /// waiting) when someone does.
    pub(super) fn fresh_cluster_if_free(&self) -> Option<Result<Arc<Cluster>, StoreError>> {
        let mut cache = match self.cache.try_lock() {
            Ok(c) => c,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(self.fresh_in(&mut cache))
    }

    fn fresh_in(&self, cache: &mut Cache) -> Result<Arc<Cluster>, StoreError> {
        let txn = self.begin_read()?;
        let generation = self.generation_in(&txn)?;
        if generation != cache.generation {
            self.catch_up(cache, &txn, generation)?;
        }
        Ok(cache.cluster.share())
    }

    /// Brings `cache` to `generation`: by the changelog when it holds every
    /// missing change, else by rebuilding from the tables.
    pub(super) fn catch_up(
        &self,
        cache: &mut Cache,
        txn: &ReadTransaction,
        generation: u64,
    ) -> Result<(), StoreError> {
        if generation > cache.generation && cache.generation > 0 {
            let log = tried!(self, txn.open_table(CHANGELOG))?;
            let first = cache.generation + 1;
            let mut changes = Vec::new();
            let mut expect = first;
            for item in tried!(self, log.range(first..=generation))? {
                let (k, v) = tried!(self, item)?;
                if k.value() != expect {
                    break;
                }
                // A change this binary cannot read (a newer binary's op, a
                // damaged entry) ends the log path: the tables are the truth.
                let key = format!("changelog/{}", k.value());
                let Ok(change) = records::read_change(&key, v.value()) else {
                    break;
                };
                changes.push(change);
                expect += 1;
            }
            if expect == generation + 1 {
                for c in changes {
                    cache.cluster.apply(c.clone());
                    let _ = self.changes.send(c);
                }
                cache.generation = generation;
                return Ok(());
            }
        }
        let rebuilt = self.load_all(txn)?;
        for c in cache.cluster.changes_to(&rebuilt) {
            let _ = self.changes.send(c);
        }
        cache.cluster.replace(rebuilt);
        cache.generation = generation;
        Ok(())
    }

    /// The cluster the tables hold. A record that cannot be read is left
    /// out (and logged): one bad record is an error for its own name, never
    /// for the whole store; `store check` names it.
    pub(super) fn load_all(&self, txn: &ReadTransaction) -> Result<Cluster, StoreError> {
        self.load_noting(txn, &mut |e| {
            tracing::warn!(error = %e, "unreadable record left out of the cluster");
        })
    }

    /// [`Inner::load_all`], telling `bad` of each record it leaves out.
    pub(super) fn load_noting(
        &self,
        txn: &ReadTransaction,
        bad: &mut dyn FnMut(StoreError),
    ) -> Result<Cluster, StoreError> {
        let mut cluster = Cluster::new();
        for item in tried!(self, tried!(self, txn.open_table(INVENTORY))?.iter())? {
            let (k, v) = tried!(self, item)?;
            match read_server(k.value(), v.value()) {
                Ok(s) => cluster.apply_change(Change::UpsertServer(s)),
                Err(e) => bad(e),
            }
        }
        for item in tried!(self, tried!(self, txn.open_table(ROUTES))?.iter())? {
            let (k, v) = tried!(self, item)?;
            match read_route(k.value(), v.value()) {
                Ok(r) => cluster.apply_change(Change::SaveRoute(r)),
                Err(e) => bad(e),
            }
        }
        for item in tried!(self, tried!(self, txn.open_table(VOLUMES))?.iter())? {
            let (k, v) = tried!(self, item)?;
            cluster.apply_change(Change::ClaimVolume {
                volume: k.value().to_string(),
                server: v.value().to_string(),
            });
        }
        // Claims no live route explains still block saves: decisions must
        // see them. A key that is not `<hostname>/<port>` blocks nothing a
        // save would write; `store check` reports it.
        let mut orphans = Vec::new();
        for item in tried!(self, tried!(self, txn.open_table(PORTS))?.iter())? {
            let (k, v) = tried!(self, item)?;
            if let Some((server, port)) = parse_port_key(k.value()) {
                if !claim_explained(&cluster, server, port, v.value()) {
                    orphans.push(Change::ClaimPort {
                        server: server.to_string(),
                        port,
                    });
                }
            }
        }
        for c in orphans {
            cluster.apply_change(c);
        }
        Ok(cluster)
    }

    /// Runs one write transaction that may record cluster changes. `body`
    /// returns its result and the changes it made (already written to the
    /// tables); they go to the changelog, the generation moves past them,
    /// the transaction commits, and the cache follows.
    pub(super) fn write<T>(
        &self,
        body: impl FnOnce(&WriteTransaction) -> Result<(T, Vec<Change>), StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.begin_write()?;
        let (out, changes) = body(&txn)?;
        if changes.is_empty() {
            // Nothing to record; an abort keeps the file untouched.
            tried!(self, txn.abort())?;
            return Ok(out);
        }
        let start = self.record(&txn, &changes)?;
        tried!(self, txn.commit())?;
        let end = start + changes.len() as u64;
        let mut cache = self.lock();
        if cache.generation == start {
            for c in changes {
                cache.cluster.apply(c.clone());
                let _ = self.changes.send(c);
            }
            cache.generation = end;
        } else if cache.generation < end {
            let rtxn = self.begin_read()?;
            let generation = self.generation_in(&rtxn)?;
            self.catch_up(&mut cache, &rtxn, generation)?;
        }
        Ok(out)
    }

    /// The generation a write transaction starts from.
    pub(super) fn generation_in_write(&self, txn: &WriteTransaction) -> Result<u64, StoreError> {
        self.generation_of(&tried!(self, txn.open_table(META))?)
    }

    /// Appends `changes` to the changelog and moves the generation past
    /// them, in `txn`; returns the generation the transaction started from.
    pub(super) fn record(
        &self,
        txn: &WriteTransaction,
        changes: &[Change],
    ) -> Result<u64, StoreError> {
        let start = self.generation_in_write(txn)?;
        let end = start + changes.len() as u64;
        let mut meta = tried!(self, txn.open_table(META))?;
        tried!(self, meta.insert(GENERATION, end.to_string().as_str()))?;
        let mut log = tried!(self, txn.open_table(CHANGELOG))?;
        for (i, c) in changes.iter().enumerate() {
            let text = c.to_value().to_string();
            tried!(self, log.insert(start + 1 + i as u64, text.as_str()))?;
        }
        if end > CHANGELOG_KEEP {
            tried!(self, log.retain_in(..=(end - CHANGELOG_KEEP), |_, _| false))?;
        }
        Ok(start)
    }
}
