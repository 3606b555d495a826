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
            let held = cluster
                .live_route(holder)
                .is_some_and(|r| r.host_ports.iter().any(|h| port_key(&r.server, *h) == *key));
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
            let read = parse_json(&key, v.value()).and_then(|value| {
                Change::from_value(&value, &key).map_err(|e| corrupt(key.clone(), e))
            });
            if let Err(e) = read {
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
}
