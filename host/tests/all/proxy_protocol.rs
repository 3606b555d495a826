//! `flocker proxy` at the protocol's edges, in process, against a small fake
//! Docker daemon (tests/all/common/fake_daemon.rs): upgrades with half-close,
//! late bodies, streams passed on as they come, a client that leaves, a
//! daemon that hangs, the create rewrite and its refusals, and the calls
//! the proxy answers itself. No root, no podman.
//!
//! Every wait is bounded, so a bug fails a test rather than hanging it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::fake_daemon::{self, Fake};
use bytes::Bytes;
use flocker_host::engine::EngineChoice;
use flocker_host::net::{Listener, Server, Transport};
use flocker_host::proxy::{health, listen, Proxy, ProxyConfig};
use flocker_host::store::any::AnyStore;
use flocker_host::store::url::StoreUrl;
use flocker_host::store::Store;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The bound on any one wait.
const BOUND: Duration = Duration::from_secs(5);
/// The proxy's timeout for calls that do not stream.
const BACKEND_TIMEOUT: Duration = Duration::from_millis(500);

type ReqBody = BoxBody<Bytes, Infallible>;

/// A proxy over one fake daemon (server `s1`), listening on 127.0.0.1.
struct Fixture {
    addr: SocketAddr,
    fake: Arc<Fake>,
    proxy: Arc<Proxy>,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn fixture(tag: &str) -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix(&format!("flocker-proxy-protocol-{tag}-"))
        .tempdir()
        .unwrap();
    let (fake, fake_addr) = fake_daemon::start().await;
    let store_url = format!("file:{}", dir.path().join("store.redb").display());
    let store = AnyStore::open(&StoreUrl::parse(&store_url).unwrap())
        .await
        .unwrap();
    let server = flocker_core::Server::from_value(
        &json!({
            "hostname": "s1",
            "address": "127.0.0.1",
            "docker": format!("tcp://{fake_addr}"),
            "port_range": [41000, 41099],
        }),
        "s",
    )
    .unwrap();
    store.put_servers(&[server]).await.unwrap();
    let proxy = listen::build(
        store,
        ProxyConfig {
            engine: EngineChoice::Native,
            retries: 8,
            listen: vec![],
            metrics_listen: None,
            backend_timeout: BACKEND_TIMEOUT,
            health_every: Duration::from_secs(60),
            transport: Default::default(),
            server_certs: None,
        },
    )
    .await
    .unwrap();
    let up = health::check_all(&proxy).await.unwrap();
    assert_eq!(up.len(), 1, "the fake daemon answers its health check");
    // The proxy's own accept loop, so upgrades and streams go through
    // the connection slots and the header timeout as in production.
    let listener = Listener::tcp("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener, &Transport::default()).unwrap();
    let addr = server.local_addr().unwrap();
    let router = listen::router(proxy.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(server.serve(router, stopped));
    Fixture {
        addr,
        fake,
        proxy,
        _stop: stop,
        _dir: dir,
    }
}

/// A client connection to the proxy (upgrades enabled) and its task.
async fn connect(addr: SocketAddr) -> (SendRequest<ReqBody>, JoinHandle<()>) {
    let stream = tokio::time::timeout(BOUND, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let task = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    (sender, task)
}

fn empty() -> ReqBody {
    Empty::new().boxed()
}

fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).boxed()
}

/// A body of these chunks with no length: sent chunked.
fn chunked(chunks: Vec<Bytes>) -> ReqBody {
    let frames = chunks
        .into_iter()
        .map(|c| Ok::<_, Infallible>(Frame::data(c)));
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

fn request(method: Method, path: &str, body: ReqBody) -> Request<ReqBody> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "flocker-test")
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

/// Sends one request on its own connection; its answer within [`BOUND`].
async fn send(addr: SocketAddr, req: Request<ReqBody>) -> Response<Incoming> {
    let (mut sender, _task) = connect(addr).await;
    tokio::time::timeout(BOUND, sender.send_request(req))
        .await
        .expect("the proxy answers in time")
        .expect("an HTTP answer")
}

/// One call and its whole answer.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: ReqBody,
) -> (StatusCode, HeaderMap, Bytes) {
    let resp = send(addr, request(method, path, body)).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = tokio::time::timeout(BOUND, resp.into_body().collect())
        .await
        .expect("the body ends in time")
        .expect("a body")
        .to_bytes();
    (status, headers, bytes)
}

/// The `message` of a Docker-shaped JSON error.
fn message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    v.get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no message in {v}"))
        .to_string()
}

/// Reads frames until `want` bytes have come (more is a failure).
async fn read_exactly(body: &mut Incoming, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let frame = tokio::time::timeout(BOUND, body.frame())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {:?} came in time",
                    String::from_utf8_lossy(&got).into_owned()
                )
            })
            .expect("the stream goes on")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    assert_eq!(got.len(), want, "{:?}", String::from_utf8_lossy(&got));
    got
}

/// Reads the rest of a body to its end.
async fn read_to_end(body: Incoming) -> Bytes {
    tokio::time::timeout(BOUND, body.collect())
        .await
        .expect("the body ends in time")
        .expect("a body")
        .to_bytes()
}

/// Upgrades an attach of `container` through the proxy; the raw socket.
async fn attach(addr: SocketAddr, container: &str) -> TokioIo<hyper::upgrade::Upgraded> {
    let (mut sender, _task) = connect(addr).await;
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "/v1.41/containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1"
        ))
        .header("host", "flocker-test")
        .header("connection", "Upgrade")
        .header("upgrade", "tcp")
        .body(empty())
        .unwrap();
    let resp = tokio::time::timeout(BOUND, sender.send_request(req))
        .await
        .expect("the upgrade is answered in time")
        .expect("an HTTP answer");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        resp.headers().get("upgrade").map(|v| v.to_str().unwrap()),
        Some("tcp")
    );
    assert_eq!(
        resp.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/vnd.docker.raw-stream")
    );
    let upgraded = tokio::time::timeout(BOUND, hyper::upgrade::on(resp))
        .await
        .expect("upgraded in time")
        .expect("upgraded");
    TokioIo::new(upgraded)
}

/// `echo x | docker run -i ... cat`: the client sends, shuts its write
/// side and waits; the daemon must see exactly the bytes then EOF, and its
/// answer must reach the client, then EOF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_carries_client_half_close_then_daemon_reply() {
    let fx = fixture("attach-client-first").await;
    let mut io = attach(fx.addr, "echo").await;
    let sent: &[u8] = b"hello\x00world\xff";
    io.write_all(sent).await.unwrap();
    io.shutdown().await.unwrap();
    assert!(
        fx.fake.attach_done.wait(BOUND).await,
        "the daemon saw the client's EOF"
    );
    assert_eq!(
        fx.fake.attach_received.lock().unwrap().as_deref(),
        Some(sent),
        "the daemon read exactly the client's bytes before EOF"
    );
    let mut reply = Vec::new();
    tokio::time::timeout(BOUND, io.read_to_end(&mut reply))
        .await
        .expect("the reply and EOF come in time")
        .expect("read the reply");
    let mut want = b"reply:".to_vec();
    want.extend_from_slice(sent);
    assert_eq!(reply, want);
}

/// The process exits first: the daemon writes its output and shuts its
/// side; the client gets every byte then EOF, and can still send (within
/// the splice's grace) bytes the daemon reads up to the client's EOF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_carries_daemon_half_close_then_client_bytes() {
    let fx = fixture("attach-daemon-first").await;
    let mut io = attach(fx.addr, "closer").await;
    let mut got = Vec::new();
    tokio::time::timeout(BOUND, io.read_to_end(&mut got))
        .await
        .expect("the daemon's output and EOF come in time")
        .expect("read the output");
    assert_eq!(got.len(), fake_daemon::CLOSER_PAYLOAD);
    assert!(got == fake_daemon::closer_payload(), "every byte, in order");
    assert!(
        !fx.fake.attach_done.is_set(),
        "the daemon still reads the client's side"
    );
    io.write_all(b"late").await.unwrap();
    io.shutdown().await.unwrap();
    assert!(
        fx.fake.attach_done.wait(BOUND).await,
        "the daemon saw the client's EOF"
    );
    assert_eq!(
        fx.fake.attach_received.lock().unwrap().as_deref(),
        Some(&b"late"[..])
    );
}

/// `docker run` sends `wait` before `start` and needs its headers at once;
/// the body (the exit code) comes when the container exits, later than the
/// proxy's timeout for calls that do not stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_headers_come_before_its_body() {
    let fx = fixture("wait").await;
    let (mut sender, _task) = connect(fx.addr).await;
    let req = request(
        Method::POST,
        "/v1.41/containers/waiter/wait?condition=next-exit",
        empty(),
    );
    let resp = tokio::time::timeout(BOUND, sender.send_request(req))
        .await
        .expect("the wait's headers come before its body")
        .expect("an HTTP answer");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !fx.fake.wait_body_written.is_set(),
        "the daemon has written no body byte yet"
    );
    assert!(fx
        .fake
        .requests()
        .iter()
        .any(|r| r == "POST /v1.41/containers/waiter/wait?condition=next-exit"));
    // Longer than the backend timeout: a stream is not cut by it.
    tokio::time::sleep(BACKEND_TIMEOUT + Duration::from_millis(300)).await;
    fx.fake.release_wait();
    let body = read_to_end(resp.into_body()).await;
    assert_eq!(&body[..], fake_daemon::WAIT_BODY);
}

/// A daemon that sends a wait's headers only when the container exits:
/// no header timeout applies to `wait`, however long the container runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_headers_may_come_late() {
    let fx = fixture("slow-wait").await;
    let (mut sender, _task) = connect(fx.addr).await;
    let req = request(Method::POST, "/v1.41/containers/slowwait/wait", empty());
    let answer = sender.send_request(req);
    tokio::pin!(answer);
    // Longer than the backend timeout: no answer (in particular no 504).
    let early =
        tokio::time::timeout(BACKEND_TIMEOUT + Duration::from_millis(300), &mut answer).await;
    if let Ok(r) = early {
        panic!(
            "answered before the daemon did: {:?}",
            r.map(|r| r.status())
        );
    }
    fx.fake.release_wait();
    let resp = tokio::time::timeout(BOUND, answer)
        .await
        .expect("answered in time once the daemon answers")
        .expect("an HTTP answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = read_to_end(resp.into_body()).await;
    assert_eq!(&body[..], fake_daemon::WAIT_BODY);
}

/// A chunked stream (`logs`) is passed on chunk by chunk, not buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_logs_pass_through_as_they_come() {
    let fx = fixture("chunks").await;
    let resp = send(
        fx.addr,
        request(
            Method::GET,
            "/v1.41/containers/chunky/logs?follow=1&stdout=1",
            empty(),
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("content-length").is_none(),
        "a stream has no length"
    );
    let mut body = resp.into_body();
    let first = read_exactly(&mut body, fake_daemon::CHUNK_ONE.len()).await;
    assert_eq!(first, fake_daemon::CHUNK_ONE);
    assert!(!fx.fake.chunk_two_written.is_set());
    fx.fake.release_chunk();
    let rest = read_to_end(body).await;
    assert_eq!(&rest[..], fake_daemon::CHUNK_TWO);
}

/// The merged event stream passes each event on as it comes, marked with
/// its server, and ends when the only server's stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pass_through_as_they_come() {
    let fx = fixture("events").await;
    let resp = send(fx.addr, request(Method::GET, "/v1.41/events", empty())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut first: Value = serde_json::from_str(fake_daemon::EVENT_ONE).unwrap();
    first["Actor"]["Attributes"]["flocker.server"] = json!("s1");
    let line = format!("{first}\n");
    let got = read_exactly(&mut body, line.len()).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&got).unwrap(),
        first,
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(got.last(), Some(&b'\n'), "one event a line");
    fx.fake.release_events();
    let rest = read_to_end(body).await;
    let mut second: Value = serde_json::from_str(fake_daemon::EVENT_TWO).unwrap();
    second["Actor"]["Attributes"]["flocker.server"] = json!("s1");
    let rest = String::from_utf8(rest.to_vec()).unwrap();
    assert_eq!(rest.lines().count(), 1, "{rest:?}");
    assert_eq!(serde_json::from_str::<Value>(&rest).unwrap(), second);
}

/// `docker logs -f` then Ctrl-C: the client's connection goes away, and
/// the proxy's connection to the daemon must go with it, whether the
/// container goes on writing (`follow`) or says nothing more (`quiet`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_a_follow_closes_the_daemon_connection() {
    for container in ["follow", "quiet"] {
        let fx = fixture(container).await;
        let (mut sender, task) = connect(fx.addr).await;
        let req = request(
            Method::GET,
            &format!("/v1.41/containers/{container}/logs?follow=1&stdout=1"),
            empty(),
        );
        let resp = tokio::time::timeout(BOUND, sender.send_request(req))
            .await
            .expect("answered in time")
            .expect("an HTTP answer");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let first = read_exactly(&mut body, fake_daemon::FOLLOW_FIRST.len()).await;
        assert_eq!(first, fake_daemon::FOLLOW_FIRST);
        assert!(
            !fx.fake.logs_closed.is_set(),
            "{container}: the stream is open"
        );
        drop(body);
        drop(sender);
        task.abort();
        let _ = task.await;
        let left = Instant::now();
        assert!(
            fx.fake.logs_closed.wait(BOUND).await,
            "{container}: the daemon's connection was still open {BOUND:?} after the client left"
        );
        eprintln!(
            "{container}: the daemon saw the close {:?} after the client left",
            left.elapsed()
        );
    }
}

/// `docker events` then Ctrl-C: the merged stream's feeding connection to
/// the daemon closes though the daemon sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_events_closes_the_daemon_connection() {
    let fx = fixture("events-leave").await;
    let (mut sender, task) = connect(fx.addr).await;
    let req = request(Method::GET, "/v1.41/events?forever=1", empty());
    let resp = tokio::time::timeout(BOUND, sender.send_request(req))
        .await
        .expect("answered in time")
        .expect("an HTTP answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut first: Value = serde_json::from_str(fake_daemon::EVENT_ONE).unwrap();
    first["Actor"]["Attributes"]["flocker.server"] = json!("s1");
    let got = read_exactly(&mut body, format!("{first}\n").len()).await;
    assert_eq!(serde_json::from_slice::<Value>(&got).unwrap(), first);
    assert!(!fx.fake.events_closed.is_set(), "the stream is open");
    drop(body);
    drop(sender);
    task.abort();
    let _ = task.await;
    assert!(
        fx.fake.events_closed.wait(BOUND).await,
        "the daemon's events connection was still open {BOUND:?} after the client left"
    );
}

/// A daemon that never answers a call that does not stream: 504 after the
/// backend timeout, with a message; the proxy answers `/_ping` meanwhile,
/// and drops its connection to the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_daemon_call_is_a_504_and_ping_still_answers() {
    let fx = fixture("hang").await;
    let addr = fx.addr;
    let started = Instant::now();
    let start = tokio::spawn(async move {
        call(addr, Method::POST, "/v1.41/containers/hang/start", empty()).await
    });
    assert!(
        fx.fake.hang_started.wait(BOUND).await,
        "the start reached the daemon"
    );
    let (status, headers, body) = call(addr, Method::GET, "/_ping", empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"OK");
    assert_eq!(headers.get("api-version").unwrap(), "1.41");
    assert!(
        !start.is_finished(),
        "the ping came back while the start hung"
    );
    let (status, headers, body) = tokio::time::timeout(BOUND, start)
        .await
        .expect("the start is answered in time")
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(message(&body), "the server's daemon did not answer in time");
    assert!(
        took >= BACKEND_TIMEOUT && took < BACKEND_TIMEOUT + Duration::from_secs(3),
        "the 504 came after {took:?}"
    );
    assert!(
        fx.fake.hang_dropped.wait(BOUND).await,
        "the proxy's connection to the hanging daemon was closed"
    );
}

fn env_of(body: &Value) -> Vec<String> {
    body.get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn query_value(path_and_query: &str, key: &str) -> Option<String> {
    let query = path_and_query.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.to_string())
    })
}

fn is_docker_name(n: &str) -> bool {
    let mut chars = n.chars();
    n.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The create the daemon got: its path, body and headers as the proxy
/// rewrote them.
fn check_create(c: &fake_daemon::Created, name: &str) -> Value {
    assert!(
        c.path_and_query.starts_with("/v1.41/containers/create?")
            || c.path_and_query.starts_with("/containers/create?"),
        "{}",
        c.path_and_query
    );
    assert_eq!(
        query_value(&c.path_and_query, "name").as_deref(),
        Some(name),
        "{}",
        c.path_and_query
    );
    let length: usize = c
        .headers
        .get("content-length")
        .expect("a Content-Length")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, c.body.len(), "the Content-Length is the body's");
    assert!(c.headers.get("transfer-encoding").is_none());
    let body: Value = serde_json::from_slice(&c.body).expect("a JSON body");
    let port = body
        .pointer("/HostConfig/PortBindings/80~1tcp/0/HostPort")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no HostPort for 80/tcp in {body}"));
    let port: u16 = port.parse().unwrap();
    assert!((41000..=41099).contains(&port), "host port {port}");
    let env = env_of(&body);
    let service = name.rsplit_once('.').map_or(name, |(s, pid)| {
        if pid.bytes().all(|b| b.is_ascii_digit()) {
            s
        } else {
            name
        }
    });
    assert!(env.contains(&format!("SERVICE_ID={name}")), "{env:?}");
    assert!(env.contains(&format!("SERVICE_NAME={service}")), "{env:?}");
    assert_eq!(body["Image"], json!(fake_daemon::KNOWN_IMAGE));
    body
}

/// A named create: the body the daemon gets is rewritten (a host port in
/// the server's range, the service env), with its own Content-Length and
/// `?name=`; the daemon's 201 comes back as it was; the name is then in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_rewrites_the_body_for_the_server() {
    let fx = fixture("create").await;
    let (status, _, body) = call(
        fx.addr,
        Method::POST,
        "/v1.41/containers/create?name=web.1",
        full(json!({"Image": "fakeimg", "Env": ["A=1"], "HostConfig": {}}).to_string()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["Id"], json!(fake_daemon::container_id(1)));
    let creates = fx.fake.creates();
    assert_eq!(creates.len(), 1);
    let sent = check_create(&creates[0], "web.1");
    assert!(env_of(&sent).contains(&"A=1".to_string()));

    // The route is saved: the same name again is a conflict, not a create.
    let (status, _, body) = call(
        fx.addr,
        Method::POST,
        "/v1.41/containers/create?name=web.1",
        full(json!({"Image": "fakeimg"}).to_string()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(message(&body).contains("name_in_use"), "{}", message(&body));
    assert_eq!(fx.fake.creates().len(), 1);
}

/// An unnamed create is given a name Docker accepts before it is decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_unnamed_gets_a_docker_name() {
    let fx = fixture("create-unnamed").await;
    let (status, _, body) = call(
        fx.addr,
        Method::POST,
        "/containers/create",
        full(json!({"Image": "fakeimg"}).to_string()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let creates = fx.fake.creates();
    assert_eq!(creates.len(), 1);
    let name = query_value(&creates[0].path_and_query, "name").expect("a name was given");
    assert!(is_docker_name(&name), "{name:?}");
    check_create(&creates[0], &name);
}

/// What a create is refused for, each before the daemon sees a create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refusals() {
    let fx = fixture("create-refused").await;
    let create = "/v1.41/containers/create?name=bad.1";

    // Every decision slot taken: a 503 at once, nothing sent to a server.
    let held: Vec<_> = std::iter::from_fn(|| fx.proxy.decisions.try_enter()).collect();
    let (status, _, body) = call(
        fx.addr,
        Method::POST,
        create,
        full(r#"{"Image": "fakeimg"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(message(&body).contains("try again"), "{}", message(&body));
    assert!(fx.fake.creates().is_empty());
    drop(held);

    // Not JSON.
    let (status, _, body) = call(
        fx.addr,
        Method::POST,
        create,
        full(r#"{"Image": "fakeimg","#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("JSON"), "{}", message(&body));

    // Over the cap, sent chunked (no Content-Length): read up to the cap.
    let cap = 256 * 1024;
    let big = format!(
        r#"{{"Image":"fakeimg","Labels":{{"pad":"{}"}}}}"#,
        "x".repeat(cap)
    );
    let chunks: Vec<Bytes> = big
        .as_bytes()
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let (status, _, body) = call(fx.addr, Method::POST, create, chunked(chunks)).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(message(&body).contains("limit"), "{}", message(&body));

    // Over the cap by its Content-Length: refused before any body byte is
    // sent (the proxy must not wait for it).
    let mut raw = tokio::time::timeout(BOUND, TcpStream::connect(fx.addr))
        .await
        .unwrap()
        .unwrap();
    let head = format!(
        "POST {create} HTTP/1.1\r\nHost: flocker-test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        cap + 1
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(BOUND, raw.read_to_end(&mut answer))
        .await
        .expect("the 413 comes without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let (_, json_body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        message(json_body.as_bytes()).contains("262144-byte limit"),
        "{answer}"
    );

    // A link to no container: the decision's 400, never a 404 (the CLI
    // would pull).
    let (status, _, body) = call(
        fx.addr,
        Method::POST,
        "/v1.41/containers/create?name=app.1",
        full(json!({"Image": "fakeimg", "HostConfig": {"Links": ["nosuch:db"]}}).to_string()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        message(&body).contains("unknown_link"),
        "{}",
        message(&body)
    );

    // An image no server has: 404 No such image (the CLI pulls, retries).
    let (status, _, body) = call(
        fx.addr,
        Method::POST,
        "/v1.41/containers/create?name=other.1",
        full(json!({"Image": "nosuchimage"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(message(&body), "No such image: nosuchimage");

    assert!(
        fx.fake.creates().is_empty(),
        "the daemon saw a create: {:?}",
        fx.fake.creates()
    );
    assert!(fx
        .fake
        .requests()
        .iter()
        .all(|r| !r.contains("/containers/create")));
}

/// What the proxy answers itself: `/_ping` (HEAD and GET), `/version`, and
/// a 501 for what it does not do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_version_and_unsupported() {
    let fx = fixture("ping").await;
    for method in [Method::HEAD, Method::GET] {
        let (status, headers, body) = call(fx.addr, method.clone(), "/_ping", empty()).await;
        assert_eq!(status, StatusCode::OK, "{method}");
        assert_eq!(headers.get("api-version").unwrap(), "1.41", "{method}");
        let want: &[u8] = if method == Method::HEAD { b"" } else { b"OK" };
        assert_eq!(&body[..], want, "{method}");
    }
    let (status, headers, body) = call(fx.addr, Method::GET, "/v1.41/version", empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["ApiVersion"], json!("1.41"));
    assert_eq!(v["MinAPIVersion"], json!("1.24"));
    let components = v["Components"].as_array().unwrap();
    assert!(
        components.iter().any(|c| c["Name"] == json!("server s1")
            && c["Version"] == json!("fake")
            && c["Details"]["ApiVersion"] == json!("1.41")),
        "the daemon's version is shown: {v}"
    );

    // One client connection, kept alive across answered, forwarded and
    // refused calls (the CLI reuses its connection).
    let (mut sender, _task) = connect(fx.addr).await;
    for (method, path, want) in [
        (Method::HEAD, "/_ping", StatusCode::OK),
        (
            Method::POST,
            "/v1.41/containers/web/start",
            StatusCode::NO_CONTENT,
        ),
        (Method::GET, "/v1.41/containers/web/json", StatusCode::OK),
        (
            Method::POST,
            "/v1.41/swarm/init",
            StatusCode::NOT_IMPLEMENTED,
        ),
        (Method::GET, "/_ping", StatusCode::OK),
    ] {
        tokio::time::timeout(BOUND, sender.ready())
            .await
            .unwrap_or_else(|_| panic!("the connection is ready for {method} {path}"))
            .unwrap_or_else(|e| panic!("the connection was closed before {method} {path}: {e}"));
        let resp = tokio::time::timeout(
            BOUND,
            sender.send_request(request(method.clone(), path, empty())),
        )
        .await
        .expect("answered in time")
        .expect("an HTTP answer");
        assert_eq!(resp.status(), want, "{method} {path}");
        read_to_end(resp.into_body()).await;
    }

    let (status, _, body) = call(fx.addr, Method::POST, "/v1.41/build", empty()).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    let m = message(&body);
    assert!(m.contains("not supported by flocker proxy"), "{m}");
    assert!(m.contains("POST /v1.41/build"), "{m}");
    assert!(
        fx.fake.requests().iter().all(|r| !r.contains("build")),
        "the refused call reached the daemon"
    );
}
