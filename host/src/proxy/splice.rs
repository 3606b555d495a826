//! attach and exec start: HTTP/1.1 upgrades (`Upgrade: tcp`, 101) whose two
//! sockets are joined byte for byte, half-close carried across.
//!
//! The CLI needs half-close both ways: with no stdin it shuts its write
//! side right after the 101, and `echo x | docker run -i ... cat` sends x,
//! shuts its side, and waits for the echo. Each direction is copied on its
//! own and shut when its source ends. When the daemon's side ends (the
//! process exited), the client's side is given [`GRACE`] and then the
//! sockets are closed, so a client that keeps stdin open does not hold the
//! connection forever.

use std::time::Duration;

use axum::body::Body;
use hyper::upgrade::OnUpgrade;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::backend::Answer;

/// How long the client's side may go on after the daemon's side ended.
pub const GRACE: Duration = Duration::from_secs(2);

/// Answers the client's upgrade with the daemon's 101 and joins the two
/// upgraded sockets in the background.
pub fn splice(client: OnUpgrade, answer: Answer) -> Response<Body> {
    let Answer { mut response, conn } = answer;
    let backend = hyper::upgrade::on(&mut response);
    let mut out = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in response.headers() {
        if name != hyper::header::CONTENT_LENGTH && name != hyper::header::TRANSFER_ENCODING {
            out = out.header(name, value);
        }
    }
    tokio::spawn(async move {
        // The connection task hands the socket over when the upgrade
        // completes; it must run until then.
        let _conn = conn;
        let (client, backend) = match tokio::join!(client, backend) {
            (Ok(c), Ok(b)) => (c, b),
            (c, b) => {
                if let Err(e) = c {
                    eprintln!("flocker proxy: client upgrade failed: {e}");
                }
                if let Err(e) = b {
                    eprintln!("flocker proxy: server upgrade failed: {e}");
                }
                return;
            }
        };
        join(TokioIo::new(client), TokioIo::new(backend)).await;
    });
    out.body(Body::empty()).unwrap_or_else(|_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r
    })
}

/// Copies both ways until both end, shutting each write side when its
/// source ends; see the module doc for the grace after the server's end.
pub async fn join<C, B>(client: C, backend: B)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut br, mut bw) = tokio::io::split(backend);
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut bw).await;
        let _ = bw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut br, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::pin!(up);
    tokio::pin!(down);
    tokio::select! {
        _ = &mut down => {
            let _ = tokio::time::timeout(GRACE, &mut up).await;
        }
        _ = &mut up => {
            down.await;
        }
    }
}
