//! Routes follow containers (SPEC section 5): one events stream per up
//! server; a container's `destroy` (Docker) or `remove` (podman) marks its
//! route removed and frees its host ports. When a watcher (re)starts it
//! first lists the server's containers and frees the live routes on that
//! server whose container is gone (removed while the proxy was away or the
//! stream was down), except a name being created right now.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use flocker_core::ContainerName;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::backend;
use super::forward::percent_encode;
use super::{Backend, Proxy};
use crate::store::{Saved, Store};

/// Which servers have a watcher, and the time of the last event each saw
/// (a restarted watcher asks for the events since then).
#[derive(Default)]
pub struct Watchers {
    running: Mutex<HashSet<String>>,
    last: Mutex<HashMap<String, i64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a watcher on each of `up` that has none.
pub fn ensure(p: &Arc<Proxy>, up: &[Backend]) {
    for b in up {
        if !lock(&p.watchers.running).insert(b.hostname.clone()) {
            continue;
        }
        let p = p.clone();
        let b = b.clone();
        tokio::spawn(async move {
            watch(&p, &b).await;
            lock(&p.watchers.running).remove(&b.hostname);
        });
    }
}

async fn watch(p: &Proxy, b: &Backend) {
    let since = lock(&p.watchers.last).get(&b.hostname).copied();
    reconcile(p, b).await;
    let filters = percent_encode(r#"{"type":["container"]}"#);
    let mut path = format!("/events?filters={filters}");
    if let Some(t) = since {
        path.push_str(&format!("&since={t}"));
    }
    let Ok(req) = backend::request(Method::GET, &b.dial, &path, None) else {
        return;
    };
    let answer = match backend::send(&b.dial, req, false, None).await {
        Ok(a) if a.response.status() == StatusCode::OK => a,
        _ => return,
    };
    let backend::Answer { response, conn } = answer;
    let _conn = conn;
    let mut body = response.into_body();
    let mut values = backend::JsonValues::new(1 << 20);
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let (events, error) = values.push(&data);
        for e in events {
            if let Some(t) = e.get("time").and_then(Value::as_i64) {
                lock(&p.watchers.last).insert(b.hostname.clone(), t);
            }
            on_event(p, b, &e).await;
        }
        if let Some(e) = error {
            eprintln!("flocker proxy: {}'s events: {e}", b.hostname);
            return;
        }
    }
}

async fn on_event(p: &Proxy, b: &Backend, e: &Value) {
    let action = e
        .get("Action")
        .or_else(|| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let id = e
        .pointer("/Actor/ID")
        .or_else(|| e.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = e
        .pointer("/Actor/Attributes/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match action {
        "destroy" | "remove" => {
            // The event may come after a new container took the name (`rm
            // -f x` then `run --name x`): free the route only when no
            // container of that name is on the server now, and no create of
            // it is under way (its route is saved before the server has the
            // container, so the lookup alone would free the new route).
            let creating = || p.pulls.is_creating(name);
            if !name.is_empty() && !creating() && !exists_on(p, b, name).await && !creating() {
                route_gone(p, &b.hostname, name).await;
                p.locator.forget(name);
            }
            if !id.is_empty() {
                p.locator.forget(id);
            }
        }
        "create" if !name.is_empty() => p.locator.remember(id, name, &b.hostname),
        _ => {}
    }
}

/// Whether `b` has a container named `name` now (a server that does not
/// answer is taken to have it: nothing is freed on a guess).
async fn exists_on(p: &Proxy, b: &Backend, name: &str) -> bool {
    let path = format!("/containers/{name}/json");
    !matches!(
        backend::call(&b.dial, Method::GET, &path, None, p.call_timeout(), 4 << 20).await,
        Ok((StatusCode::NOT_FOUND, _))
    )
}

/// Frees the live routes on `b` whose container the server no longer has.
async fn reconcile(p: &Proxy, b: &Backend) {
    let Ok((StatusCode::OK, body)) = backend::call(
        &b.dial,
        Method::GET,
        "/containers/json?all=1",
        None,
        p.call_timeout(),
        64 << 20,
    )
    .await
    else {
        return;
    };
    let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&body) else {
        return;
    };
    let present: BTreeSet<String> = list
        .iter()
        .filter_map(|c| c.get("Names").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    let Ok(cluster) = p.cluster().await else {
        return;
    };
    let gone: Vec<String> = cluster
        .routes()
        .filter(|r| r.is_live() && r.server == b.hostname && !present.contains(&r.name))
        .map(|r| r.name.clone())
        .collect();
    drop(cluster);
    for name in gone {
        if p.pulls.is_creating(&name) {
            continue;
        }
        eprintln!(
            "flocker proxy: {name} no longer exists on {}: its route is freed",
            b.hostname
        );
        route_gone(p, &b.hostname, &name).await;
    }
}

/// Marks `name`'s route on `server` removed (freeing its ports), if it is
/// there and live.
pub async fn route_gone(p: &Proxy, server: &str, name: &str) {
    let live_here = p
        .cluster()
        .await
        .ok()
        .and_then(|c| c.live_route(name).map(|r| r.server == server))
        .unwrap_or(false);
    if !live_here {
        return;
    }
    if let Err(e) = p.app.store.remove_route(name).await {
        eprintln!("flocker proxy: cannot remove the route of {name}: {e}");
    }
}

/// After a rename on the server: the route moves to the new name (its
/// service follows the name), keeping its server and ports.
pub async fn rename_route(p: &Proxy, old: &str, new: &str) {
    let new = new.trim_start_matches('/');
    let Some(route) = p
        .cluster()
        .await
        .ok()
        .and_then(|c| c.live_route(old).cloned())
    else {
        return;
    };
    let Ok(parsed) = ContainerName::parse(new) else {
        eprintln!("flocker proxy: {new} is not a name flocker can route; {old}'s route is kept");
        return;
    };
    let mut renamed = route.clone();
    renamed.name = new.to_string();
    renamed.service = parsed.service;
    // The old route holds the port claims: free them first, then claim
    // them under the new name.
    if let Err(e) = p.app.store.remove_route(old).await {
        eprintln!("flocker proxy: cannot rename the route of {old}: {e}");
        return;
    }
    match p.app.store.save_decision(&renamed).await {
        Ok(Saved::Saved) => {}
        Ok(Saved::Conflict(why)) => {
            eprintln!("flocker proxy: the route of {old} could not move to {new}: {why}")
        }
        Err(e) => eprintln!("flocker proxy: the route of {old} could not move to {new}: {e}"),
    }
}
