//! Resident state: one warm instance holding the cluster as a snapshot
//! handle, so a decision sends only `{name, container, image}` and costs
//! what the inventory costs, not what the route table costs.

use flocker_core::{Change, Cluster};
use serde_json::{json, Value};

use super::instance::Instance;
use super::{Policy, PolicyError};

/// A warm instance of a [`Policy`] holding cluster state.
///
/// Calls take `&mut self`: an instance runs one call at a time. A host
/// shares one behind a mutex (as [`super::PolicyHost`] does) or keeps one
/// per worker. After a call fails with an error whose
/// [`PolicyError::poisons_instance`] is true, the state is gone: every
/// later call returns [`PolicyError::Refused`] until the owner builds a
/// new `Resident`.
pub struct Resident {
    policy: Policy,
    instance: Instance,
    handle: i32,
    poisoned: Option<String>,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resident")
            .field("policy", &self.policy.digest())
            .field("handle", &self.handle)
            .field("memory", &self.instance.memory_size())
            .finish()
    }
}

/// Reads `{"<key>": n}` out of a state call's result, or the refusal.
fn count(call: &'static str, out: &str, key: &str) -> Result<i64, PolicyError> {
    let v: Value = serde_json::from_str(out).map_err(|e| PolicyError::BadResult {
        call,
        reason: format!("not JSON: {e}"),
    })?;
    if v.get("error").is_some() {
        return Err(PolicyError::Refused(out.to_string()));
    }
    v.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| PolicyError::BadResult {
            call,
            reason: format!("expected {{\"{key}\": n}}, got {out}"),
        })
}

impl Resident {
    /// Routes sent per `flocker_snapshot_apply` call while loading, so that
    /// each call stays well inside [`super::Limits::load_deadline`] and the
    /// JSON in flight stays small.
    pub const BATCH: usize = 2000;

    /// Loads a snapshot JSON (`{"inventory": [...], "routes": {...}}`) in
    /// one call.
    pub fn from_json(policy: &Policy, snapshot: &[u8]) -> Result<Resident, PolicyError> {
        let mut instance = policy.resident_instance()?;
        let (_, (ticks, deadline)) = policy.budgets();
        instance.set_budget(ticks, deadline);
        let out = instance.snapshot_load(snapshot)?;
        let handle = count("flocker_snapshot_load", &out, "handle")?;
        // Handles are u32 on the wasm side and travel as i32 bits.
        let handle = handle as u32 as i32;
        let mut resident = Resident {
            policy: policy.clone(),
            instance,
            handle,
            poisoned: None,
        };
        resident.decision_budget();
        Ok(resident)
    }

    /// Loads `cluster`: the inventory and volume claims in one call, then
    /// the routes in batches of [`Resident::BATCH`].
    pub fn load(policy: &Policy, cluster: &Cluster) -> Result<Resident, PolicyError> {
        let volumes: serde_json::Map<String, Value> = cluster
            .volumes()
            .map(|(v, s)| (v.to_string(), json!(s)))
            .collect();
        let mut claimed = serde_json::Map::new();
        for (hostname, port) in cluster.claimed_ports() {
            let ports = claimed.entry(hostname).or_insert_with(|| json!([]));
            if let Value::Array(ports) = ports {
                ports.push(json!(port));
            }
        }
        let head = json!({
            "inventory": cluster.servers().map(flocker_core::Server::to_value).collect::<Vec<_>>(),
            "routes": {"containers": {}, "volumes": volumes, "claimed_ports": claimed},
        });
        let mut resident = Resident::from_json(policy, head.to_string().as_bytes())?;
        let routes: Vec<_> = cluster.routes().collect();
        for chunk in routes.chunks(Self::BATCH) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|r| Change::SaveRoute((*r).clone()).to_value())
                .collect();
            resident.apply_json_budget(Value::Array(batch).to_string().as_bytes(), true)?;
        }
        Ok(resident)
    }

    fn decision_budget(&mut self) {
        let ((ticks, deadline), _) = self.policy.budgets();
        self.instance.set_budget(ticks, deadline);
    }

    fn load_budget(&mut self) {
        let (_, (ticks, deadline)) = self.policy.budgets();
        self.instance.set_budget(ticks, deadline);
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether a failed call left the state unusable; the reason if so.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Bytes of linear memory the instance holds.
    pub fn memory_size(&self) -> usize {
        self.instance.memory_size()
    }

    fn check(&self) -> Result<(), PolicyError> {
        match &self.poisoned {
            Some(why) => Err(PolicyError::Refused(format!(
                "this resident state is gone after an earlier failure ({why}); load it again"
            ))),
            None => Ok(()),
        }
    }

    fn note<T>(&mut self, r: Result<T, PolicyError>) -> Result<T, PolicyError> {
        if let Err(e) = &r {
            if e.poisons_instance() {
                self.poisoned = Some(e.to_string());
            }
        }
        r
    }

    /// Decides `{name, container, image}` against the state; the SPEC
    /// output JSON, decision or `{"error": ...}`, is `Ok`.
    pub fn decide(&mut self, request: &[u8]) -> Result<String, PolicyError> {
        self.check()?;
        let r = self.instance.snapshot_decide(self.handle, request);
        self.note(r)
    }

    /// Applies changes, all or nothing. An empty slice is a no-op.
    pub fn apply(&mut self, changes: &[Change]) -> Result<(), PolicyError> {
        match changes {
            [] => Ok(()),
            [one] => self.apply_json(one.to_value().to_string().as_bytes()),
            many => {
                let batch = Value::Array(many.iter().map(Change::to_value).collect());
                self.apply_json(batch.to_string().as_bytes())
            }
        }
    }

    /// Applies one change record or an array of them (JSON), all or nothing.
    /// A record of the wrong shape is [`PolicyError::Refused`] and changes
    /// nothing.
    pub fn apply_json(&mut self, changes: &[u8]) -> Result<(), PolicyError> {
        self.apply_json_budget(changes, false)
    }

    fn apply_json_budget(&mut self, changes: &[u8], loading: bool) -> Result<(), PolicyError> {
        self.check()?;
        if loading {
            self.load_budget();
        }
        let r = self
            .instance
            .snapshot_apply(self.handle, changes)
            .and_then(|out| count("flocker_snapshot_apply", &out, "applied"));
        if loading {
            self.decision_budget();
        }
        self.note(r).map(|_| ())
    }

    /// The state as snapshot JSON (`{"inventory", "routes"}`).
    pub fn export(&mut self) -> Result<String, PolicyError> {
        self.check()?;
        self.load_budget();
        let r = self.instance.snapshot_export(self.handle);
        self.decision_budget();
        self.note(r)
    }
}
