//! Each write is one transaction: inventory, routes, policy modules.

#[allow(unused_imports)]
use super::*;

impl Inner {
    pub(super) fn put_servers(&self, servers: &[Server]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut inv = tried!(self, txn.open_table(INVENTORY))?;
            let mut changes = Vec::new();
            for s in servers {
                let text = s.to_value().to_string();
                tried!(self, inv.insert(s.hostname.as_str(), text.as_str()))?;
                changes.push(Change::UpsertServer(s.clone()));
            }
            Ok(((), changes))
        })
    }

    pub(super) fn remove_server(&self, hostname: &str) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut inv = tried!(self, txn.open_table(INVENTORY))?;
            let existed = tried!(self, inv.remove(hostname))?.is_some();
            let changes = if existed {
                vec![Change::RemoveServer {
                    hostname: hostname.to_string(),
                }]
            } else {
                vec![]
            };
            Ok((existed, changes))
        })
    }

    pub(super) fn save_decision(
        &self,
        route: &Route,
        answer: Option<&Answer>,
    ) -> Result<Saved, StoreError> {
        self.write(|txn| self.save_in(txn, route, answer))
    }

    pub(super) fn answer(&self, name: &str) -> Result<Option<Answer>, StoreError> {
        let txn = self.begin_read()?;
        let answers = tried!(self, txn.open_table(ANSWERS))?;
        let Some(text) = tried!(self, answers.get(name))? else {
            return Ok(None);
        };
        records::read_answer(&format!("answers/{name}"), text.value()).map(Some)
    }

    /// Checks and writes one route in `txn` (see [`Store::save_decision`]);
    /// nothing is written on a conflict.
    pub(super) fn save_in(
        &self,
        txn: &WriteTransaction,
        route: &Route,
        answer: Option<&Answer>,
    ) -> Result<(Saved, Vec<Change>), StoreError> {
        // The limits etcd has, so both stores take the same saves.
        crate::store::storable::check(route, answer, crate::store::storable::MAX_SAVE_OPS)?;
        {
            let mut routes = tried!(self, txn.open_table(ROUTES))?;
            let mut volumes = tried!(self, txn.open_table(VOLUMES))?;
            let mut ports = tried!(self, txn.open_table(PORTS))?;
            if let Some(old) = tried!(self, routes.get(route.name.as_str()))? {
                let old = read_route(&route.name, old.value())?;
                if old.is_live() {
                    return Ok((
                        Saved::Conflict(format!(
                            "name {} is already live on {}",
                            route.name, old.server
                        )),
                        vec![],
                    ));
                }
            }
            let mut claims = Vec::new();
            for v in named_volumes(route) {
                match tried!(self, volumes.get(v))? {
                    Some(s) if s.value() != route.server => {
                        return Ok((
                            Saved::Conflict(format!(
                                "volume {v} is held by {}, not {}",
                                s.value(),
                                route.server
                            )),
                            vec![],
                        ));
                    }
                    Some(_) => {}
                    None => claims.push(v),
                }
            }
            let live = route.is_live();
            // The name has no live route, so a claim that names it already
            // was an orphan: the save explains it from now on.
            let mut adopted = Vec::new();
            if live {
                for host in &route.host_ports {
                    let key = port_key(&route.server, *host);
                    if let Some(holder) = tried!(self, ports.get(key.as_str()))? {
                        if holder.value() == route.name {
                            adopted.push(Change::ReleasePort {
                                server: route.server.clone(),
                                port: *host,
                            });
                        } else {
                            return Ok((
                                Saved::Conflict(format!(
                                    "port {host} on {} is held by {}",
                                    route.server,
                                    holder.value()
                                )),
                                vec![],
                            ));
                        }
                    }
                }
            }
            let text = route.to_value().to_string();
            tried!(self, routes.insert(route.name.as_str(), text.as_str()))?;
            let mut answers = tried!(self, txn.open_table(ANSWERS))?;
            match answer {
                Some(a) => {
                    tried!(
                        self,
                        answers.insert(route.name.as_str(), a.to_text().as_str())
                    )?;
                }
                // An answer of an earlier life of the name is not this one.
                None => {
                    tried!(self, answers.remove(route.name.as_str()))?;
                }
            }
            let mut changes = adopted;
            changes.push(Change::SaveRoute(route.clone()));
            for v in claims {
                tried!(self, volumes.insert(v, route.server.as_str()))?;
                changes.push(Change::ClaimVolume {
                    volume: v.to_string(),
                    server: route.server.clone(),
                });
            }
            if live {
                for host in &route.host_ports {
                    let key = port_key(&route.server, *host);
                    tried!(self, ports.insert(key.as_str(), route.name.as_str()))?;
                }
            }
            Ok((Saved::Saved, changes))
        }
    }

    pub(super) fn remove_route(&self, name: &str) -> Result<Option<Route>, StoreError> {
        self.write(|txn| {
            let mut routes = tried!(self, txn.open_table(ROUTES))?;
            let mut ports = tried!(self, txn.open_table(PORTS))?;
            let old = match tried!(self, routes.get(name))? {
                None => return Ok((None, vec![])),
                Some(text) => read_route(name, text.value())?,
            };
            if !old.is_live() {
                return Ok((Some(old), vec![]));
            }
            let text = super::super::prune::removed_record(&old, super::super::prune::now_secs());
            tried!(self, routes.insert(name, text.as_str()))?;
            tried!(self, tried!(self, txn.open_table(ANSWERS))?.remove(name))?;
            for host in &old.host_ports {
                let key = port_key(&old.server, *host);
                let holder = tried!(self, ports.get(key.as_str()))?.map(|h| h.value() == name);
                if holder == Some(true) {
                    tried!(self, ports.remove(key.as_str()))?;
                }
            }
            Ok((
                Some(old),
                vec![Change::RemoveRoute {
                    name: name.to_string(),
                }],
            ))
        })
    }

    pub(super) fn policy_push(
        &self,
        module: &[u8],
        record: &PolicyRecord,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut modules = tried!(self, txn.open_table(POLICY_MODULES))?;
            tried!(self, modules.insert(record.digest.as_str(), module))?;
            let mut history = tried!(self, txn.open_table(POLICY_HISTORY))?;
            let next = match tried!(self, history.last())? {
                Some((k, _)) => k.value() + 1,
                None => 1,
            };
            tried!(self, history.insert(next, record.to_text().as_str()))?;
            let mut meta = tried!(self, txn.open_table(META))?;
            tried!(self, meta.insert(POLICY_ACTIVE, record.digest.as_str()))?;
        }
        tried!(self, txn.commit())
    }

    pub(super) fn policy_history(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let txn = self.begin_read()?;
        let history = tried!(self, txn.open_table(POLICY_HISTORY))?;
        let mut out = Vec::new();
        for item in tried!(self, history.iter())? {
            let (k, v) = tried!(self, item)?;
            let key = format!("policy_history/{}", k.value());
            out.push(PolicyRecord::from_text(&key, v.value().as_bytes())?);
        }
        Ok(out)
    }

    pub(super) fn policy_active(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let txn = self.begin_read()?;
        let meta = tried!(self, txn.open_table(META))?;
        let Some(digest) = tried!(self, meta.get(POLICY_ACTIVE))? else {
            return Ok(None);
        };
        let digest = digest.value().to_string();
        let modules = tried!(self, txn.open_table(POLICY_MODULES))?;
        match tried!(self, modules.get(digest.as_str()))? {
            Some(bytes) => Ok(Some((digest, bytes.value().to_vec()))),
            None => Err(StoreError::corrupt(
                "meta/policy_active",
                format!("names {digest}, which is not stored"),
            )),
        }
    }

    pub(super) fn policy_active_digest(&self) -> Result<Option<String>, StoreError> {
        let txn = self.begin_read()?;
        let meta = tried!(self, txn.open_table(META))?;
        let digest = tried!(self, meta.get(POLICY_ACTIVE))?;
        Ok(digest.map(|d| d.value().to_string()))
    }

    pub(super) fn policy_activate(
        &self,
        digest: &str,
        expected: Option<&str>,
    ) -> Result<(), StoreError> {
        // The active digest is re-read inside the write transaction, which
        // redb holds for one writer at a time: a push cannot land between
        // this check and the write.
        let txn = self.begin_write()?;
        {
            let mut meta = tried!(self, txn.open_table(META))?;
            let active = tried!(self, meta.get(POLICY_ACTIVE))?.map(|d| d.value().to_string());
            if active.as_deref() != expected {
                return Err(active_changed(expected, active.as_deref()));
            }
            let modules = tried!(self, txn.open_table(POLICY_MODULES))?;
            if tried!(self, modules.get(digest))?.is_none() {
                return Err(StoreError::NotFound(format!(
                    "no policy module with digest {digest} was pushed"
                )));
            }
            tried!(self, meta.insert(POLICY_ACTIVE, digest))?;
        }
        tried!(self, txn.commit())
    }
}
