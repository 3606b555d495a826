//! Calls answered from every server at once: the proxy's own `/_ping` and
//! `/version`, `/info` totals, and the container, image, network and
//! volume lists. The merged event stream is [`super::events`], pulls to
//! every server [`super::pull`].
//!
//! A server that does not answer is left out of a combined answer (and is
//! soon decided on as down, [`super::health`]); the others still answer.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use serde_json::{json, Value};

use super::error::ProxyError;
use super::forward::json as json_response;
use super::{Backend, Proxy};

/// The largest list answer read from one server.
const LIST_CAP: usize = 64 << 20;

/// `HEAD`/`GET /_ping`: answered by the proxy with the API version every
/// server supports.
pub fn ping(p: &Proxy, method: &Method) -> Response<Body> {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from("OK")
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&p.health.api_version()) {
        h.insert("api-version", v);
    }
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `GET /version`: flocker's own, with one component per server.
pub fn version(p: &Proxy) -> Response<Body> {
    let versions = p.health.versions();
    let mut components = vec![json!({
        "Name": "flocker proxy",
        "Version": env!("CARGO_PKG_VERSION"),
        "Details": {"ApiVersion": p.health.api_version()},
    })];
    let mut kernel = Value::Null;
    for (hostname, v) in &versions {
        if kernel.is_null() {
            kernel = v.get("KernelVersion").cloned().unwrap_or(Value::Null);
        }
        components.push(json!({
            "Name": format!("server {hostname}"),
            "Version": v.get("Version").cloned().unwrap_or(Value::Null),
            "Details": {
                "ApiVersion": v.get("ApiVersion").cloned().unwrap_or(Value::Null),
                "MinAPIVersion": v.get("MinAPIVersion").cloned().unwrap_or(Value::Null),
            },
        }));
    }
    let body = json!({
        "Platform": {"Name": "flocker proxy"},
        "Components": components,
        "Version": concat!("flocker/", env!("CARGO_PKG_VERSION")),
        "ApiVersion": p.health.api_version(),
        "MinAPIVersion": p.health.min_api_version(),
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": std::env::consts::ARCH,
        "KernelVersion": kernel,
        "BuildTime": "",
    });
    json_response(StatusCode::OK, body.to_string())
}

/// Asks every up server the same small call; the servers that answered
/// 200 with JSON, in inventory order.
async fn ask_all(p: &Proxy, path: &str) -> Result<Vec<(Backend, Value)>, ProxyError> {
    let backends = p.up_backends().await?;
    let answers = super::call_each(&backends, Method::GET, path, p.call_timeout(), LIST_CAP).await;
    let mut out = Vec::new();
    for (b, answer) in backends.into_iter().zip(answers) {
        match answer {
            Ok((StatusCode::OK, body)) => match serde_json::from_slice::<Value>(&body) {
                Ok(v) => out.push((b, v)),
                Err(e) => eprintln!(
                    "flocker proxy: {} answered {path} with bad JSON: {e}",
                    b.hostname
                ),
            },
            Ok((status, _)) => eprintln!(
                "flocker proxy: {} answered {path} with {status}",
                b.hostname
            ),
            Err(e) => eprintln!("flocker proxy: {}: {path}: {e}", b.hostname),
        }
    }
    Ok(out)
}

pub(super) fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string())
}

/// `GET /info`: the first server's answer with the counts, CPUs and memory
/// summed over every server, flocker's name, and Swarm inactive (the CLI
/// checks it).
pub async fn info(p: &Proxy, version: &str) -> Result<Response<Body>, ProxyError> {
    let answers = ask_all(p, &format!("{version}/info")).await?;
    let mut out = answers
        .first()
        .and_then(|(_, v)| v.as_object().cloned())
        .unwrap_or_default();
    for key in [
        "Containers",
        "ContainersRunning",
        "ContainersPaused",
        "ContainersStopped",
        "Images",
        "NCPU",
        "MemTotal",
    ] {
        let total: u64 = answers
            .iter()
            .filter_map(|(_, v)| v.get(key).and_then(Value::as_u64))
            .sum();
        out.insert(key.into(), json!(total));
    }
    let servers = p.backends().await?;
    let status: Vec<Value> = servers
        .iter()
        .map(|b| {
            let state = if p.health.is_up(&b.hostname) {
                "up"
            } else {
                "down"
            };
            json!([b.hostname, format!("{state} {}", b.dial)])
        })
        .collect();
    out.insert("Name".into(), json!("flocker"));
    out.insert(
        "ServerVersion".into(),
        json!(concat!("flocker/", env!("CARGO_PKG_VERSION"))),
    );
    out.insert("SystemStatus".into(), Value::Array(status));
    out.insert(
        "Swarm".into(),
        json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
               "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
    );
    Ok(json_response(
        StatusCode::OK,
        Value::Object(out).to_string(),
    ))
}

/// `GET /containers/json`: every server's list with the client's query,
/// newest first, `limit` applied after the merge. A published port with no
/// or a wildcard IP shows the server's address, where it can be reached.
pub async fn containers(p: &Proxy, uri: &Uri) -> Result<Response<Body>, ProxyError> {
    let answers = ask_all(p, &path_and_query(uri)).await?;
    let mut all = Vec::new();
    for (b, v) in answers {
        let Value::Array(list) = v else { continue };
        for mut c in list {
            let id = c
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let name = c
                .pointer("/Names/0")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            p.locator.remember(&id, &name, &b.hostname);
            if let Some(Value::Array(ports)) = c.get_mut("Ports") {
                for port in ports {
                    let public = port.get("PublicPort").is_some_and(|v| !v.is_null());
                    let ip = port.get("IP").and_then(Value::as_str).unwrap_or("");
                    if public && (ip.is_empty() || ip == "0.0.0.0" || ip == "::") {
                        port["IP"] = json!(b.address);
                    }
                }
            }
            all.push(c);
        }
    }
    all.sort_by_key(|c| std::cmp::Reverse(c.get("Created").and_then(Value::as_i64).unwrap_or(0)));
    let limit = super::forward::query_param(uri.query(), "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    if let Some(l) = limit {
        all.truncate(l as usize);
    }
    Ok(json_response(StatusCode::OK, Value::Array(all).to_string()))
}

/// `GET /images/json`: every server's list, each image once (by id).
pub async fn images(p: &Proxy, uri: &Uri) -> Result<Response<Body>, ProxyError> {
    let answers = ask_all(p, &path_and_query(uri)).await?;
    let mut seen = std::collections::BTreeSet::new();
    let mut all = Vec::new();
    for (_, v) in answers {
        let Value::Array(list) = v else { continue };
        for img in list {
            let id = img
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if seen.insert(id) {
                all.push(img);
            }
        }
    }
    Ok(json_response(StatusCode::OK, Value::Array(all).to_string()))
}

/// Which list [`list`] combines.
#[derive(Debug, Clone, Copy)]
pub enum ListKind {
    Networks,
    Volumes,
}

/// `GET /networks` (an array) and `GET /volumes` (`{"Volumes": [...]}`):
/// every server's, each name once.
pub async fn list(p: &Proxy, uri: &Uri, kind: ListKind) -> Result<Response<Body>, ProxyError> {
    let answers = ask_all(p, &path_and_query(uri)).await?;
    let mut seen = std::collections::BTreeSet::new();
    let mut all = Vec::new();
    for (_, v) in answers {
        let items = match kind {
            ListKind::Networks => v,
            ListKind::Volumes => v.get("Volumes").cloned().unwrap_or(Value::Null),
        };
        let Value::Array(items) = items else { continue };
        for item in items {
            let name = item
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if seen.insert(name) {
                all.push(item);
            }
        }
    }
    let body = match kind {
        ListKind::Networks => Value::Array(all),
        ListKind::Volumes => json!({"Volumes": all, "Warnings": []}),
    };
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// A single-object read (`/networks/{id}`, `/volumes/{name}`,
/// `/distribution/...`): the first server that has it answers; none is
/// the first server's own 404.
pub async fn first_found(p: &Proxy, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
    let path = path_and_query(req.uri());
    let backends = p.up_backends().await?;
    let answers = super::call_each(&backends, Method::GET, &path, p.call_timeout(), LIST_CAP).await;
    let mut first_miss = None;
    for answer in answers.into_iter().flatten() {
        if answer.0 == StatusCode::OK {
            return Ok(json_response(
                StatusCode::OK,
                String::from_utf8_lossy(&answer.1).into_owned(),
            ));
        }
        first_miss.get_or_insert(answer);
    }
    match first_miss {
        Some((status, body)) => Ok(json_response(
            status,
            String::from_utf8_lossy(&body).into_owned(),
        )),
        None => Ok(json_response(
            StatusCode::NOT_FOUND,
            json!({"message": format!("no such object: {}", req.uri().path())}).to_string(),
        )),
    }
}

/// `DELETE /images/{name}` and `POST /images/{name}/tag`: done on every
/// server that has the image. Success when one succeeded; a removal's
/// answer lists what every server removed.
pub async fn image_every(
    p: &Proxy,
    version: &str,
    name: &str,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let targets = super::locate::image_servers(p, version, name).await?;
    if targets.is_empty() {
        return Err(ProxyError::NoSuchImage(name.to_string()));
    }
    let method = req.method().clone();
    let path = path_and_query(req.uri());
    let answers =
        super::call_each(&targets, method.clone(), &path, p.call_timeout(), LIST_CAP).await;
    let mut removed = Vec::new();
    let mut ok_status = None;
    let mut first_error = None;
    for answer in answers {
        match answer {
            Ok((status, body)) if status.is_success() => {
                ok_status.get_or_insert(status);
                if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) {
                    removed.extend(items);
                }
            }
            Ok((status, body)) => {
                first_error.get_or_insert((status, body));
            }
            Err(e) => eprintln!("flocker proxy: {method} {path}: {e}"),
        }
    }
    match (ok_status, first_error) {
        (Some(status), _) if method == Method::DELETE => {
            Ok(json_response(status, Value::Array(removed).to_string()))
        }
        (Some(status), _) => Ok(Response::builder()
            .status(status)
            .body(Body::empty())
            .unwrap_or_default()),
        (None, Some((status, body))) => Ok(json_response(
            status,
            String::from_utf8_lossy(&body).into_owned(),
        )),
        (None, None) => Err(ProxyError::Unreachable(
            "no server that has the image answered".into(),
        )),
    }
}
