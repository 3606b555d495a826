//! Pulls: `POST /images/create` goes to every server (or to the one a
//! pending create will land on), a create for an image its server lacks
//! pulls it there first, and [`PendingPulls`] remembers who asked.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::Method;
use serde_json::Value;

use super::backend::{self};
use super::combine::path_and_query;
use super::create_request;
use super::error::ProxyError;
use super::events::{merged, LineMap};
use super::forward::{self, percent_encode, query_param};
use super::{Backend, Proxy};

/// How long a pull is sent to the server a 404'd create would have gone to.
const PULL_TTL: Duration = Duration::from_secs(600);

/// How long a pull the proxy makes itself (the chosen server lacks an image
/// another server has) may take.
const HIDDEN_PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Where the pull after a 404'd create should go, and the names being
/// created now (so the route reconciliation in [`super::follow`] does not
/// take a route whose container is about to exist).
#[derive(Default)]
pub struct PendingPulls {
    pulls: Mutex<HashMap<String, (String, Instant)>>,
    creating: Mutex<HashSet<String>>,
    counter: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PendingPulls {
    pub(super) fn expect_pull(&self, image: &str, server: &str) {
        let mut pulls = lock(&self.pulls);
        pulls.retain(|_, (_, at)| at.elapsed() < PULL_TTL);
        pulls.insert(normalize_ref(image), (server.to_string(), Instant::now()));
    }

    fn pull_target(&self, image: &str) -> Option<String> {
        let pulls = lock(&self.pulls);
        pulls
            .get(&normalize_ref(image))
            .filter(|(_, at)| at.elapsed() < PULL_TTL)
            .map(|(s, _)| s.clone())
    }

    /// Marks a create of `name` under way until the guard is dropped.
    pub(super) fn creating(&self, name: &str) -> Creating<'_> {
        lock(&self.creating).insert(name.to_string());
        Creating(self, name.to_string())
    }

    /// Whether a create of `name` is under way.
    pub fn is_creating(&self, name: &str) -> bool {
        lock(&self.creating).contains(name)
    }

    /// A name no one has used for an unnamed create of `image`
    /// ([`create_request::fresh_name`]).
    pub(super) fn fresh_name(&self, image: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        create_request::fresh_name(image, stamp, n)
    }
}

/// Removes the creating mark when the create is done, however it ends.
pub(super) struct Creating<'a>(&'a PendingPulls, String);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        lock(&self.0.creating).remove(&self.1);
    }
}

/// `busybox`, `busybox:latest` and `docker.io/library/busybox:latest` are
/// one image for pull routing.
fn normalize_ref(image: &str) -> String {
    let image = image
        .strip_prefix("docker.io/library/")
        .or_else(|| image.strip_prefix("docker.io/"))
        .unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Pulls `image` on `b` and reads the progress to its end; an
/// `errorDetail` in it is the error.
pub(super) async fn hidden_pull(version: &str, b: &Backend, image: &str) -> Result<(), ProxyError> {
    let (from, tag) = split_tag(image);
    let mut path = format!("{version}/images/create?fromImage={}", percent_encode(from));
    if let Some(t) = tag {
        path.push_str(&format!("&tag={}", percent_encode(t)));
    }
    eprintln!("flocker proxy: pulling {image} on {}", b.hostname);
    let (status, body) = backend::call(
        &b.dial,
        Method::POST,
        &path,
        None,
        HIDDEN_PULL_TIMEOUT,
        64 << 20,
    )
    .await?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        return Err(ProxyError::Backend(format!(
            "pull answered {status}: {text}"
        )));
    }
    if let Some(line) = text.lines().find(|l| l.contains("\"errorDetail\"")) {
        return Err(ProxyError::Backend(line.to_string()));
    }
    Ok(())
}

/// `repo:tag` -> (`repo`, `tag`); a digest or no tag keeps the whole ref.
fn split_tag(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], Some(&image[slash + i + 1..])),
        None => (image, None),
    }
}

/// `POST /images/create`: to the server a 404'd create chose, else to
/// every server (progress merged, see [`pull_all`]).
pub async fn pull(p: &Arc<Proxy>, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
    let query = req.uri().query();
    if query_param(query, "fromSrc").is_some() {
        return Err(ProxyError::NotSupported(
            "importing an image (fromSrc)".into(),
        ));
    }
    let from = query_param(query, "fromImage").unwrap_or_default();
    let image = match query_param(query, "tag").filter(|t| !t.is_empty()) {
        Some(t) if !from.contains('@') => format!("{from}:{t}"),
        _ => from,
    };
    if let Some(server) = p.pulls.pull_target(&image) {
        if let Ok(b) = p.backend(&server).await {
            if p.health.is_up(&b.hostname) {
                p.metrics.routed("pull");
                return forward::forward(p, &b, req, true).await;
            }
        }
    }
    pull_all(p, req).await
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

#[cfg(test)]
mod tests {
    use flocker_core::ContainerName;

    use super::*;

    #[test]
    fn refs() {
        assert_eq!(normalize_ref("busybox"), "busybox:latest");
        assert_eq!(
            normalize_ref("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(
            normalize_ref("localhost:5000/auth"),
            "localhost:5000/auth:latest"
        );
        assert_eq!(normalize_ref("localhost/auth:1"), "localhost/auth:1");
        assert_eq!(
            split_tag("localhost:5000/auth:1"),
            ("localhost:5000/auth", Some("1"))
        );
        assert_eq!(
            split_tag("localhost:5000/auth"),
            ("localhost:5000/auth", None)
        );
    }

    #[test]
    fn fresh_names_are_docker_names_without_a_dot() {
        let pulls = PendingPulls::default();
        let a = pulls.fresh_name("localhost/busybox:full");
        let b = pulls.fresh_name("localhost/busybox:full");
        assert_ne!(a, b);
        assert!(a.starts_with("busybox_"), "{a}");
        assert!(!a.contains('.'));
        assert!(ContainerName::parse(&a).is_ok());
        assert!(ContainerName::parse(&pulls.fresh_name("_x")).is_ok());
    }
}
