//! Bounded growth (issue 11, F12): which removed routes `routes prune`
//! deletes, and the removal time a route record carries for it.
//!
//! A removed route is history: the volume claim (its own record) is what
//! pins a volume's data to a server, so deleting the route loses nothing a
//! decision needs. The time of removal is kept in the route record itself,
//! as `removed_at` (seconds since the epoch), added when `routes rm` marks
//! it removed; the engine ignores the key. A record removed before this
//! key existed has no time and counts as older than any `--older-than`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flocker_core::Route;
use serde_json::Value;

/// The key of a route record holding the time it was removed.
pub const REMOVED_AT: &str = "removed_at";

/// What [`super::Store::prune_routes`] deletes: removed routes whose name
/// starts with `name_prefix` ("" for all), removed at least `older_than`
/// ago (None: whenever). A live route is never deleted.
#[derive(Debug, Clone, Default)]
pub struct Prune {
    pub older_than: Option<Duration>,
    pub name_prefix: String,
}

/// The outcome of [`super::Store::release_volume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The claim is gone; the volume was held by this server.
    Released { server: String },
    /// No claim by that name.
    NotClaimed,
    /// Live routes use the volume (their names); nothing was released.
    InUse(Vec<String>),
}

/// Seconds since the epoch, by this host's clock.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The record text of `route` marked removed at `now`.
pub fn removed_record(route: &Route, now: u64) -> String {
    let mut removed = route.clone();
    removed.state = flocker_core::REMOVED.to_string();
    let mut value = removed.to_value();
    if let Some(o) = value.as_object_mut() {
        o.insert(REMOVED_AT.to_string(), Value::from(now));
    }
    value.to_string()
}

impl Prune {
    /// Whether the route record `text` of `name` is one to delete at `now`.
    /// A record that does not parse is not touched (`store check` reports it).
    pub fn selects(&self, name: &str, text: &str, now: u64) -> bool {
        if !name.starts_with(self.name_prefix.as_str()) {
            return false;
        }
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return false;
        };
        let Ok(route) = Route::from_value(&value, Some(name), name) else {
            return false;
        };
        if route.is_live() {
            return false;
        }
        match (
            self.older_than,
            value.get(REMOVED_AT).and_then(Value::as_u64),
        ) {
            (None, _) | (Some(_), None) => true,
            (Some(age), Some(at)) => now.saturating_sub(at) >= age.as_secs(),
        }
    }
}

/// The live routes of `cluster` that use the named volume `volume`.
pub fn volume_users(cluster: &flocker_core::Cluster, volume: &str) -> Vec<String> {
    cluster
        .routes()
        .filter(|r| r.is_live() && super::named_volumes(r).contains(&volume))
        .map(|r| r.name.clone())
        .collect()
}
