//! Talking to one server's Docker daemon: dial its `docker` URL (`tcp://`
//! or `unix://`), send one HTTP/1.1 request on a fresh connection, and hand
//! back the response with its connection tied to the body.
//!
//! One connection per call, never pooled: an upgraded call (attach, exec)
//! owns its socket anyway, and a stream the client abandons (`logs -f`, a
//! detached run's `wait`) must take its backend connection down with it.
//! [`Tied`] does that: dropping the response body aborts the connection
//! task, so no half-read connection is left open on the server.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;

use super::dial_tls::DialTls;
use super::error::{BadAddress, ProxyError};
use crate::net::tls;
use tokio_rustls::TlsConnector;

/// How long dialing a daemon may take before it counts as not answering.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a server's daemon listens, from its `docker` URL.
#[derive(Clone)]
pub enum Dial {
    /// `tcp://HOST:PORT` (or `http://HOST:PORT`).
    Tcp(String),
    /// `https://HOST:PORT`, `tcp://HOST:2376`, or a server with its own
    /// certificates ([`DialTls`]); the connector, or why there is none.
    Tls {
        addr: String,
        connector: Result<TlsConnector, String>,
    },
    /// `unix:///PATH`.
    Unix(std::path::PathBuf),
}

/// The port Docker reserves for its TLS API.
const DOCKER_TLS_PORT: &str = "2376";

impl Dial {
    /// Reads server `hostname`'s `docker` URL; `tls` says whether and how
    /// it is dialed over TLS.
    pub fn parse(url: &str, hostname: &str, tls: &DialTls) -> Result<Dial, BadAddress> {
        let bad = |expected| BadAddress {
            url: url.to_string(),
            expected,
        };
        let (rest, https) = match (url.strip_prefix("https://"), url.strip_prefix("tcp://")) {
            (Some(rest), _) => (Some(rest), true),
            (None, Some(rest)) => (Some(rest), false),
            (None, None) => (url.strip_prefix("http://"), false),
        };
        if let Some(rest) = rest {
            let hostport = rest.trim_end_matches('/');
            let Some((_, port)) = hostport.rsplit_once(':') else {
                return Err(bad("tcp://HOST:PORT"));
            };
            if hostport.is_empty() || hostport.contains('/') {
                return Err(bad("tcp://HOST:PORT"));
            }
            let addr = hostport.to_string();
            let over_tls = https
                || (url.starts_with("tcp://") && port == DOCKER_TLS_PORT)
                || (!url.starts_with("http://") && tls.has_own(hostname));
            if over_tls {
                let connector = tls.connector(hostname);
                return Ok(Dial::Tls { addr, connector });
            }
            return Ok(Dial::Tcp(addr));
        }
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("unix:///ABSOLUTE/PATH"));
            }
            return Ok(Dial::Unix(path.into()));
        }
        Err(bad(
            "a tcp://HOST:PORT, https://HOST:PORT or unix:///PATH daemon",
        ))
    }

    /// The `Host` header for a request the proxy makes itself (Go's HTTP
    /// server, which dockerd and podman use, refuses HTTP/1.1 without one).
    pub fn host_header(&self) -> &str {
        match self {
            Dial::Tcp(h) | Dial::Tls { addr: h, .. } => h,
            Dial::Unix(_) => "api.moby.localhost",
        }
    }

    async fn connect(&self) -> Result<Stream, std::io::Error> {
        let dial = async {
            match self {
                Dial::Tcp(addr) => tcp(addr).await.map(Stream::Tcp),
                Dial::Tls { addr, connector } => {
                    let connector = connector
                        .as_ref()
                        .map_err(|e| std::io::Error::other(e.clone()))?;
                    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                    let name = tls::server_name(host).map_err(std::io::Error::other)?;
                    let tcp = tcp(addr).await?;
                    // The handshake's failure (an untrusted certificate, a
                    // refused client certificate) is the dial's error.
                    connector
                        .connect(name, tcp)
                        .await
                        .map(|s| Stream::Tls(Box::new(s)))
                }
                Dial::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            )),
        }
    }
}

async fn tcp(addr: &str) -> Result<TcpStream, std::io::Error> {
    let s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

impl std::fmt::Display for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dial::Tcp(h) => write!(f, "tcp://{h}"),
            Dial::Tls { addr, .. } => write!(f, "https://{addr}"),
            Dial::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dial({self})")
    }
}

/// A TCP, TLS or Unix socket, so one client path serves every daemon.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Aborts the connection task when dropped.
#[derive(Debug)]
pub struct ConnGuard(JoinHandle<()>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A backend response body that keeps its connection alive while it is
/// read and closes it when dropped (the client left, or it was read).
pub struct Tied {
    body: Incoming,
    _conn: ConnGuard,
    _extra: Option<Box<dyn Send + Sync>>,
}

impl hyper::body::Body for Tied {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match Pin::new(&mut self.get_mut().body).poll_frame(cx) {
            // A server that dies mid-stream ends the client's stream where
            // it broke, as a finished body, rather than cutting the
            // client's connection.
            Poll::Ready(Some(Err(e))) => {
                eprintln!("flocker proxy: a server's stream broke off: {e}");
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A backend's response with its connection.
pub struct Answer {
    pub response: Response<Incoming>,
    pub conn: ConnGuard,
}

impl Answer {
    /// The response as one the proxy can send on, its body still streaming
    /// and its connection tied to it. `extra` lives as long as the body
    /// (a metrics guard for an open stream).
    pub fn into_response(self, extra: Option<Box<dyn Send + Sync>>) -> Response<Body> {
        let (parts, body) = self.response.into_parts();
        Response::from_parts(
            parts,
            Body::new(Tied {
                body,
                _conn: self.conn,
                _extra: extra,
            }),
        )
    }

    /// Reads the whole body, at most `cap` bytes, within `timeout`.
    pub async fn collect(
        self,
        cap: usize,
        timeout: Duration,
    ) -> Result<(hyper::http::response::Parts, Bytes), ProxyError> {
        let (parts, body) = self.response.into_parts();
        let limited = http_body_util::Limited::new(body, cap);
        let bytes = match tokio::time::timeout(timeout, limited.collect()).await {
            Err(_) => return Err(ProxyError::BackendTimeout),
            Ok(Err(e)) => return Err(ProxyError::Backend(format!("reading the answer: {e}"))),
            Ok(Ok(c)) => c.to_bytes(),
        };
        drop(self.conn);
        Ok((parts, bytes))
    }
}

/// The JSON values of a stream whose chunks may cut a value anywhere
/// (events, pull progress): feed it chunks, take the complete values.
pub struct JsonValues {
    buf: Vec<u8>,
    cap: usize,
}

impl JsonValues {
    /// At most `cap` bytes of an unfinished value are held.
    pub fn new(cap: usize) -> JsonValues {
        JsonValues {
            buf: Vec::new(),
            cap,
        }
    }

    /// The values `chunk` completes, and an error when the stream cannot go
    /// on: a value that is not JSON, or one longer than the cap.
    pub fn push(&mut self, chunk: &[u8]) -> (Vec<serde_json::Value>, Option<String>) {
        self.buf.extend_from_slice(chunk);
        let mut values = Vec::new();
        let mut consumed = 0;
        let mut error = None;
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter();
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    consumed = it.byte_offset();
                    values.push(v);
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    error = Some(format!("not JSON: {e}"));
                    break;
                }
                None => break,
            }
        }
        self.buf.drain(..consumed);
        if error.is_none() && self.buf.len() > self.cap {
            error = Some(format!("a value over {} bytes", self.cap));
        }
        (values, error)
    }
}

/// Sends `req` to the daemon at `dial` on a new connection. With `upgrades`
/// the connection can be taken over after a 101 (attach, exec start).
/// `timeout` bounds the wait for the response headers; None for calls
/// whose headers may come late (a `logs -f` of a quiet container).
pub async fn send(
    dial: &Dial,
    req: Request<Body>,
    upgrades: bool,
    timeout: Option<Duration>,
) -> Result<Answer, ProxyError> {
    let stream = dial
        .connect()
        .await
        .map_err(|e| ProxyError::Unreachable(format!("{dial}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Unreachable(format!("{dial}: {e}")))?;
    let task = tokio::spawn(async move {
        // Errors here surface on the request or the body, where they are
        // reported; the task only drives the socket.
        if upgrades {
            let _ = conn.with_upgrades().await;
        } else {
            let _ = conn.await;
        }
    });
    let conn = ConnGuard(task);
    let sent = sender.send_request(req);
    let response = match timeout {
        Some(t) => match tokio::time::timeout(t, sent).await {
            Ok(r) => r,
            Err(_) => return Err(ProxyError::BackendTimeout),
        },
        None => sent.await,
    }
    .map_err(|e| ProxyError::Backend(format!("{dial}: {e}")))?;
    Ok(Answer { response, conn })
}

/// A request the proxy makes itself, with an empty or JSON body.
pub fn request(
    method: hyper::Method,
    dial: &Dial,
    path_and_query: &str,
    body: Option<Bytes>,
) -> Result<Request<Body>, ProxyError> {
    let mut b = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, dial.host_header())
        .header(
            hyper::header::USER_AGENT,
            concat!("flocker/", env!("CARGO_PKG_VERSION")),
        );
    let body = match body {
        Some(bytes) => {
            b = b.header(hyper::header::CONTENT_TYPE, "application/json");
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    b.body(body)
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the request: {e}")))
}

/// `GET` (or another body-less call) and the whole answer, for the proxy's
/// own small calls (inspect, ping, version, lists).
pub async fn call(
    dial: &Dial,
    method: hyper::Method,
    path_and_query: &str,
    body: Option<Bytes>,
    timeout: Duration,
    cap: usize,
) -> Result<(hyper::StatusCode, Bytes), ProxyError> {
    let req = request(method, dial, path_and_query, body)?;
    let answer = send(dial, req, false, Some(timeout)).await?;
    let (parts, bytes) = answer.collect(cap, timeout).await?;
    Ok((parts.status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_cut_anywhere() {
        let mut v = JsonValues::new(64);
        let (a, e) = v.push(br#"{"a":1}{"b""#);
        assert_eq!((a.len(), e), (1, None));
        let (b, e) = v.push(b":2}\n");
        assert_eq!(b, vec![serde_json::json!({"b": 2})]);
        assert!(e.is_none());
        assert!(v.push(b"]").1.is_some());
        assert!(JsonValues::new(4).push(br#"{"long""#).1.is_some());
    }

    #[test]
    fn docker_urls() {
        let none = DialTls::default();
        let parse = |u| Dial::parse(u, "s1", &none);
        assert!(
            matches!(parse("tcp://127.0.0.1:2375").unwrap(), Dial::Tcp(a) if a == "127.0.0.1:2375")
        );
        assert!(matches!(
            parse("http://127.0.0.1:2375/").unwrap(),
            Dial::Tcp(_)
        ));
        assert!(
            matches!(parse("unix:///run/podman.sock").unwrap(), Dial::Unix(p) if p == std::path::Path::new("/run/podman.sock"))
        );
        // TLS by scheme or by Docker's TLS port; no certificates given, so
        // the dial will say so.
        for tls in ["https://127.0.0.1:2375", "tcp://127.0.0.1:2376"] {
            match parse(tls).unwrap() {
                Dial::Tls { addr, connector } => {
                    assert_eq!(addr, "127.0.0.1:".to_string() + &tls[tls.len() - 4..]);
                    assert!(connector.err().unwrap().contains("--server-certs"));
                }
                other => panic!("{tls}: {other}"),
            }
        }
        for bad in [
            "ssh://x",
            "tcp://",
            "tcp://host",
            "unix://rel/path",
            "tcp://h:1/x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
