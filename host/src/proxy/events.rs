//! `GET /events`: every server's event stream, merged line by line, each
//! event told which server it came from.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, Uri};
use bytes::Bytes;
use futures_util::future::join_all;
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::backend::{self, Answer};
use super::combine::path_and_query;
use super::error::ProxyError;
use super::forward::strip_hop_by_hop;
use super::{Backend, Proxy};

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
pub(super) type LineMap = Arc<dyn Fn(&Backend, Value) -> Option<Value> + Send + Sync>;

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
pub(super) async fn merged(
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
