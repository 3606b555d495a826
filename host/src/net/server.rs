//! Serving a router on one listener with TLS and the transport limits:
//! the accept loop `flocker serve`, `flocker proxy` and the metrics
//! listener share.
//!
//! axum's own `serve` has no TLS, no header timeout and no connection cap,
//! so this loop drives hyper's HTTP/1.1 connections itself: each accepted
//! socket takes a connection slot (none free: it is closed at once), does
//! its TLS handshake within the header timeout, then is served with
//! upgrades (attach and exec hijack their connection).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::limits::Limits;
use super::tls::{ListenTls, TlsError};

/// How long connections still open at a stop may take to finish.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The most connections one listener holds, whatever is asked (far past
/// any process's file limit).
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// How a listener is protected, from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    pub tls: ListenTls,
    pub limits: Limits,
    /// `--insecure-listen`: serve a non-loopback address without
    /// `--tlsverify` anyway.
    pub insecure_listen: bool,
}

/// Why a listener was not started.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {what}: {source}")]
    Bind {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(
        "refusing to listen on {what} without --tlsverify: whoever reaches it controls every \
         server behind it; add --tlsverify with certificates (docs/SECURITY.md), listen on \
         127.0.0.1, or pass --insecure-listen"
    )]
    Exposed { what: String },
}

/// A bound socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `HOST:PORT` (port 0 picks a free port).
    pub async fn tcp(hostport: &str) -> Result<Listener, ListenError> {
        TcpListener::bind(hostport)
            .await
            .map(Listener::Tcp)
            .map_err(|source| ListenError::Bind {
                what: format!("tcp://{hostport}"),
                source,
            })
    }

    /// Binds a Unix socket at `path`.
    pub fn unix(path: &Path) -> Result<Listener, ListenError> {
        UnixListener::bind(path)
            .map(|l| Listener::Unix(l, path.to_path_buf()))
            .map_err(|source| ListenError::Bind {
                what: format!("unix://{}", path.display()),
                source,
            })
    }

    /// `tcp://ADDR` with the bound address, or `unix:///PATH`.
    pub fn url(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".into(),
            },
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }

    /// The bound TCP address (`None` for a Unix socket).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Reachable from other machines: TCP on anything but loopback
    /// (`0.0.0.0` included). A Unix socket is guarded by its file mode.
    fn exposed(&self) -> bool {
        self.local_addr().is_some_and(|a| !a.ip().is_loopback())
    }
}

/// A listener ready to serve: its socket, TLS and limits checked.
pub struct Server {
    listener: Listener,
    acceptor: Option<TlsAcceptor>,
    limits: Limits,
}

impl Server {
    /// Checks `transport` against where `listener` is bound: an exposed
    /// address needs `--tlsverify` or `--insecure-listen` (then a warning
    /// goes to stderr), and the certificate files must load.
    pub fn new(listener: Listener, transport: &Transport) -> Result<Server, ListenError> {
        if listener.exposed() && !transport.tls.verify {
            if !transport.insecure_listen {
                return Err(ListenError::Exposed {
                    what: listener.url(),
                });
            }
            eprintln!(
                "flocker: WARNING: {} accepts {} from anyone who can reach it \
                 (--insecure-listen); every server behind it is theirs",
                listener.url(),
                if transport.tls.enabled() {
                    "TLS clients without a certificate"
                } else {
                    "plain HTTP"
                }
            );
        }
        if transport.tls.ca.is_some() && !transport.tls.verify {
            eprintln!(
                "flocker: --tlscacert is only used with --tlsverify; clients are not checked"
            );
        }
        Ok(Server {
            acceptor: transport.tls.acceptor()?,
            limits: transport.limits.clone(),
            listener,
        })
    }

    /// `listening on URL` names the scheme a client uses: `https://` or
    /// `http://` for the decision service, `tcp://` for the Docker API.
    pub fn url(&self) -> String {
        self.listener.url()
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub fn tls(&self) -> bool {
        self.acceptor.is_some()
    }

    /// Serves `app` until `stop` turns true; connections in flight are
    /// asked to finish (keep-alive ends after the current response).
    pub async fn serve(self, app: Router, mut stop: watch::Receiver<bool>) {
        let max = self.limits.max_connections.clamp(1, MAX_CONNECTIONS);
        let slots = Arc::new(Semaphore::new(max));
        let shared = Arc::new(Conn {
            app,
            acceptor: self.acceptor,
            limits: self.limits,
            stop: stop.clone(),
        });
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => break,
                accepted = accept(&self.listener) => {
                    let Some(stream) = accepted else { continue };
                    // Over the cap the socket is dropped unserved: a
                    // refusal costs nothing to make and holds nothing.
                    let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                    let conn = shared.clone();
                    tokio::spawn(async move {
                        match stream {
                            Accepted::Tcp(s) => conn.run(Held { io: s, _slot: slot }).await,
                            Accepted::Unix(s) => conn.run(Held { io: s, _slot: slot }).await,
                        }
                    });
                }
            }
        }
        // Every slot back means every connection has ended; a stream that
        // would not end on its own is cut after the grace.
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(STOP_GRACE, slots.acquire_many(all)).await;
    }
}

/// Resolves once `stop` is true (or its sender is gone). The guard
/// `wait_for` returns is not `Send`, so it is dropped here.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// The next connection; `None` after an error worth skipping. A full
/// process file table (EMFILE) backs off briefly instead of spinning.
async fn accept(listener: &Listener) -> Option<Accepted> {
    let r = match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            Accepted::Tcp(s)
        }),
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    };
    match r {
        Ok(s) => Some(s),
        Err(e) => {
            use std::io::ErrorKind::*;
            if !matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None
        }
    }
}

/// A socket that holds its connection slot for as long as it lives. An
/// upgraded call (attach, exec) carries its socket away from hyper, and
/// the slot with it, so a hijacked stream counts against the cap until it
/// closes.
struct Held<S> {
    io: S,
    _slot: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What every connection of one listener shares.
struct Conn {
    app: Router,
    acceptor: Option<TlsAcceptor>,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl Conn {
    async fn run<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match &self.acceptor {
            None => self.http(stream).await,
            Some(acceptor) => {
                // A client that never finishes its hello is a slow loris
                // too. A refused certificate is the client's to report;
                // the server has nothing to add per attempt.
                let hello = acceptor.accept(stream);
                if let Ok(Ok(tls)) = tokio::time::timeout(self.limits.header_timeout, hello).await {
                    self.http(tls).await;
                }
            }
        }
    }

    async fn http<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = TowerToHyperService::new(self.app.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}
