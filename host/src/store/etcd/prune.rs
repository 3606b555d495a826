//! `routes prune` and `volumes rm` on etcd (issue 11, F12), and the
//! compaction after a prune.

#[allow(unused_imports)]
use super::*;
use crate::store::prune::{now_secs, volume_users, Prune, Released};

/// Route records read per request while pruning.
const PRUNE_PAGE: i64 = 1000;

/// The end of the key range of everything under `prefix` (which ends in `/`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

impl EtcdStore {
    pub(super) async fn prune_in_etcd(&self, prune: &Prune) -> Result<u64, StoreError> {
        let now = now_secs();
        let prefix = self.keys.routes();
        let end = prefix_end(&prefix);
        let mut from = format!("{prefix}{}", prune.name_prefix);
        let (mut deleted, mut last_rev) = (0u64, 0i64);
        loop {
            let page = self
                .get(
                    "read routes to prune",
                    from.clone(),
                    Some(
                        GetOptions::new()
                            .with_range(end.clone())
                            .with_limit(PRUNE_PAGE),
                    ),
                )
                .await?;
            let mut doomed = Vec::new();
            for kv in &page {
                let (Ok(key), Ok(text)) = (kv.key_str(), kv.value_str()) else {
                    continue;
                };
                if let Kind::Route(name) = self.keys.kind(key) {
                    if !name.starts_with(prune.name_prefix.as_str()) {
                        continue;
                    }
                    if prune.selects(name, text, now) {
                        doomed.push((key.to_string(), kv.mod_revision()));
                    }
                }
            }
            for chunk in doomed.chunks(self.config.max_txn_ops.max(1)) {
                let (n, rev) = self.delete_unchanged(chunk).await?;
                deleted += n;
                last_rev = last_rev.max(rev);
            }
            let Some(last) = page.last() else { break };
            if (page.len() as i64) < PRUNE_PAGE {
                break;
            }
            let mut next = last.key().to_vec();
            next.push(0);
            from = String::from_utf8_lossy(&next).into_owned();
            if !from.starts_with(&format!("{prefix}{}", prune.name_prefix)) {
                break;
            }
        }
        if last_rev > 0 {
            self.settle(last_rev).await;
            self.compact(last_rev).await;
        }
        Ok(deleted)
    }

    /// Deletes each key still at the `mod_revision` it was read at: one
    /// transaction for the chunk, or key by key when one of them changed.
    async fn delete_unchanged(&self, chunk: &[(String, i64)]) -> Result<(u64, i64), StoreError> {
        let txn = |keys: &[(String, i64)]| {
            Txn::new()
                .when(
                    keys.iter()
                        .map(|(k, rev)| Compare::mod_revision(k.clone(), CompareOp::Equal, *rev))
                        .collect::<Vec<_>>(),
                )
                .and_then(
                    keys.iter()
                        .map(|(k, _)| TxnOp::delete(k.clone(), None))
                        .collect::<Vec<_>>(),
                )
        };
        let resp = self.txn("prune routes", txn(chunk)).await?;
        if resp.succeeded() {
            return Ok((chunk.len() as u64, header_revision(&resp)));
        }
        let (mut n, mut rev) = (0, 0);
        for one in chunk {
            let resp = self
                .txn("prune route", txn(std::slice::from_ref(one)))
                .await?;
            if resp.succeeded() {
                n += 1;
                rev = header_revision(&resp);
            }
        }
        Ok((n, rev))
    }

    /// Compacts etcd's history up to `revision`, which this store's watch
    /// has applied: the deleted records' old versions stop taking space.
    /// Another host's watch that is further behind is told its revision is
    /// compacted and re-reads the state once. A failure is only logged:
    /// the prune is done either way, and `etcdctl compact` can finish it.
    async fn compact(&self, revision: i64) {
        let done = self
            .members
            .call("compact", |c| async move {
                kv(&c).compact(revision, None).await
            })
            .await;
        if let Err(e) = done {
            tracing::warn!(revision, error = %e, "etcd compaction after prune failed");
        }
    }

    pub(super) async fn release_in_etcd(&self, volume: &str) -> Result<Released, StoreError> {
        check_name("volume name", volume)?;
        let key = self.keys.volume(volume);
        for _ in 0..RMW_ATTEMPTS {
            // The cache at `seen` holds every route record with a
            // mod_revision up to `seen`; the transaction checks that no
            // route changed since, so the users read here are still all.
            let seen = self.revision();
            let users = volume_users(&self.shared.read().cluster, volume);
            if !users.is_empty() {
                return Ok(Released::InUse(users));
            }
            let kvs = self.get("read volume claim", key.clone(), None).await?;
            let Some(kv) = kvs.first() else {
                return Ok(Released::NotClaimed);
            };
            let server = String::from_utf8_lossy(kv.value()).into_owned();
            let txn = Txn::new()
                .when(vec![
                    Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision()),
                    Compare::mod_revision(self.keys.routes(), CompareOp::Less, seen + 1)
                        .with_prefix(),
                ])
                .and_then(vec![TxnOp::delete(key.clone(), None)]);
            let resp = self.txn("release volume", txn).await?;
            let rev = header_revision(&resp);
            self.settle(rev).await;
            if resp.succeeded() {
                return Ok(Released::Released { server });
            }
        }
        Err(StoreError::unavailable(format!(
            "routes kept changing while volume {volume} was being released ({RMW_ATTEMPTS} attempts)"
        )))
    }
}
