//! Inventory writes on etcd, all-or-nothing at any size (issue 11, F17).
//!
//! etcd allows [`EtcdConfig::max_txn_ops`] operations per transaction
//! (128 by default), so a larger `inventory add` cannot be one transaction.
//! It is staged instead: the servers are written as chunks under
//! `P/inventory-staged/<id>/<n>` (nothing reads them), then one transaction
//! puts the marker `P/inventory-staged/<id>` = `{"chunks": n}`, conditioned
//! on every chunk being there. That transaction is the commit point: before
//! it the add did nothing a reader sees (orphan chunks only); after it the
//! add is owed in full. The servers are then put in transactions of
//! `max_txn_ops`, and the last one deletes the marker and its chunks. A
//! writer that stops in between is finished by the next store that
//! connects or writes the inventory ([`EtcdStore::roll_forward`]): it reads
//! each marker, puts its servers and deletes it. While a staged add is
//! rolled forward, a watching host may see its servers arrive in a few
//! steps; what is guaranteed is that the add ends up whole or not at all.

#[allow(unused_imports)]
use super::*;

/// The largest staged chunk, in bytes: well under etcd's 1.5 MiB request limit.
const STAGED_CHUNK: usize = 512 * 1024;

impl EtcdStore {
    pub(super) async fn put_servers_whole(&self, servers: &[Server]) -> Result<(), StoreError> {
        if servers.is_empty() {
            return Ok(());
        }
        for s in servers {
            check_name("hostname", &s.hostname)?;
        }
        self.roll_forward().await?;
        let limit = self.config.max_txn_ops.max(1);
        if servers.len() <= limit {
            let resp = self
                .txn(
                    "put servers",
                    Txn::new().and_then(self.server_puts(servers)),
                )
                .await?;
            self.settle(header_revision(&resp)).await;
            return Ok(());
        }
        let id = format!(
            "{:020}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            std::process::id()
        );
        let mut chunks: Vec<Vec<Value>> = vec![Vec::new()];
        let mut size = 0;
        for s in servers {
            let v = s.to_value();
            let n = v.to_string().len();
            if size + n > STAGED_CHUNK && chunks.last().is_some_and(|c| !c.is_empty()) {
                chunks.push(Vec::new());
                size = 0;
            }
            size += n;
            if let Some(c) = chunks.last_mut() {
                c.push(v);
            }
        }
        if chunks.len() > limit {
            return Err(StoreError::unavailable(format!(
                "an inventory of {} servers needs {} staged chunks and etcd allows {limit} \
                 checks in one transaction; nothing was written",
                servers.len(),
                chunks.len()
            )));
        }
        for (i, c) in chunks.iter().enumerate() {
            let put = TxnOp::put(
                self.keys.staged_chunk(&id, i),
                Value::from(c.clone()).to_string(),
                None,
            );
            self.txn("stage servers", Txn::new().and_then(vec![put]))
                .await?;
        }
        let marker = self.keys.staged_marker(&id);
        let all_there: Vec<Compare> = (0..chunks.len())
            .map(|i| Compare::version(self.keys.staged_chunk(&id, i), CompareOp::Greater, 0))
            .collect();
        let commit = Txn::new().when(all_there).and_then(vec![TxnOp::put(
            marker.clone(),
            json!({"chunks": chunks.len()}).to_string(),
            None,
        )]);
        let resp = self.txn("commit staged servers", commit).await?;
        if !resp.succeeded() {
            return Err(StoreError::unavailable(
                "staged servers were deleted before their commit; nothing was written",
            ));
        }
        self.apply_staged(&marker, servers).await
    }

    fn server_puts(&self, servers: &[Server]) -> Vec<TxnOp> {
        servers
            .iter()
            .map(|s| {
                TxnOp::put(
                    self.keys.server(&s.hostname),
                    s.to_value().to_string(),
                    None,
                )
            })
            .collect()
    }

    /// Puts a committed staged add's servers, then deletes its marker and
    /// chunks with the last of them.
    async fn apply_staged(&self, marker: &str, servers: &[Server]) -> Result<(), StoreError> {
        let limit = self.config.max_txn_ops.max(1);
        let mut puts = self.server_puts(servers);
        // Room in the last transaction for deleting the marker and chunks.
        let tail = puts.split_off(puts.len().saturating_sub(limit - 1).min(puts.len()));
        for chunk in puts.chunks(limit) {
            self.txn("put staged servers", Txn::new().and_then(chunk.to_vec()))
                .await?;
        }
        let mut last = tail;
        last.push(TxnOp::delete(
            marker,
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        ));
        let resp = self
            .txn("finish staged servers", Txn::new().and_then(last))
            .await?;
        self.settle(header_revision(&resp)).await;
        Ok(())
    }

    /// Finishes every committed staged add (see the module doc).
    pub(super) async fn roll_forward(&self) -> Result<(), StoreError> {
        let kvs = self
            .get(
                "read staged servers",
                self.keys.staged(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        let staged = self.keys.staged();
        let markers: Vec<String> = kvs
            .iter()
            .filter_map(|kv| kv.key_str().ok())
            .filter(|k| {
                k.strip_prefix(staged.as_str())
                    .is_some_and(|id| !id.contains('/'))
            })
            .map(str::to_string)
            .collect();
        for marker in markers {
            let chunks = self
                .get(
                    "read staged servers",
                    format!("{marker}/"),
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_sort(SortTarget::Key, SortOrder::Ascend),
                    ),
                )
                .await?;
            let mut servers = Vec::new();
            for kv in &chunks {
                let corrupt =
                    |reason: String| StoreError::corrupt(String::from_utf8_lossy(kv.key()), reason);
                let list: Vec<Value> = serde_json::from_slice(kv.value())
                    .map_err(|e| corrupt(format!("not a JSON list of servers: {e}")))?;
                for v in &list {
                    servers.push(
                        Server::from_value(v, "staged server")
                            .map_err(|e| corrupt(e.to_string()))?,
                    );
                }
            }
            tracing::info!(%marker, servers = servers.len(), "finishing a staged inventory add");
            self.apply_staged(&marker, &servers).await?;
        }
        Ok(())
    }

    pub(super) async fn remove_server_known(&self, hostname: &str) -> Result<bool, StoreError> {
        check_name("hostname", hostname)?;
        self.roll_forward().await?;
        let key = self.keys.server(hostname);
        // Read, then delete that very record: `true` only when a record
        // was there and is gone, also when an attempt's answer was lost.
        for _ in 0..RMW_ATTEMPTS {
            let kvs = self.get("read server", key.clone(), None).await?;
            let Some(kv) = kvs.first() else {
                return Ok(false);
            };
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then(vec![TxnOp::delete(key.clone(), None)]);
            let (resp, maybe) = self.members.txn("remove server", txn).await?;
            if resp.succeeded() {
                self.settle(header_revision(&resp)).await;
                return Ok(true);
            }
            if maybe && self.get("read server", key.clone(), None).await?.is_empty() {
                // Our earlier attempt (or another host) deleted the record we read.
                self.settle(header_revision(&resp)).await;
                return Ok(true);
            }
        }
        Err(StoreError::unavailable(format!(
            "server {hostname} kept changing while it was being removed ({RMW_ATTEMPTS} attempts)"
        )))
    }
}
