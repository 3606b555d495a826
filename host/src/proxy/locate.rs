//! Which server holds a container, an exec instance or an image.
//!
//! A container is looked up, in order: by the route store (containers made
//! through any flocker proxy, by name); in a cache filled from creates,
//! lists and lookups (by id, unique id prefix or name); then by asking every
//! server at once. One answer is cached; none is Docker's 404; several (a
//! name used outside flocker on two servers) is a 409 naming them. Asking
//! on a miss is cheap at this cluster size and never stale, which is where
//! classic Swarm's full cache went wrong when an event stream broke.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use hyper::Method;
use serde_json::Value;

use super::backend;
use super::error::ProxyError;
use super::{Backend, Proxy};

/// The largest inspect answer read.
const INSPECT_CAP: usize = 4 << 20;

#[derive(Debug, Clone)]
struct Known {
    server: String,
    name: String,
}

/// The proxy's memory of where containers and exec instances are.
#[derive(Default)]
pub struct Locator {
    /// full id -> where
    ids: Mutex<HashMap<String, Known>>,
    /// exec id -> hostname
    execs: Mutex<HashMap<String, String>>,
}

/// Where a container is, and what the proxy knows of it.
#[derive(Debug, Clone)]
pub struct Located {
    pub backend: Backend,
    /// Its name without the leading `/`, when known.
    pub name: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Locator {
    /// Remembers a container (`name` with or without its leading `/`).
    pub fn remember(&self, id: &str, name: &str, server: &str) {
        if id.is_empty() {
            return;
        }
        lock(&self.ids).insert(
            id.to_string(),
            Known {
                server: server.to_string(),
                name: name.trim_start_matches('/').to_string(),
            },
        );
    }

    /// Forgets what is known under `x` (an id, prefix or name).
    pub fn forget(&self, x: &str) {
        let x = x.trim_start_matches('/');
        lock(&self.ids).retain(|id, k| !(id.starts_with(x) || k.name == x));
    }

    pub fn remember_exec(&self, exec_id: &str, server: &str) {
        lock(&self.execs).insert(exec_id.to_string(), server.to_string());
    }

    /// (server, name) for an exact id, a name, or a unique id prefix.
    fn lookup(&self, x: &str) -> Option<(String, String)> {
        let ids = lock(&self.ids);
        if let Some(k) = ids.get(x) {
            return Some((k.server.clone(), k.name.clone()));
        }
        let mut by_name = ids.values().filter(|k| k.name == x);
        if let (Some(k), None) = (by_name.next(), by_name.next()) {
            return Some((k.server.clone(), k.name.clone()));
        }
        let mut by_prefix = ids.iter().filter(|(id, _)| id.starts_with(x));
        match (by_prefix.next(), by_prefix.next()) {
            (Some((_, k)), None) => Some((k.server.clone(), k.name.clone())),
            _ => None,
        }
    }
}

/// Finds the server of container `x` (id, id prefix or name); see the
/// module doc.
pub async fn container(p: &Proxy, version: &str, x: &str) -> Result<Located, ProxyError> {
    let x = x.trim_start_matches('/');
    let cluster = p.cluster().await?;
    if let Some(route) = cluster.live_route(x) {
        if let Ok(backend) = p.backend(&route.server).await {
            return Ok(Located {
                backend,
                name: Some(x.to_string()),
            });
        }
    }
    drop(cluster);
    if let Some((server, name)) = p.locator.lookup(x) {
        if let Ok(backend) = p.backend(&server).await {
            return Ok(Located {
                backend,
                name: Some(name),
            });
        }
    }
    ask_every_server(p, version, x).await
}

async fn ask_every_server(p: &Proxy, version: &str, x: &str) -> Result<Located, ProxyError> {
    let backends = p.up_backends().await?;
    let path = format!("{version}/containers/{x}/json");
    let answers =
        super::call_each(&backends, Method::GET, &path, p.call_timeout(), INSPECT_CAP).await;
    let mut found = Vec::new();
    for (b, answer) in backends.iter().zip(answers) {
        if let Ok((StatusCode::OK, body)) = answer {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = v.get("Id").and_then(Value::as_str).unwrap_or_default();
            let name = v.get("Name").and_then(Value::as_str).unwrap_or_default();
            found.push((b.clone(), id.to_string(), name.to_string()));
        }
    }
    match found.len() {
        0 => Err(ProxyError::NoSuchContainer(x.to_string())),
        1 => {
            let (backend, id, name) = found.remove(0);
            p.locator.remember(&id, &name, &backend.hostname);
            let name = name.trim_start_matches('/').to_string();
            Ok(Located {
                backend,
                name: (!name.is_empty()).then_some(name),
            })
        }
        _ => Err(ProxyError::Ambiguous {
            what: x.to_string(),
            servers: found
                .iter()
                .map(|(b, _, _)| b.hostname.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The name of container `x` on `b`, by asking it.
pub async fn name_on(p: &Proxy, version: &str, b: &Backend, x: &str) -> Option<String> {
    let path = format!("{version}/containers/{x}/json");
    match backend::call(
        &b.dial,
        Method::GET,
        &path,
        None,
        p.call_timeout(),
        INSPECT_CAP,
    )
    .await
    {
        Ok((StatusCode::OK, body)) => {
            let v: Value = serde_json::from_slice(&body).ok()?;
            let name = v.get("Name")?.as_str()?.trim_start_matches('/').to_string();
            Some(name)
        }
        _ => None,
    }
}

/// Reads an exec create's 201 to remember which server the exec id is on,
/// and passes the answer on.
pub async fn remember_exec(
    p: &Proxy,
    b: &Backend,
    resp: Response<Body>,
) -> Result<Response<Body>, ProxyError> {
    if resp.status() != StatusCode::CREATED {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|e| ProxyError::Backend(format!("reading the exec answer: {e}")))?;
    if let Some(id) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("Id").and_then(Value::as_str).map(str::to_string))
    {
        p.locator.remember_exec(&id, &b.hostname);
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The server of exec instance `id`: remembered from its create, else
/// asked of every server.
pub async fn exec(p: &Proxy, version: &str, id: &str) -> Result<Backend, ProxyError> {
    let known = lock(&p.locator.execs).get(id).cloned();
    if let Some(server) = known {
        if let Ok(b) = p.backend(&server).await {
            return Ok(b);
        }
    }
    let backends = p.up_backends().await?;
    let path = format!("{version}/exec/{id}/json");
    let answers =
        super::call_each(&backends, Method::GET, &path, p.call_timeout(), INSPECT_CAP).await;
    for (b, answer) in backends.into_iter().zip(answers) {
        if let Ok((StatusCode::OK, _)) = answer {
            p.locator.remember_exec(id, &b.hostname);
            return Ok(b);
        }
    }
    Err(ProxyError::NoSuchExec(id.to_string()))
}

/// The servers that have image `name`, in inventory order, with the
/// image's inspect answer from the first of them.
pub async fn image_servers_with_config(
    p: &Proxy,
    version: &str,
    name: &str,
) -> Result<(Vec<Backend>, Option<Value>), ProxyError> {
    let backends = p.up_backends().await?;
    let path = format!("{version}/images/{name}/json");
    let answers =
        super::call_each(&backends, Method::GET, &path, p.call_timeout(), INSPECT_CAP).await;
    let mut have = Vec::new();
    let mut config = None;
    for (b, answer) in backends.into_iter().zip(answers) {
        if let Ok((StatusCode::OK, body)) = answer {
            if config.is_none() {
                config = serde_json::from_slice::<Value>(&body).ok();
            }
            have.push(b);
        }
    }
    Ok((have, config))
}

/// The servers that have image `name`.
pub async fn image_servers(
    p: &Proxy,
    version: &str,
    name: &str,
) -> Result<Vec<Backend>, ProxyError> {
    Ok(image_servers_with_config(p, version, name).await?.0)
}
