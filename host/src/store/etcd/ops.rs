//! The [`Store`] trait over etcd.

#[allow(unused_imports)]
use super::*;

impl Store for EtcdStore {
    async fn cluster(&self) -> Result<Arc<Cluster>, StoreError> {
        let mut rx = self.shared.status.subscribe();
        let down = rx.borrow_and_update().down.clone();
        if let Some(why) = down {
            let wait = async { rx.wait_for(|s| s.down.is_none()).await.is_ok() };
            let back = tokio::time::timeout(self.config.request_timeout, wait)
                .await
                .unwrap_or(false);
            if !back {
                let why = self.down().unwrap_or(why);
                return Err(unavailable(&self.config, "cluster state", why));
            }
        }
        Ok(self.shared.read().cluster.share())
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    async fn put_servers(&self, servers: &[Server]) -> Result<(), StoreError> {
        self.put_servers_whole(servers).await
    }

    async fn remove_server(&self, hostname: &str) -> Result<bool, StoreError> {
        self.remove_server_known(hostname).await
    }

    async fn answer(&self, name: &str) -> Result<Option<Answer>, StoreError> {
        check_name("route name", name)?;
        let key = self.keys.answer(name);
        let kvs = self.get("read answer", key.clone(), None).await?;
        kvs.first().map(|kv| parse_answer(&key, kv)).transpose()
    }

    async fn save_answered(
        &self,
        route: &Route,
        answer: Option<&Answer>,
    ) -> Result<Saved, StoreError> {
        crate::store::storable::check(route, answer, self.config.max_txn_ops)?;
        let plan = match self.plan(route, answer) {
            Ok(p) => p,
            Err(conflict) => return Ok(conflict),
        };
        let reads: Vec<TxnOp> = plan
            .checks
            .iter()
            .map(|c| TxnOp::get(self.check_key(route, c), None))
            .collect();
        let txn = Txn::new()
            .when(plan.compares)
            .and_then(plan.puts)
            .or_else(reads);
        let route_json = route.to_value().to_string();
        let in_flight = InFlight {
            shared: &self.shared,
            id: self.shared.update(|c| c.add_pending(route)),
        };
        let (resp, maybe) = match self.members.txn_flagged("save decision", txn).await {
            Ok(answered) => answered,
            Err((e, maybe)) => {
                // No answer, but an attempt may have been applied: if the
                // route key holds exactly this save's route, it was (the
                // transaction is whole or absent).
                if maybe && self.read_back(route, &route_json).await {
                    drop(in_flight);
                    return Ok(Saved::Saved);
                }
                return Err(e);
            }
        };
        if resp.succeeded() {
            // The overlay stays until the watch has brought the route.
            self.settle(header_revision(&resp)).await;
            drop(in_flight);
            return Ok(Saved::Saved);
        }
        drop(in_flight);
        let found = txn_gets(&resp);
        let newest = found
            .iter()
            .flatten()
            .map(KeyValue::mod_revision)
            .max()
            .unwrap_or(0);
        self.settle(newest).await;
        if maybe && is_ours(route, &route_json, &plan.checks, &found) {
            // An earlier attempt was applied but its answer was lost.
            return Ok(Saved::Saved);
        }
        Ok(Saved::Conflict(describe_conflict(
            route,
            &plan.checks,
            &found,
        )))
    }

    async fn remove_route(&self, name: &str) -> Result<Option<Route>, StoreError> {
        check_name("route name", name)?;
        let key = self.keys.route(name);
        for _ in 0..RMW_ATTEMPTS {
            let kvs = self.get("read route", key.clone(), None).await?;
            let Some(kv) = kvs.first() else {
                return Ok(None);
            };
            let text = kv
                .value_str()
                .map_err(|_| StoreError::corrupt(&key, "value is not UTF-8"))?;
            let route = read_route(&key, name, text)?;
            if !route.is_live() {
                return Ok(Some(route));
            }
            let mut ports = route.host_ports.clone();
            ports.sort_unstable();
            ports.dedup();
            // Free only the claims that are this route's.
            let reads: Vec<TxnOp> = ports
                .iter()
                .map(|p| TxnOp::get(self.keys.port(&route.server, *p), None))
                .collect();
            let mut ops = Vec::new();
            for chunk in reads.chunks(self.config.max_txn_ops.max(1)) {
                let resp = self
                    .txn("read port claims", Txn::new().and_then(chunk.to_vec()))
                    .await?;
                for kvs in txn_gets(&resp) {
                    for kv in kvs.iter().filter(|kv| kv.value() == name.as_bytes()) {
                        ops.push(TxnOp::delete(kv.key().to_vec(), None));
                    }
                }
            }
            ops.push(TxnOp::put(
                key.clone(),
                super::super::prune::removed_record(&route, super::super::prune::now_secs()),
                None,
            ));
            ops.push(TxnOp::delete(self.keys.answer(name), None));
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then(ops);
            let resp = self.txn("remove route", txn).await?;
            if resp.succeeded() {
                self.settle(header_revision(&resp)).await;
                return Ok(Some(route));
            }
        }
        Err(StoreError::unavailable(format!(
            "route {name} kept changing while it was being removed ({RMW_ATTEMPTS} attempts)"
        )))
    }

    async fn policy_push(&self, module: &[u8], record: PolicyRecord) -> Result<(), StoreError> {
        check_name("policy digest", &record.digest)?;
        let digest = record.digest.as_str();
        let chunks: Vec<&[u8]> = module.chunks(MODULE_CHUNK).collect();
        let meta_key = self.keys.module(digest);
        let stored = !self
            .get("read module", meta_key.clone(), None)
            .await?
            .is_empty();
        if !stored {
            // Chunks first, one request each (etcd refuses requests over
            // 1.5 MiB); the module exists once its meta key does.
            for (i, chunk) in chunks.iter().enumerate() {
                self.txn(
                    "store module chunk",
                    Txn::new().and_then(vec![TxnOp::put(
                        self.keys.module_chunk(digest, i),
                        chunk.to_vec(),
                        None,
                    )]),
                )
                .await?;
            }
        }
        let meta = json!({"size": module.len(), "chunks": chunks.len()}).to_string();
        for _ in 0..RMW_ATTEMPTS {
            let last = self
                .get(
                    "read policy history",
                    self.keys.history(),
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_keys_only()
                            .with_sort(SortTarget::Key, SortOrder::Descend)
                            .with_limit(1),
                    ),
                )
                .await?;
            let seq = match last.first() {
                Some(kv) => {
                    let k = String::from_utf8_lossy(kv.key()).into_owned();
                    let n = k
                        .rsplit('/')
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| {
                            StoreError::corrupt(&k, "history key does not end in a sequence number")
                        })?;
                    n + 1
                }
                None => 1,
            };
            let entry = self.keys.history_entry(seq);
            let mut ops = vec![
                TxnOp::put(entry.clone(), record.to_text(), None),
                TxnOp::put(self.keys.active(), digest, None),
            ];
            if !stored {
                ops.push(TxnOp::put(meta_key.clone(), meta.as_str(), None));
            }
            let txn = Txn::new()
                .when(vec![Compare::version(entry, CompareOp::Equal, 0)])
                .and_then(ops);
            let resp = self.txn("push policy", txn).await?;
            if resp.succeeded() {
                self.settle(header_revision(&resp)).await;
                return Ok(());
            }
        }
        Err(StoreError::unavailable(format!(
            "policy history kept changing while pushing ({RMW_ATTEMPTS} attempts)"
        )))
    }

    async fn policy_history(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let kvs = self
            .get(
                "read policy history",
                self.keys.history(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Key, SortOrder::Ascend),
                ),
            )
            .await?;
        kvs.iter()
            .map(|kv| PolicyRecord::from_text(&String::from_utf8_lossy(kv.key()), kv.value()))
            .collect()
    }

    async fn policy_active(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let active = self.keys.active();
        let kvs = self.get("read active policy", active.clone(), None).await?;
        let Some(kv) = kvs.first() else {
            return Ok(None);
        };
        let digest = kv
            .value_str()
            .map_err(|_| StoreError::corrupt(&active, "value is not UTF-8"))?
            .to_string();
        let meta_key = self.keys.module(&digest);
        let corrupt = |reason: String| StoreError::corrupt(&meta_key, reason);
        let meta = self.get("read module", meta_key.clone(), None).await?;
        let meta = meta
            .first()
            .ok_or_else(|| corrupt(format!("active digest {digest} has no module")))?;
        let meta: Value =
            serde_json::from_slice(meta.value()).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let size = meta
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("size is missing".into()))?;
        let count = meta
            .get("chunks")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("chunks is missing".into()))?;
        let chunks = self
            .get(
                "read module",
                format!("{meta_key}/"),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Key, SortOrder::Ascend),
                ),
            )
            .await?;
        if chunks.len() as u64 != count {
            return Err(corrupt(format!(
                "{} of {count} chunks are stored",
                chunks.len()
            )));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for c in &chunks {
            bytes.extend_from_slice(c.value());
        }
        if bytes.len() as u64 != size {
            return Err(corrupt(format!(
                "chunks hold {} bytes, not {size}",
                bytes.len()
            )));
        }
        Ok(Some((digest, bytes)))
    }

    /// From the watch-fed cache: no request to etcd.
    async fn policy_active_digest(&self) -> Result<Option<String>, StoreError> {
        Ok(self.shared.read().active_policy.clone())
    }

    async fn policy_activate(
        &self,
        digest: &str,
        expected: Option<&str>,
    ) -> Result<(), StoreError> {
        check_name("policy digest", digest)?;
        let active = self.keys.active();
        // The active key as the caller read it: its value, or no key at all.
        let still = match expected {
            Some(d) => Compare::value(active.clone(), CompareOp::Equal, d),
            None => Compare::version(active.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when(vec![
                Compare::version(self.keys.module(digest), CompareOp::Greater, 0),
                still,
            ])
            .and_then(vec![TxnOp::put(active.clone(), digest, None)]);
        let resp = self.txn("activate policy", txn).await?;
        if resp.succeeded() {
            self.settle(header_revision(&resp)).await;
            return Ok(());
        }
        // Which compare failed, for the error: read after the fact, so
        // only the message can be stale, never the outcome.
        let stored = !self
            .get("read module", self.keys.module(digest), None)
            .await?
            .is_empty();
        if !stored {
            return Err(StoreError::NotFound(format!(
                "no policy module with digest {digest} was pushed"
            )));
        }
        let now = self.get("read active policy", active, None).await?;
        let found = now
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
        Err(active_changed(expected, found.as_deref()))
    }

    async fn prune_routes(&self, prune: &Prune) -> Result<u64, StoreError> {
        self.prune_in_etcd(prune).await
    }

    async fn release_volume(&self, volume: &str) -> Result<Released, StoreError> {
        self.release_in_etcd(volume).await
    }
}
