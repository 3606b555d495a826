//! Calls answered from every server at once: the proxy's own `/_ping` and
//! `/version`, `/info` totals, container, image, network and volume lists,
//! the merged event stream, and pulls sent to every server.
//!
//! A server that does not answer is left out of a combined answer (and is
//! soon decided on as down, [`super::health`]); the others still answer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use bytes::Bytes;
use futures_util::future::join_all;
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::backend::{self, Answer};
use super::error::ProxyError;
use super::forward::{json as json_response, strip_hop_by_hop};
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

fn path_and_query(uri: &Uri) -> String {
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

/// A response body fed by a channel: the merged lines of several servers'
/// streams. When the client leaves, the body is dropped, the channel
/// closes, and each feeding task stops and drops its server connection.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    _guard: super::metrics::StreamGuard,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.get_mut()
            .rx
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// What to do with one JSON object of a server's stream.
type LineMap = Arc<dyn Fn(&Backend, Value) -> Option<Value> + Send + Sync>;

/// Reads `answer`'s body as a stream of JSON objects (not assuming one per
/// chunk), maps each, and sends it on as one line.
async fn feed(b: Backend, answer: Answer, map: LineMap, tx: mpsc::Sender<Bytes>) {
    use http_body_util::BodyExt;
    let Answer { response, conn } = answer;
    let _conn = conn;
    let mut body = response.into_body();
    let mut values = backend::JsonValues::new(16 << 20);
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = tx.closed() => return,
        };
        let Some(Ok(frame)) = frame else { return };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let (complete, error) = values.push(&data);
        for v in complete {
            if let Some(out) = map(&b, v) {
                let mut line = out.to_string().into_bytes();
                line.push(b'\n');
                if tx.send(Bytes::from(line)).await.is_err() {
                    return;
                }
            }
        }
        if let Some(e) = error {
            eprintln!("flocker proxy: {} sent a bad stream: {e}", b.hostname);
            return;
        }
    }
}

/// Sends `req`'s method and path to every up server as a stream and
/// merges their JSON lines, each mapped by `map`.
async fn merged(
    p: &Proxy,
    method: Method,
    path: String,
    headers: axum::http::HeaderMap,
    map: LineMap,
    headers_to_copy: &[&'static str],
) -> Result<Response<Body>, ProxyError> {
    let backends = p.up_backends().await?;
    let sends = join_all(backends.iter().map(|b| {
        let mut breq = backend::request(method.clone(), &b.dial, &path, None);
        if let Ok(r) = breq.as_mut() {
            for name in headers_to_copy {
                if let Some(v) = headers.get(*name) {
                    r.headers_mut().insert(*name, v.clone());
                }
            }
        }
        async move {
            match breq {
                Ok(r) => backend::send(&b.dial, r, false, None).await,
                Err(e) => Err(e),
            }
        }
    }))
    .await;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut any = false;
    for (b, sent) in backends.into_iter().zip(sends) {
        match sent {
            Ok(answer) if answer.response.status().is_success() => {
                any = true;
                tokio::spawn(feed(b, answer, map.clone(), tx.clone()));
            }
            Ok(answer) => eprintln!(
                "flocker proxy: {} answered {path} with {}",
                b.hostname,
                answer.response.status()
            ),
            Err(e) => eprintln!("flocker proxy: {}: {path}: {e}", b.hostname),
        }
    }
    drop(tx);
    if !any {
        return Err(ProxyError::Unreachable(format!(
            "no server answered {path}"
        )));
    }
    let mut r = Response::new(Body::new(ChannelBody {
        rx,
        _guard: p.metrics.stream(),
    }));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    strip_hop_by_hop(r.headers_mut());
    Ok(r)
}

/// `GET /events`: one stream per server (`since`, `until` and `filters`
/// passed on), merged, each event marked with its server in
/// `Actor.Attributes["flocker.server"]`.
pub async fn events(p: &Arc<Proxy>, uri: &Uri) -> Result<Response<Body>, ProxyError> {
    // podman 4.3.1 streams nothing for an `until` at or before now (Docker
    // gives the events up to it): ask the servers until a moment from now
    // and drop what comes after the client's `until` here.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let until =
        super::forward::query_param(uri.query(), "until").and_then(|u| u.parse::<f64>().ok());
    let (path, cutoff) = match until {
        Some(u) if u <= now + 1.0 => (
            super::forward::with_query_param(
                &path_and_query(uri),
                "until",
                &format!("{}", now as i64 + 2),
            ),
            Some(u),
        ),
        _ => (path_and_query(uri), None),
    };
    let map: LineMap = Arc::new(move |b: &Backend, mut v: Value| {
        if let Some(cutoff) = cutoff {
            let at = v
                .get("timeNano")
                .and_then(Value::as_f64)
                .map(|n| n / 1e9)
                .or_else(|| v.get("time").and_then(Value::as_f64));
            if at.is_some_and(|t| t > cutoff) {
                return None;
            }
        }
        if let Some(o) = v.as_object_mut() {
            let actor = o
                .entry("Actor")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|a| a.entry("Attributes").or_insert_with(|| json!({})));
            if let Some(Value::Object(attrs)) = actor {
                attrs.insert("flocker.server".into(), json!(b.hostname));
            }
        }
        Some(v)
    });
    merged(p, Method::GET, path, Default::default(), map, &[]).await
}

/// `POST /images/create` on every server: progress merged (each layer's
/// `id` prefixed with its server, so the CLI's progress lines stay apart);
/// a server's error is passed on only when no server pulled the image,
/// since the CLI stops at the first error it reads.
pub async fn pull_all(p: &Arc<Proxy>, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
    let total = p.up_backends().await?.len();
    let state = Arc::new(std::sync::Mutex::new((0usize, None::<Value>)));
    let map: LineMap = Arc::new(move |b: &Backend, mut v: Value| {
        if v.get("errorDetail").is_some() || v.get("error").is_some() {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.0 += 1;
            if s.1.is_none() {
                let mut e = v.clone();
                if let Some(Value::String(m)) = e.get_mut("error") {
                    *m = format!("{}: {m}", b.hostname);
                }
                s.1 = Some(e);
            }
            // Every server failed: pass the first error on.
            return (s.0 >= total).then(|| s.1.clone()).flatten();
        }
        if let Some(Value::String(id)) = v.get_mut("id") {
            *id = format!("{}: {id}", b.hostname);
        }
        Some(v)
    });
    p.metrics.routed("pull");
    let (parts, _) = req.into_parts();
    merged(
        p,
        parts.method,
        path_and_query(&parts.uri),
        parts.headers,
        map,
        &["x-registry-auth"],
    )
    .await
}
