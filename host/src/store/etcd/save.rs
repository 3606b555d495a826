//! Saving a decision: the transaction plan, its compares, and what a conflict found.

#[allow(unused_imports)]
use super::*;

/// Whether the keys a failed save read back hold exactly what this save
/// writes: an earlier attempt of it was applied.
pub(super) fn is_ours(
    route: &Route,
    route_json: &str,
    checks: &[Check],
    found: &[Vec<KeyValue>],
) -> bool {
    checks.iter().zip(found).all(|(check, kvs)| {
        let value = kvs.first().map(KeyValue::value);
        match check {
            Check::Name(_) => value == Some(route_json.as_bytes()),
            Check::Port(_) => value == Some(route.name.as_bytes()),
            Check::Volume(_) => value == Some(route.server.as_bytes()),
        }
    }) && checks.len() == found.len()
}

/// Ends a save's overlay however the save ends, cancellation included.
pub(super) struct InFlight<'a> {
    pub(super) shared: &'a Shared,
    pub(super) id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.update(|c| c.end_pending(self.id));
    }
}

/// What a save must check and write, planned from the cache.
pub(super) struct Plan {
    pub(super) compares: Vec<Compare>,
    pub(super) puts: Vec<TxnOp>,
    /// Keys read back when the compares fail, to say what was taken.
    pub(super) checks: Vec<Check>,
}

pub(super) enum Check {
    Name(Option<i64>),
    Port(u16),
    Volume(String),
}

impl EtcdStore {
    pub(super) fn plan(&self, route: &Route, answer: Option<&Answer>) -> Result<Plan, Saved> {
        let cache = self.shared.read();
        let name = &route.name;
        let route_key = self.keys.route(name);
        let mut compares = Vec::new();
        let mut puts = Vec::new();
        let mut checks = Vec::new();
        let seen = match cache.stored_route(name) {
            Some(r) if r.is_live() => {
                return Err(Saved::Conflict(format!(
                    "name {name} is in use: live on {}",
                    r.server
                )))
            }
            Some(_) => cache.route_revs.get(name).copied(),
            None if cache.route_revs.contains_key(name) => {
                // A record the cache could not read: never overwrite it.
                return Err(Saved::Conflict(format!(
                    "name {name} has an unreadable route record"
                )));
            }
            None => None,
        };
        match seen {
            Some(rev) => compares.push(Compare::mod_revision(
                route_key.clone(),
                CompareOp::Equal,
                rev,
            )),
            None => compares.push(Compare::version(route_key.clone(), CompareOp::Equal, 0)),
        }
        checks.push(Check::Name(seen));
        for v in named_volumes(route) {
            let key = self.keys.volume(v);
            match cache.stored_volume(v) {
                Some(s) if s == route.server => {
                    compares.push(Compare::value(key, CompareOp::Equal, s));
                }
                Some(s) => {
                    return Err(Saved::Conflict(format!(
                        "volume {v} is held by server {s}, not {}",
                        route.server
                    )))
                }
                None => {
                    compares.push(Compare::version(key.clone(), CompareOp::Equal, 0));
                    puts.push(TxnOp::put(key, route.server.as_str(), None));
                }
            }
            checks.push(Check::Volume(v.to_string()));
        }
        if route.is_live() {
            let mut ports = route.host_ports.clone();
            ports.sort_unstable();
            ports.dedup();
            for p in ports {
                let key = self.keys.port(&route.server, p);
                compares.push(Compare::version(key.clone(), CompareOp::Equal, 0));
                puts.push(TxnOp::put(key, name.as_str(), None));
                checks.push(Check::Port(p));
            }
        }
        puts.push(TxnOp::put(route_key, route.to_value().to_string(), None));
        let answer_key = self.keys.answer(name);
        puts.push(match answer {
            Some(a) => TxnOp::put(answer_key, a.to_text(), None),
            // An answer of an earlier life of the name is not this one.
            None => TxnOp::delete(answer_key, None),
        });
        Ok(Plan {
            compares,
            puts,
            checks,
        })
    }

    /// After a save whose every attempt went unanswered: whether the route
    /// key holds exactly this save's route (then it was applied: the
    /// transaction is whole or absent). A failed read says no.
    pub(super) async fn read_back(&self, route: &Route, route_json: &str) -> bool {
        let key = self.keys.route(&route.name);
        let Ok(kvs) = self.get("read back route", key, None).await else {
            return false;
        };
        match kvs.first().filter(|kv| kv.value() == route_json.as_bytes()) {
            Some(kv) => {
                self.settle(kv.mod_revision()).await;
                true
            }
            None => false,
        }
    }

    pub(super) fn check_key(&self, route: &Route, check: &Check) -> String {
        match check {
            Check::Name(_) => self.keys.route(&route.name),
            Check::Port(p) => self.keys.port(&route.server, *p),
            Check::Volume(v) => self.keys.volume(v),
        }
    }
}

/// Says what a failed save found taken.
pub(super) fn describe_conflict(
    route: &Route,
    checks: &[Check],
    found: &[Vec<KeyValue>],
) -> String {
    let mut taken = Vec::new();
    for (check, kvs) in checks.iter().zip(found) {
        let kv = kvs.first();
        let value = kv.map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
        match check {
            Check::Name(seen) => {
                if let Some(kv) = kv {
                    if Some(kv.mod_revision()) != *seen {
                        let state = value
                            .as_deref()
                            .and_then(|t| serde_json::from_str::<Value>(t).ok())
                            .and_then(|v| v.get("state").and_then(Value::as_str).map(String::from))
                            .unwrap_or_else(|| "unknown".into());
                        taken.push(format!(
                            "name {} was saved by another writer (state {state})",
                            route.name
                        ));
                    }
                } else if seen.is_some() {
                    taken.push(format!("route {} was deleted meanwhile", route.name));
                }
            }
            Check::Port(p) => {
                if let Some(holder) = value {
                    taken.push(format!(
                        "host port {p} on {} is held by {holder}",
                        route.server
                    ));
                }
            }
            Check::Volume(v) => {
                if let Some(holder) = value.filter(|h| *h != route.server) {
                    taken.push(format!("volume {v} is held by server {holder}"));
                }
            }
        }
    }
    if taken.is_empty() {
        "state changed meanwhile".into()
    } else {
        taken.join("; ")
    }
}
