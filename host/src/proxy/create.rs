//! `POST /containers/create`, decided (docs/PROXY.md, "Create"):
//!
//! 1. Read `?name=` and the body (at most [`CREATE_BODY_CAP`], within
//!    `--body-timeout-ms`; then a decision slot is taken or the call is a
//!    503; not a JSON object, or `Image` not a string, is a 400 naming the
//!    field). An
//!    unnamed create is given a name first (SPEC section 6), so its ports
//!    and load are recorded like any other.
//! 2. Get the image's config from a server that has it (the decision needs
//!    its `ExposedPorts`, `Env`, `Volumes`). When no server has it, decide
//!    without saving to learn where the container would go, remember that
//!    server for the pull, and answer 404 `No such image`: the CLI pulls
//!    (the pull goes to that server, [`super::pull::pull`]) and tries once more.
//! 3. [`App::place`]: decide and save the route. A decision error is
//!    answered with its status ([`super::error::decision_status`]), never a
//!    404. A `name_in_use` whose container no longer exists on its server
//!    (the daemon removed it and its event was missed) frees the route and
//!    decides again, once.
//! 4. If the chosen server lacks the image, pull it there (the CLI's
//!    progress is not shown for this pull; it is logged).
//! 5. Send the rewritten body to the chosen server. A 201 is remembered
//!    (id -> server) and passed on; any other answer removes the route the
//!    place saved and is passed on as the server gave it.
//!
//! [`App::place`]: crate::app::App::place

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use super::backend;
use super::create_request::{self, CreateBody};
use super::error::ProxyError;
use super::follow::route_gone;
use super::forward;
use super::pull::hidden_pull;
use super::{locate, Backend, Proxy};
use crate::net::{limits::declared_length, read_body};

/// The largest create body read (`--max-body-kib` can only lower it);
/// real ones are about 2 KB.
pub const CREATE_BODY_CAP: usize = 256 * 1024;

/// Decisions again after the chosen server turned out not to answer.
const MAX_REDECISIONS: u32 = 2;

/// See the module doc.
pub async fn create(
    p: &Arc<Proxy>,
    version: &str,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let limits = &p.config.transport.limits;
    let declared = declared_length(&parts.headers);
    let cap = limits.max_body.min(CREATE_BODY_CAP);
    let bytes = read_body(body, declared, cap, limits.body_timeout).await?;
    // Taken after the body is in, so a slow sender holds no slot.
    let Some(_pass) = p.decisions.try_enter() else {
        return Err(ProxyError::Overloaded);
    };
    let query = parts.uri.query();
    let CreateBody {
        container,
        image,
        name,
    } = create_request::read(&bytes, query)?;
    let name = name.unwrap_or_else(|| p.pulls.fresh_name(&image));
    let _creating = p.pulls.creating(&name);
    let (have, config) = locate::image_servers_with_config(p, version, &image).await?;
    let request = create_request::decision_request(&name, &container, config.as_ref());
    if have.is_empty() {
        return no_such_image(p, &request, &image).await;
    }
    let mut freed_stale = false;
    let mut redecisions = 0;
    loop {
        let placed = p.app.place(request.clone()).await.inspect_err(|e| {
            p.metrics.created("host_error");
            eprintln!("flocker proxy: create {name}: {e}");
        })?;
        let output = &placed.decided.output;
        if let Some(kind) = placed.decided.error_kind.clone() {
            if kind == "name_in_use" && !freed_stale && free_stale_route(p, version, &name).await {
                freed_stale = true;
                continue;
            }
            let e = refused(p, kind, output);
            eprintln!("flocker proxy: create {name}: {e}");
            return Err(e);
        }
        let hostname = output
            .pointer("/server/hostname")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let summary = output
            .pointer("/explain/summary")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let b = match p.backend(&hostname).await {
            Ok(b) => b,
            Err(e) => {
                route_gone(p, &hostname, &name).await;
                return Err(e);
            }
        };
        // The image lookup asked only the servers up at that moment; the
        // chosen one may have come back since, or just gone away: ask it
        // before pulling. A server that does not take the connection is
        // down from now on, and the container is decided again without it.
        let image_there = match have.iter().any(|h| h.hostname == b.hostname) {
            true => Ok(true),
            false => has_image(p, version, &b, &image).await,
        };
        if let Err(e) = &image_there {
            route_gone(p, &hostname, &name).await;
            if redecisions < MAX_REDECISIONS {
                redecisions += 1;
                p.health.mark_down(&hostname);
                eprintln!("flocker proxy: create {name}: {e}; deciding again without {hostname}");
                continue;
            }
            p.metrics.created("server_error");
            return Err(ProxyError::Unreachable(e.to_string()));
        }
        if !matches!(image_there, Ok(true)) {
            if let Err(e) = hidden_pull(version, &b, &image).await {
                route_gone(p, &hostname, &name).await;
                eprintln!("flocker proxy: create {name}: pulling {image} on {hostname}: {e}");
                p.pulls.expect_pull(&image, &hostname);
                p.metrics.created("no_such_image");
                return Err(ProxyError::NoSuchImage(image));
            }
        }
        let body = create_request::rewritten_body(output)?;
        let path = create_request::server_path(version, query, &name);
        let mut breq = backend::request(Method::POST, &b.dial, &path, Some(Bytes::from(body)))?;
        copy_header(&parts.headers, breq.headers_mut(), "x-registry-auth");
        let answer = match backend::send(&b.dial, breq, false, Some(p.call_timeout())).await {
            Ok(a) => a,
            Err(ProxyError::Unreachable(e)) if redecisions < MAX_REDECISIONS => {
                redecisions += 1;
                route_gone(p, &hostname, &name).await;
                p.health.mark_down(&hostname);
                eprintln!("flocker proxy: create {name}: {e}; deciding again without {hostname}");
                continue;
            }
            Err(e) => {
                route_gone(p, &hostname, &name).await;
                p.metrics.created("server_error");
                return Err(e);
            }
        };
        let (rparts, rbody) = match answer.collect(1 << 20, p.call_timeout()).await {
            Ok(x) => x,
            Err(e) => {
                route_gone(p, &hostname, &name).await;
                p.metrics.created("server_error");
                return Err(e);
            }
        };
        if rparts.status == StatusCode::CREATED {
            if let Some(id) = serde_json::from_slice::<Value>(&rbody)
                .ok()
                .and_then(|v| v.get("Id").and_then(Value::as_str).map(str::to_string))
            {
                p.locator.remember(&id, &name, &hostname);
            }
            p.metrics.created("created");
            eprintln!("flocker proxy: create {name} on {hostname}: {summary}");
        } else {
            route_gone(p, &hostname, &name).await;
            p.metrics.created("server_error");
            eprintln!(
                "flocker proxy: create {name} on {hostname} failed with {}: {}",
                rparts.status,
                String::from_utf8_lossy(&rbody)
            );
        }
        let mut resp = Response::from_parts(rparts, Body::from(rbody));
        forward::strip_hop_by_hop(resp.headers_mut());
        return Ok(resp);
    }
}

fn copy_header(from: &hyper::HeaderMap, to: &mut hyper::HeaderMap, name: &'static str) {
    if let Some(v) = from.get(name) {
        to.insert(name, v.clone());
    }
}

/// A decision error as the proxy answers it, counted.
fn refused(p: &Proxy, kind: String, output: &Value) -> ProxyError {
    let message = output
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("the policy refused the container")
        .to_string();
    p.metrics.created(&kind);
    ProxyError::Decision { kind, message }
}

/// No server has the image: decide (without saving) where it would go, so
/// the CLI's pull goes there, and answer 404. A decision error is answered
/// as itself, so a bad link never sets off a pull.
async fn no_such_image(
    p: &Proxy,
    request: &Value,
    image: &str,
) -> Result<Response<Body>, ProxyError> {
    let cluster = p.cluster().await?;
    let decided = crate::engine::decide_blocking(&p.app.engine, &cluster, request)
        .await
        .map_err(crate::place::PlaceError::from)?;
    if let Some(kind) = decided.error_kind {
        return Err(refused(p, kind, &decided.output));
    }
    if let Some(h) = decided
        .output
        .pointer("/server/hostname")
        .and_then(Value::as_str)
    {
        p.pulls.expect_pull(image, h);
    }
    p.metrics.created("no_such_image");
    Err(ProxyError::NoSuchImage(image.to_string()))
}

/// On `name_in_use`: if the route's server no longer has the container,
/// the route is stale; free it. True when it was freed.
async fn free_stale_route(p: &Proxy, version: &str, name: &str) -> bool {
    let Ok(cluster) = p.cluster().await else {
        return false;
    };
    let Some(route) = cluster.live_route(name).cloned() else {
        return false;
    };
    drop(cluster);
    let Ok(b) = p.backend(&route.server).await else {
        return false;
    };
    let path = format!("{version}/containers/{name}/json");
    match backend::call(&b.dial, Method::GET, &path, None, p.call_timeout(), 4 << 20).await {
        Ok((StatusCode::NOT_FOUND, _)) => {
            eprintln!(
                "flocker proxy: {name} is gone from {}: its route is freed",
                route.server
            );
            route_gone(p, &route.server, name).await;
            true
        }
        _ => false,
    }
}

/// Whether `b` has `image` now; `Err` when it cannot be reached.
async fn has_image(p: &Proxy, version: &str, b: &Backend, image: &str) -> Result<bool, ProxyError> {
    let path = format!("{version}/images/{image}/json");
    match backend::call(&b.dial, Method::GET, &path, None, p.call_timeout(), 4 << 20).await {
        Ok((status, _)) => Ok(status == StatusCode::OK),
        Err(e @ ProxyError::Unreachable(_)) => Err(e),
        Err(_) => Ok(false),
    }
}
