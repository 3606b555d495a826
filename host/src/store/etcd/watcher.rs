//! The first read of everything, and the watch that keeps the cache current.

#[allow(unused_imports)]
use super::*;

/// Reads inventory, routes, volume claims and the active policy digest in
/// one transaction, so they are all at one revision.
pub(super) async fn load(members: &Members, keys: &Keys) -> Result<Snapshot, StoreError> {
    let txn = Txn::new().and_then(vec![
        TxnOp::get(keys.servers(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.routes(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.volumes(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.active(), None),
        TxnOp::get(keys.ports(), Some(GetOptions::new().with_prefix())),
    ]);
    let (resp, _) = members.txn("read state", txn).await?;
    let revision = header_revision(&resp);
    let mut cluster = Cluster::new();
    let mut cache = Cache::new();
    let mut claims = Vec::new();
    for kvs in txn_gets(&resp) {
        for item in &kvs {
            if let Some((server, port)) = port_of(keys, item) {
                claims.push((
                    server,
                    port,
                    String::from_utf8_lossy(item.value()).into_owned(),
                ));
            } else if let Some(change) = read_put(keys, item, &mut cache) {
                cluster.apply_change(change);
            }
        }
    }
    for (server, port, holder) in claims {
        if !claim_explained(&cluster, &server, port, &holder) {
            cluster.apply_change(Change::ClaimPort { server, port });
        }
    }
    cache.cluster = Twin::new(cluster);
    Ok(Snapshot { revision, cache })
}

/// The change a put of `kv` makes, keeping the cache's side tables; None
/// for keys the cluster does not hold. A record that cannot be read is
/// recorded in `cache.corrupt` and reads as a deletion.
pub(super) fn read_put(keys: &Keys, kv: &KeyValue, cache: &mut Cache) -> Option<Change> {
    let (key, text) = match utf8(kv) {
        Ok(kt) => kt,
        Err((key, reason)) => {
            tracing::warn!(%key, %reason, "unreadable etcd record");
            cache.corrupt.insert(key, reason);
            return None;
        }
    };
    let kind = keys.kind(key);
    if let Kind::Route(name) = kind {
        cache.route_revs.insert(name.to_string(), kv.mod_revision());
    }
    let parsed = match kind {
        Kind::Server(h) => read_server(key, h, text).map(Change::UpsertServer),
        Kind::Route(n) => read_route(key, n, text).map(Change::SaveRoute),
        Kind::Volume(v) => read_volume_claim(key, text).map(|server| Change::ClaimVolume {
            volume: v.to_string(),
            server,
        }),
        Kind::PolicyActive => {
            cache.active_policy = Some(text.to_string());
            return None;
        }
        Kind::Port(..) | Kind::Other => return None,
    };
    match parsed {
        Ok(change) => {
            cache.corrupt.remove(key);
            Some(change)
        }
        Err(e) => {
            let reason = match e {
                StoreError::Corrupt { reason, .. } => reason,
                other => other.to_string(),
            };
            tracing::warn!(%key, %reason, "corrupt etcd record left out of the cluster");
            cache.corrupt.insert(key.to_string(), reason);
            read_delete(keys, kv, cache)
        }
    }
}

/// The change a deletion of `kv`'s key makes.
pub(super) fn read_delete(keys: &Keys, kv: &KeyValue, cache: &mut Cache) -> Option<Change> {
    let key = kv.key_str().ok()?;
    cache.corrupt.remove(key);
    match keys.kind(key) {
        Kind::Server(h) => Some(Change::RemoveServer {
            hostname: h.to_string(),
        }),
        Kind::Route(n) => {
            cache.route_revs.remove(n);
            Some(Change::DeleteRoute {
                name: n.to_string(),
            })
        }
        Kind::Volume(v) => Some(Change::ReleaseVolume {
            volume: v.to_string(),
        }),
        Kind::PolicyActive => {
            cache.active_policy = None;
            None
        }
        Kind::Port(..) | Kind::Other => None,
    }
}

/// Replaces the cache with a fresh snapshot, telling receivers the difference.
pub(super) fn install(shared: &Shared, snapshot: Snapshot) {
    shared.update(|cache| {
        // Receivers follow the cached cluster, overlays included: the
        // difference is taken between the two clusters as decisions see
        // them, with this store's saves in flight shown over both.
        let pending = std::mem::take(&mut cache.pending);
        let old = cache.cluster.share();
        let next_pending = cache.next_pending;
        *cache = snapshot.cache;
        cache.next_pending = next_pending;
        let mut shown = Vec::new();
        for (id, p) in pending {
            let mut again = Pending {
                route: p.route,
                hidden_route: None,
                hidden_volumes: Vec::new(),
            };
            overlay(&mut cache.cluster, &mut again, &mut shown);
            cache.pending.insert(id, again);
        }
        cache.outbox = old.changes_to(&cache.cluster);
    });
    let active = shared.read().active_policy.clone();
    shared.policy.send_if_modified(|p| {
        if *p != active {
            *p = active;
            true
        } else {
            false
        }
    });
    shared.status.send_modify(|s| {
        s.revision = snapshot.revision;
        s.down = None;
    });
}

/// How one watch stream ended.
pub(super) enum Ended {
    /// The stream broke or the connection went away: watch again from the
    /// next revision. The flag says whether the watch had been created (it
    /// was following, so the member was fine until now).
    Lost(String, bool),
    /// etcd canceled the watch (compaction or otherwise): re-read everything.
    Canceled(String),
}

/// The watch task: follows `P/` from `revision + 1` for as long as the store lives.
pub(super) async fn follow(
    members: Arc<Members>,
    keys: Keys,
    shared: Arc<Shared>,
    mut revision: i64,
) {
    let min_backoff = Duration::from_millis(50);
    let max_backoff = Duration::from_secs(1);
    let mut backoff = min_backoff;
    let mut reload = false;
    loop {
        if reload {
            match load(&members, &keys).await {
                Ok(snapshot) => {
                    revision = snapshot.revision;
                    shared
                        .reloads
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    install(&shared, snapshot);
                    reload = false;
                }
                Err(e) => {
                    shared.set_down(e.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            }
        }
        let member = members.preferred();
        let Some(client) = members.clients.get(member).cloned() else {
            return;
        };
        match watch_once(&client, member, &members, &keys, &shared, &mut revision).await {
            Ended::Lost(why, followed) => {
                if followed {
                    backoff = min_backoff;
                }
                members.failed(member);
                tracing::warn!(%why, revision, "etcd watch lost; watching again");
                shared.set_down(why);
            }
            Ended::Canceled(why) => {
                tracing::warn!(%why, revision, "etcd watch canceled; re-reading all state");
                shared.set_down(why);
                reload = true;
                backoff = min_backoff;
                continue;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// Resolves once requests have moved away from `member`.
pub(super) async fn left(moved: &mut watch::Receiver<usize>, members: &Members, member: usize) {
    loop {
        if members.preferred() != member {
            return;
        }
        if moved.changed().await.is_err() {
            // The store is gone; its task is aborted with it.
            std::future::pending::<()>().await;
        }
    }
}

/// Opens one watch from `revision + 1` and applies what it delivers until it ends.
pub(super) async fn watch_once(
    client: &Client,
    member: usize,
    members: &Members,
    keys: &Keys,
    shared: &Shared,
    revision: &mut i64,
) -> Ended {
    let config = &members.config;
    let mut moved = members.moved.subscribe();
    let mut wc = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(*revision + 1)
        .with_progress_notify();
    let mut stream =
        match tokio::time::timeout(config.request_timeout, wc.watch(keys.root(), Some(options)))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Ended::Lost(format!("watch: {e}"), false),
            Err(_) => return Ended::Lost("watch: timed out".into(), false),
        };
    let mut followed = false;
    loop {
        let message = tokio::select! {
            m = stream.message() => m,
            () = left(&mut moved, members, member) => {
                return Ended::Lost(
                    format!("requests left member {member} after failing there"),
                    followed,
                );
            }
        };
        let resp = match message {
            Ok(Some(r)) => r,
            Ok(None) => return Ended::Lost("watch stream closed".into(), followed),
            Err(e) => return Ended::Lost(format!("watch stream: {e}"), followed),
        };
        if resp.canceled() {
            let why = if resp.compact_revision() > 0 {
                format!(
                    "revision {} is compacted (oldest kept {})",
                    *revision + 1,
                    resp.compact_revision()
                )
            } else {
                format!("watch canceled: {}", resp.cancel_reason())
            };
            return Ended::Canceled(why);
        }
        if resp.created() {
            // Following again from where the cache stands.
            followed = true;
            shared.status.send_modify(|s| s.down = None);
        }
        let events = resp.events();
        if events.is_empty() {
            // A progress notification: every event up to its revision is delivered.
            if !resp.created() {
                if let Some(h) = resp.header() {
                    if h.revision() > *revision {
                        *revision = h.revision();
                        let r = *revision;
                        shared.status.send_modify(|s| s.revision = r);
                    }
                }
            }
            continue;
        }
        let mut last = *revision;
        let mut policy_touched = false;
        shared.update(|cache| {
            // Port claims are not in the cluster, only the ones no live
            // route explains; which those are is known after the batch.
            let mut changes = Vec::with_capacity(events.len());
            let mut touched = BTreeMap::new();
            let mut gone_live = Vec::new();
            for ev in events {
                let Some(kv) = ev.kv() else { continue };
                last = last.max(kv.mod_revision());
                if keys.kind(kv.key_str().unwrap_or("")) == Kind::PolicyActive {
                    policy_touched = true;
                }
                if let Some(at) = port_of(keys, kv) {
                    let holder = (ev.event_type() == EventType::Put)
                        .then(|| String::from_utf8_lossy(kv.value()).into_owned());
                    touched.insert(at, holder);
                    continue;
                }
                let change = match ev.event_type() {
                    EventType::Put => read_put(keys, kv, cache),
                    EventType::Delete => read_delete(keys, kv, cache),
                };
                if let Some(Change::DeleteRoute { name } | Change::SaveRoute(Route { name, .. })) =
                    &change
                {
                    // A live route replaced, deleted or turned unreadable
                    // leaves its claims in etcd unless this batch deletes
                    // them: they are orphans unless a route explains them.
                    if let Some(r) = cache.stored_route(name).filter(|r| r.is_live()) {
                        gone_live.push(r.clone());
                    }
                }
                if let Some(c) = change {
                    changes.push(c);
                }
            }
            for c in &changes {
                cache.apply_stored(c);
            }
            for r in gone_live {
                for p in &r.host_ports {
                    touched
                        .entry((r.server.clone(), *p))
                        .or_insert_with(|| Some(r.name.clone()));
                }
            }
            let claims = claim_changes(&cache.cluster, touched);
            for c in &claims {
                cache.apply_stored(c);
            }
        });
        if policy_touched {
            let active = shared.read().active_policy.clone();
            shared.policy.send_replace(active);
        }
        *revision = last;
        shared.status.send_modify(|s| s.revision = last);
    }
}
