//! `flocker store check` on etcd: do the records agree, and `--repair`
//! of the port claims no live route explains.

#[allow(unused_imports)]
use super::*;

/// A port claim as read, with the revision a repair compares against.
struct Claim {
    key: String,
    server: String,
    port: u16,
    holder: String,
    revision: i64,
}

impl EtcdStore {
    /// Checks that the records agree (every live route's port claims are
    /// present and name it, every claim has a live route holding it, every
    /// named volume of a live route is claimed for its server, every record
    /// parses), reading routes, claims and volumes at one revision. With
    /// `repair`, deletes each orphan claim in a transaction of its own that
    /// applies only while the claim and its holder's route key are as read:
    /// a host that saves or removes meanwhile is never undone.
    pub async fn check_repair(&self, repair: bool) -> Result<Checked, StoreError> {
        let prefix = || Some(GetOptions::new().with_prefix());
        let txn = Txn::new().and_then(vec![
            TxnOp::get(self.keys.routes(), prefix()),
            TxnOp::get(self.keys.ports(), prefix()),
            TxnOp::get(self.keys.volumes(), prefix()),
        ]);
        let resp = self.txn("read records to check", txn).await?;
        let mut gets = txn_gets(&resp).into_iter();
        let (routes, ports, volumes) = (
            gets.next().unwrap_or_default(),
            gets.next().unwrap_or_default(),
            gets.next().unwrap_or_default(),
        );
        let mut problems = Vec::new();
        let mut cluster = Cluster::new();
        let mut route_revs = HashMap::new();
        for kv in &routes {
            let (key, text) = match utf8(kv) {
                Ok(kt) => kt,
                Err((key, reason)) => {
                    problems.push(format!("corrupt record at {key}: {reason}"));
                    continue;
                }
            };
            let Kind::Route(name) = self.keys.kind(key) else {
                problems.push(format!("unexpected key {key}"));
                continue;
            };
            route_revs.insert(name.to_string(), kv.mod_revision());
            match read_route(key, name, text) {
                Ok(r) => cluster.apply_change(Change::SaveRoute(r)),
                Err(e) => problems.push(e.to_string()),
            }
        }
        for kv in &volumes {
            if let (Kind::Volume(v), Ok(server)) =
                (self.keys.kind(kv.key_str().unwrap_or("")), kv.value_str())
            {
                cluster.apply_change(Change::ClaimVolume {
                    volume: v.to_string(),
                    server: server.to_string(),
                });
            }
        }
        let mut claims = BTreeMap::new();
        let mut orphans = Vec::new();
        for kv in &ports {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let holder = String::from_utf8_lossy(kv.value()).into_owned();
            let Kind::Port(server, port) = self.keys.kind(&key) else {
                problems.push(format!("port claim key {key} is not .../<hostname>/<port>"));
                continue;
            };
            claims.insert((server.to_string(), port), holder.clone());
            if !claim_explained(&cluster, server, port, &holder) {
                problems.push(format!(
                    "port claim {server}/{port} names {holder}, which has no live route holding it"
                ));
                orphans.push(Claim {
                    server: server.to_string(),
                    port,
                    key,
                    holder,
                    revision: kv.mod_revision(),
                });
            }
        }
        for r in cluster.routes().filter(|r| r.is_live()) {
            for p in &r.host_ports {
                match claims.get(&(r.server.clone(), *p)) {
                    Some(h) if *h == r.name => {}
                    Some(h) => problems.push(format!(
                        "route {} holds host port {}/{p}, but the claim names {h}",
                        r.name, r.server
                    )),
                    None => problems.push(format!(
                        "route {} holds host port {}/{p}, which is not claimed",
                        r.name, r.server
                    )),
                }
            }
            for v in named_volumes(r) {
                match cluster.volume_server(v) {
                    Some(s) if s == r.server => {}
                    other => problems.push(format!(
                        "route {} on {} uses volume {v}, claimed for {other:?}",
                        r.name, r.server
                    )),
                }
            }
        }
        let mut repaired = Vec::new();
        if repair {
            for o in orphans {
                if self.release_orphan(&o, route_revs.get(&o.holder)).await? {
                    repaired.push(format!(
                        "deleted port claim {}/{} (names {}; no live route holds it)",
                        o.server, o.port, o.holder
                    ));
                } else {
                    problems.push(format!(
                        "port claim {}/{} changed while it was repaired; left as it is",
                        o.server, o.port
                    ));
                }
            }
            if !repaired.is_empty() {
                // Re-check from the repaired records, as the file store does.
                let again = Box::pin(self.check_repair(false)).await?;
                return Ok(Checked {
                    problems: again.problems,
                    repaired,
                });
            }
        }
        Ok(Checked { problems, repaired })
    }

    /// Deletes one orphan claim if it and its holder's route key are still
    /// as read; false when either changed.
    async fn release_orphan(&self, o: &Claim, route_rev: Option<&i64>) -> Result<bool, StoreError> {
        let route_key = self.keys.route(&o.holder);
        let route_same = match route_rev {
            Some(rev) => Compare::mod_revision(route_key, CompareOp::Equal, *rev),
            None => Compare::version(route_key, CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when(vec![
                Compare::mod_revision(o.key.clone(), CompareOp::Equal, o.revision),
                route_same,
            ])
            .and_then(vec![TxnOp::delete(o.key.clone(), None)]);
        let (resp, maybe) = self.members.txn("repair port claim", txn).await?;
        if resp.succeeded() {
            self.settle(header_revision(&resp)).await;
            return Ok(true);
        }
        // A lost answer of an applied attempt: the claim is gone now.
        Ok(maybe
            && self
                .get("read port claim", o.key.clone(), None)
                .await?
                .is_empty())
    }
}
