//! A small fake Docker daemon for the proxy's protocol tests: a hyper
//! HTTP/1.1 server on 127.0.0.1 that answers the few calls the tests make,
//! records what it was sent, and holds its streams until the test says so.
//!
//! What each container name does:
//! - `echo`: `attach` upgrades, reads the client's bytes to EOF, answers
//!   `reply:` + those bytes, then shuts its write side.
//! - `closer`: `attach` upgrades, writes [`CLOSER_PAYLOAD`] bytes and shuts
//!   its write side at once, then reads the client's bytes to EOF.
//! - `chunky`: `logs` writes [`CHUNK_ONE`], waits for
//!   [`Fake::release_chunk`], writes [`CHUNK_TWO`] and ends.
//! - `follow`: `logs` writes [`FOLLOW_FIRST`], then a tick every 100 ms,
//!   never ending; [`Fake::logs_closed`] says when its body was dropped
//!   (the connection went away). `quiet`: the same with no ticks.
//! - `GET /events`: [`EVENT_ONE`], then [`EVENT_TWO`] after
//!   [`Fake::release_events`], then the end; with `forever=1` in the query,
//!   [`EVENT_ONE`] and then nothing, never ending ([`Fake::events_closed`]
//!   says when its body was dropped).
//! - `hang`: `start` never answers; [`Fake::hang_dropped`] says when the
//!   call was given up (the connection went away).
//! - `slowwait`: `wait` answers nothing, headers included, until
//!   [`Fake::release_wait`], then [`WAIT_BODY`].
//! - any other name: `wait` sends its headers at once and [`WAIT_BODY`] after
//!   [`Fake::release_wait`].
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

pub const KNOWN_IMAGE: &str = "fakeimg";
pub const CHUNK_ONE: &[u8] = b"chunk one\n";
pub const CHUNK_TWO: &[u8] = b"chunk two\n";
pub const FOLLOW_FIRST: &[u8] = b"line 0\n";
pub const WAIT_BODY: &[u8] = b"{\"StatusCode\":0}\n";
pub const CLOSER_PAYLOAD: usize = 100_000;
pub const EVENT_ONE: &str = r#"{"Type":"container","Action":"start","Actor":{"ID":"aaa","Attributes":{"name":"one"}},"time":1}"#;
pub const EVENT_TWO: &str = r#"{"Type":"container","Action":"die","Actor":{"ID":"bbb","Attributes":{"name":"two"}},"time":2}"#;

type FakeBody = BoxBody<Bytes, Infallible>;

/// One `POST /containers/create` as the daemon got it.
#[derive(Debug, Clone)]
pub struct Created {
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A flag with a notification, so a test can wait for it with a bound.
#[derive(Default)]
pub struct Flag {
    set: AtomicBool,
    notify: Notify,
}

impl Flag {
    pub fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Waits until set; false when `bound` passed first.
    pub async fn wait(&self, bound: Duration) -> bool {
        let waited = tokio::time::timeout(bound, async {
            loop {
                let notified = self.notify.notified();
                if self.is_set() {
                    return;
                }
                notified.await;
            }
        })
        .await;
        waited.is_ok()
    }
}

/// The daemon's shared state.
#[derive(Default)]
pub struct Fake {
    pub addr: Option<SocketAddr>,
    /// Every call, as `METHOD /path?query`.
    pub requests: Mutex<Vec<String>>,
    pub creates: Mutex<Vec<Created>>,
    created_count: AtomicUsize,
    /// Bytes an upgraded attach read from the client, up to EOF.
    pub attach_received: Mutex<Option<Vec<u8>>>,
    pub attach_done: Flag,
    wait_release: Notify,
    pub wait_body_written: Flag,
    chunk_release: Notify,
    pub chunk_two_written: Flag,
    events_release: Notify,
    pub logs_closed: Flag,
    pub events_closed: Flag,
    pub hang_started: Flag,
    pub hang_dropped: Flag,
}

impl Fake {
    pub fn release_wait(&self) {
        self.wait_release.notify_one();
    }

    pub fn release_chunk(&self) {
        self.chunk_release.notify_one();
    }

    pub fn release_events(&self) {
        self.events_release.notify_one();
    }

    pub fn creates(&self) -> Vec<Created> {
        self.creates.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Starts a daemon on 127.0.0.1 and returns its state (with its address).
pub async fn start() -> (Arc<Fake>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake daemon");
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake {
        addr: Some(addr),
        ..Fake::default()
    });
    let f = fake.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(handle(f, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (fake, addr)
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<FakeBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn not_found(what: &str) -> Response<FakeBody> {
    full(
        StatusCode::NOT_FOUND,
        serde_json::json!({ "message": format!("No such {what}") }).to_string(),
    )
}

/// The daemon and which of its flags to set when a stream's body is dropped.
type CloseFlag = (Arc<Fake>, fn(&Fake) -> &Flag);

/// A body fed by a channel; `on_drop` is set when hyper drops it (the
/// stream ended or its connection went away).
struct ChanBody {
    rx: mpsc::Receiver<Bytes>,
    on_drop: Option<CloseFlag>,
}

impl Drop for ChanBody {
    fn drop(&mut self) {
        if let Some((f, flag)) = &self.on_drop {
            flag(f).set();
        }
    }
}

impl hyper::body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .rx
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A chunked answer whose chunks `feed` sends.
fn streamed<F, Fut>(on_drop: Option<CloseFlag>, feed: F) -> Response<FakeBody>
where
    F: FnOnce(mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(feed(tx));
    let mut r = Response::new(ChanBody { rx, on_drop }.boxed());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// Sets `hang_dropped` when the hanging call's future is dropped.
struct HangGuard(Arc<Fake>);

impl Drop for HangGuard {
    fn drop(&mut self) {
        self.0.hang_dropped.set();
    }
}

async fn handle(f: Arc<Fake>, mut req: Request<Incoming>) -> Response<FakeBody> {
    let method = req.method().clone();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    f.requests.lock().unwrap().push(format!("{method} {pq}"));
    let path = req.uri().path().to_string();
    let rest = strip_version(&path);
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match (method.clone(), segs.as_slice()) {
        (Method::GET | Method::HEAD, ["_ping"]) => full(StatusCode::OK, "OK"),
        (Method::GET, ["version"]) => full(
            StatusCode::OK,
            r#"{"ApiVersion":"1.41","MinAPIVersion":"1.24","Version":"fake"}"#,
        ),
        (Method::GET, ["images", name @ .., "json"]) => {
            if name.join("/") == KNOWN_IMAGE {
                full(
                    StatusCode::OK,
                    r#"{"Id":"sha256:fake","Config":{"ExposedPorts":{"80/tcp":{}}}}"#,
                )
            } else {
                not_found("image")
            }
        }
        (Method::POST, ["containers", "create"]) => {
            let headers = req.headers().clone();
            let body = match req.into_body().collect().await {
                Ok(c) => c.to_bytes(),
                Err(_) => return full(StatusCode::BAD_REQUEST, "{}"),
            };
            f.creates.lock().unwrap().push(Created {
                path_and_query: pq,
                headers,
                body,
            });
            let n = f.created_count.fetch_add(1, Ordering::SeqCst) + 1;
            full(
                StatusCode::CREATED,
                format!(r#"{{"Id":"{}","Warnings":[]}}"#, container_id(n)),
            )
        }
        (Method::GET, ["containers", "json"]) => full(StatusCode::OK, "[]"),
        (Method::GET, ["containers", x, "json"]) => full(
            StatusCode::OK,
            serde_json::json!({
                "Id": container_id(x.len()),
                "Name": format!("/{x}"),
                "State": {"Running": true},
            })
            .to_string(),
        ),
        (Method::POST, ["containers", "slowwait", "wait"]) => {
            f.wait_release.notified().await;
            f.wait_body_written.set();
            full(StatusCode::OK, WAIT_BODY)
        }
        (Method::POST, ["containers", _, "wait"]) => streamed(None, move |tx| async move {
            f.wait_release.notified().await;
            let _ = tx.send(Bytes::from_static(WAIT_BODY)).await;
            f.wait_body_written.set();
        }),
        (Method::POST, ["containers", x @ ("echo" | "closer"), "attach"]) => {
            let closer = *x == "closer";
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let mut io = TokioIo::new(upgraded);
                let mut got = Vec::new();
                if closer {
                    let payload = closer_payload();
                    if io.write_all(&payload).await.is_err() || io.shutdown().await.is_err() {
                        return;
                    }
                    let _ = io.read_to_end(&mut got).await;
                    *f.attach_received.lock().unwrap() = Some(got);
                    f.attach_done.set();
                } else {
                    if io.read_to_end(&mut got).await.is_err() {
                        return;
                    }
                    *f.attach_received.lock().unwrap() = Some(got.clone());
                    f.attach_done.set();
                    let mut reply = b"reply:".to_vec();
                    reply.extend_from_slice(&got);
                    let _ = io.write_all(&reply).await;
                    let _ = io.shutdown().await;
                }
            });
            let mut r = Response::new(Full::new(Bytes::new()).boxed());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = r.headers_mut();
            h.insert("connection", HeaderValue::from_static("Upgrade"));
            h.insert("upgrade", HeaderValue::from_static("tcp"));
            h.insert(
                "content-type",
                HeaderValue::from_static("application/vnd.docker.raw-stream"),
            );
            r
        }
        (Method::GET, ["containers", "chunky", "logs"]) => streamed(None, move |tx| async move {
            if tx.send(Bytes::from_static(CHUNK_ONE)).await.is_err() {
                return;
            }
            f.chunk_release.notified().await;
            if tx.send(Bytes::from_static(CHUNK_TWO)).await.is_ok() {
                f.chunk_two_written.set();
            }
        }),
        (Method::GET, ["containers", x @ ("follow" | "quiet"), "logs"]) => {
            let quiet = *x == "quiet";
            let guard = Some((f.clone(), (|f| &f.logs_closed) as fn(&Fake) -> &Flag));
            streamed(guard, move |tx| async move {
                if tx.send(Bytes::from_static(FOLLOW_FIRST)).await.is_err() {
                    return;
                }
                if quiet {
                    // A quiet container: nothing more, until the body goes.
                    tx.closed().await;
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if tx.send(Bytes::from_static(b"tick\n")).await.is_err() {
                        return;
                    }
                }
            })
        }
        (Method::GET, ["events"]) if pq.contains("forever=1") => {
            let guard = Some((f.clone(), (|f| &f.events_closed) as fn(&Fake) -> &Flag));
            streamed(guard, move |tx| async move {
                if tx.send(format!("{EVENT_ONE}\n").into()).await.is_err() {
                    return;
                }
                // Holds the stream open; ends when the body is dropped.
                tx.closed().await;
            })
        }
        (Method::GET, ["events"]) => streamed(None, move |tx| async move {
            if tx.send(format!("{EVENT_ONE}\n").into()).await.is_err() {
                return;
            }
            f.events_release.notified().await;
            let _ = tx.send(format!("{EVENT_TWO}\n").into()).await;
        }),
        (Method::POST, ["containers", "hang", "start"]) => {
            let _guard = HangGuard(f.clone());
            f.hang_started.set();
            std::future::pending::<Response<FakeBody>>().await
        }
        (Method::POST, ["containers", _, "start"]) => {
            let mut r = Response::new(Full::new(Bytes::new()).boxed());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        _ => not_found("route"),
    }
}

/// 64 hex digits.
pub fn container_id(n: usize) -> String {
    format!("{n:064x}")
}

/// What `closer` writes: every byte value, over and over.
pub fn closer_payload() -> Vec<u8> {
    (0..CLOSER_PAYLOAD).map(|i| (i % 251) as u8).collect()
}

fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            if rest[..i].chars().all(|c| c.is_ascii_digit() || c == '.') {
                return &rest[i..];
            }
        }
    }
    path
}
