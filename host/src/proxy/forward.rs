//! The one handler every call goes through: classify it, then answer,
//! decide, route, combine or refuse (the module doc of [`super`]); and
//! [`forward`], which passes a client's call to one server as it came.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;

use super::endpoint::{classify, is_stream, split_version, Endpoint};
use super::error::ProxyError;
use super::{backend, combine, create, events, follow, locate, pull, splice, Backend, Proxy};

/// Headers that belong to one connection, not to the call (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Every call: see the module doc.
pub async fn handle(State(proxy): State<Arc<Proxy>>, req: Request<Body>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (version, rest) = split_version(&path);
    let endpoint = classify(&method, rest);
    let version = version.to_string();
    let mut resp = match dispatch(&proxy, &version, endpoint, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() || e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                eprintln!("flocker proxy: {method} {path}: {e}");
            }
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&proxy.health.api_version()) {
        resp.headers_mut().insert("api-version", v);
    }
    resp
}

async fn dispatch(
    p: &Arc<Proxy>,
    version: &str,
    endpoint: Endpoint,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let stream = is_stream(&endpoint);
    match endpoint {
        Endpoint::Ping => Ok(combine::ping(p, req.method())),
        Endpoint::Version => Ok(combine::version(p)),
        Endpoint::Info => combine::info(p, version).await,
        Endpoint::Create => create::create(p, version, req).await,
        Endpoint::Pull => pull::pull(p, req).await,
        Endpoint::ListContainers => combine::containers(p, req.uri()).await,
        Endpoint::ListImages => combine::images(p, req.uri()).await,
        Endpoint::ListNetworks => combine::list(p, req.uri(), combine::ListKind::Networks).await,
        Endpoint::ListVolumes => combine::list(p, req.uri(), combine::ListKind::Volumes).await,
        Endpoint::Events => events::events(p, req.uri()).await,
        Endpoint::FirstFound => combine::first_found(p, req).await,
        Endpoint::ImageRead { name } => {
            let Some(b) = locate::image_servers(p, version, &name)
                .await?
                .into_iter()
                .next()
            else {
                return Err(ProxyError::NoSuchImage(name));
            };
            p.metrics.routed("image");
            forward(p, &b, req, false).await
        }
        Endpoint::ImageEveryServer { name } => combine::image_every(p, version, &name, req).await,
        Endpoint::AnyServer => {
            let Some(b) = p.up_backends().await?.into_iter().next() else {
                return Err(ProxyError::Unreachable("no server answers".into()));
            };
            forward(p, &b, req, false).await
        }
        Endpoint::Container { id, action } => {
            let at = locate::container(p, version, &id).await?;
            p.metrics.routed(routed_kind(&action));
            let resp = forward(p, &at.backend, req, stream).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                p.locator.forget(&id);
            }
            Ok(resp)
        }
        Endpoint::ExecCreate(id) => {
            let at = locate::container(p, version, &id).await?;
            p.metrics.routed("exec");
            let resp = forward(p, &at.backend, req, false).await?;
            locate::remember_exec(p, &at.backend, resp).await
        }
        Endpoint::Exec { id, action } => {
            let b = locate::exec(p, version, &id).await?;
            p.metrics.routed("exec");
            forward(p, &b, req, action == "start").await
        }
        Endpoint::Delete(id) => {
            let at = locate::container(p, version, &id).await?;
            p.metrics.routed("delete");
            // Docker names the container by the name or id given; the
            // route is keyed by name, so learn it first.
            let name = match &at.name {
                Some(n) => Some(n.clone()),
                None => locate::name_on(p, version, &at.backend, &id).await,
            };
            let resp = forward(p, &at.backend, req, false).await?;
            if resp.status().is_success() {
                if let Some(name) = name {
                    follow::route_gone(p, &at.backend.hostname, &name).await;
                }
                p.locator.forget(&id);
            }
            Ok(resp)
        }
        Endpoint::Rename(id) => {
            let at = locate::container(p, version, &id).await?;
            p.metrics.routed("rename");
            let new_name = query_param(req.uri().query(), "name");
            let old_name = match &at.name {
                Some(n) => Some(n.clone()),
                None => locate::name_on(p, version, &at.backend, &id).await,
            };
            let resp = forward(p, &at.backend, req, false).await?;
            if resp.status().is_success() {
                if let (Some(old), Some(new)) = (old_name, new_name) {
                    follow::rename_route(p, &old, &new).await;
                }
                p.locator.forget(&id);
            }
            Ok(resp)
        }
        Endpoint::Unsupported => Err(ProxyError::NotSupported(format!(
            "{} {}",
            req.method(),
            req.uri().path()
        ))),
    }
}

fn routed_kind(action: &str) -> &'static str {
    match action {
        "json" => "inspect",
        "logs" => "logs",
        "attach" | "attach/ws" => "attach",
        "wait" => "wait",
        "start" | "stop" | "kill" | "restart" | "pause" | "unpause" => "lifecycle",
        "stats" | "top" | "changes" => "stats",
        "export" | "archive" => "archive",
        _ => "other",
    }
}

/// One query parameter (the first), percent-decoded. Keys are decoded
/// too, as the daemon's Go `url.ParseQuery` decodes them: `n%61me=x` is
/// `name` to it, so it is `name` here.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        is_key(k, key).then(|| percent_decode(v))
    })
}

fn is_key(raw: &str, key: &str) -> bool {
    raw == key || (raw.contains(['%', '+']) && percent_decode(raw) == key)
}

/// `path?query` with `key` set to `value` (replaced where it was, else
/// appended).
pub fn with_query_param(path_and_query: &str, key: &str, value: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !is_key(kv.split('=').next().unwrap_or(kv), key))
        .map(str::to_string)
        .collect();
    pairs.push(format!("{key}={}", percent_encode(value)));
    format!("{path}?{}", pairs.join("&"))
}

/// `%XX` and `+` decoding of a query value.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `%`-encodes a query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The client's headers for a server: without hop-by-hop ones (but with
/// `Connection`/`Upgrade` for an upgrade), with a `Host`.
fn backend_headers(from: &HeaderMap, upgrade: bool, b: &Backend) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(from.len() + 1);
    for (name, value) in from {
        let keep_for_upgrade = upgrade && (name == header::CONNECTION || name == header::UPGRADE);
        if !is_hop_by_hop(name) || keep_for_upgrade {
            out.append(name.clone(), value.clone());
        }
    }
    if !out.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(b.dial.host_header()) {
            out.insert(header::HOST, v);
        }
    }
    out
}

/// The header timeout for a call: none for streams and upgrades; for
/// `stop` and `restart`, the daemon's own wait (`t`, 10 s by default) on
/// top of the proxy's.
fn header_timeout(p: &Proxy, req: &Request<Body>, stream: bool) -> Option<Duration> {
    if stream {
        return None;
    }
    let path = req.uri().path();
    let waits = path.ends_with("/stop") || path.ends_with("/restart");
    let extra = if waits {
        query_param(req.uri().query(), "t")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(10)
            .min(3600)
    } else {
        0
    };
    Some(p.config.backend_timeout + Duration::from_secs(extra))
}

/// Passes the client's call to `b` as it came (method, path with its
/// version prefix, query, headers, streaming body) and its answer back as it
/// comes. An `Upgrade` request that the server answers with 101 is spliced
/// ([`splice`]).
pub async fn forward(
    p: &Proxy,
    b: &Backend,
    mut req: Request<Body>,
    stream: bool,
) -> Result<Response<Body>, ProxyError> {
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let timeout = header_timeout(p, &req, stream || upgrade);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut breq = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body)
        .map_err(|e| ProxyError::BadRequest(format!("cannot pass the call on: {e}")))?;
    *breq.headers_mut() = backend_headers(&parts.headers, upgrade, b);
    let answer = backend::send(&b.dial, breq, upgrade, timeout).await?;
    let status = answer.response.status();
    if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, status) {
        p.metrics.routed("upgrade");
        return Ok(splice::splice(client, answer));
    }
    if upgrade && status.is_client_error() {
        // The CLI prints only "unable to upgrade to tcp, received 409": say
        // what the server said here.
        let (parts, bytes) = answer.collect(64 * 1024, p.call_timeout()).await?;
        eprintln!(
            "flocker proxy: {} refused the upgrade with {}: {}",
            b.hostname,
            parts.status,
            String::from_utf8_lossy(&bytes)
        );
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    }
    let guard = stream.then(|| Box::new(p.metrics.stream()) as Box<dyn Send + Sync>);
    let mut resp = answer.into_response(guard);
    strip_hop_by_hop(resp.headers_mut());
    Ok(resp)
}

/// Removes the connection's own headers from an answer passed on.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// A JSON answer.
pub fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values() {
        assert_eq!(
            query_param(Some("a=1&name=auth.1&x"), "name").as_deref(),
            Some("auth.1")
        );
        assert_eq!(
            query_param(Some("fromImage=localhost%2Fbusybox&tag=full"), "fromImage").as_deref(),
            Some("localhost/busybox")
        );
        assert_eq!(query_param(Some("a=1"), "name"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(
            with_query_param("/events?since=1&until=2", "until", "9"),
            "/events?since=1&until=9"
        );
        assert_eq!(with_query_param("/events", "until", "9"), "/events?until=9");
        // A key the daemon decodes to `name` is `name`: the decided name
        // replaces it rather than being a second, later one it ignores.
        assert_eq!(
            with_query_param("/c?n%61me=x&a=1", "name", "web.1"),
            "/c?a=1&name=web.1"
        );
        assert_eq!(query_param(Some("n%61me=x"), "name").as_deref(), Some("x"));
        assert_eq!(percent_encode("{\"a\":1}"), "%7B%22a%22%3A1%7D");
    }
}
