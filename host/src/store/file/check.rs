//! `flocker store check`: do the records agree with each other?

#[allow(unused_imports)]
use super::*;

impl Inner {
    pub(super) fn check(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.begin_read()?;
        let mut problems = Vec::new();
        let cluster = self.load_noting(&txn, &mut |e| problems.push(e.to_string()))?;
        let ports = tried!(self, txn.open_table(PORTS))?;
        let mut claims = std::collections::BTreeMap::new();
        for item in tried!(self, ports.iter())? {
            let (k, v) = tried!(self, item)?;
            claims.insert(k.value().to_string(), v.value().to_string());
        }
        for r in cluster.routes().filter(|r| r.is_live()) {
            for host in &r.host_ports {
                let key = port_key(&r.server, *host);
                match claims.get(&key) {
                    Some(holder) if holder == &r.name => {}
                    Some(holder) => problems.push(format!(
                        "route {} holds host port {key}, but the claim names {holder}",
                        r.name
                    )),
                    None => problems.push(format!(
                        "route {} holds host port {key}, which is not claimed",
                        r.name
                    )),
                }
            }
            for v in named_volumes(r) {
                match cluster.volume_server(v) {
                    Some(s) if s == r.server => {}
                    other => problems.push(format!(
                        "route {} on {} uses volume {v}, claimed for {:?}",
                        r.name, r.server, other
                    )),
                }
            }
        }
        for (key, holder) in &claims {
            let held = parse_port_key(key)
                .is_some_and(|(server, port)| claim_explained(&cluster, server, port, holder));
            if !held {
                problems.push(format!(
                    "port claim {key} names {holder}, which has no live route holding it"
                ));
            }
        }
        let generation = self.generation_in(&txn)?;
        let log = tried!(self, txn.open_table(CHANGELOG))?;
        for item in tried!(self, log.iter())? {
            let (k, v) = tried!(self, item)?;
            let key = format!("changelog/{}", k.value());
            if let Err(e) = records::read_change(&key, v.value()) {
                problems.push(format!("{e} (handles rebuild from the tables past it)"));
            }
        }
        if let Some((k, _)) = tried!(self, log.last())? {
            if k.value() != generation {
                problems.push(format!(
                    "generation is {generation} but the last change is {}",
                    k.value()
                ));
            }
        }
        Ok(problems)
    }

    /// Deletes every port claim no live route explains, in one write
    /// transaction (which no save can interleave with); returns a line for
    /// each. The cache forgets them through the changelog.
    pub(super) fn repair(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.begin_write()?;
        let mut changes = Vec::new();
        let mut repaired = Vec::new();
        {
            let routes = tried!(self, txn.open_table(ROUTES))?;
            let mut ports = tried!(self, txn.open_table(PORTS))?;
            let mut orphans = Vec::new();
            for item in tried!(self, ports.iter())? {
                let (k, v) = tried!(self, item)?;
                let (key, holder) = (k.value().to_string(), v.value().to_string());
                let route = match tried!(self, routes.get(holder.as_str()))? {
                    // An unreadable route record is not a live route.
                    Some(text) => read_route(&holder, text.value()).ok(),
                    None => None,
                };
                let held = match (parse_port_key(&key), &route) {
                    (Some((server, port)), Some(r)) => {
                        r.is_live() && r.server == server && r.host_ports.contains(&port)
                    }
                    _ => false,
                };
                if !held {
                    orphans.push((key, holder));
                }
            }
            for (key, holder) in orphans {
                tried!(self, ports.remove(key.as_str()))?;
                // A key that is not `<hostname>/<port>` was never in the cache.
                if let Some((server, port)) = parse_port_key(&key) {
                    changes.push(Change::ReleasePort {
                        server: server.to_string(),
                        port,
                    });
                }
                repaired.push(format!(
                    "deleted port claim {key} (names {holder}; no live route holds it)"
                ));
            }
        }
        if repaired.is_empty() {
            tried!(self, txn.abort())?;
            return Ok(repaired);
        }
        if !changes.is_empty() {
            self.record(&txn, &changes)?;
        }
        tried!(self, txn.commit())?;
        // The cache (and its followers) catch up through the changelog.
        self.fresh_cluster()?;
        Ok(repaired)
    }
}
