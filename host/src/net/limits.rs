//! What one client may hold: how long it may take to send a request's
//! head and body, how big a body it may send, how many connections and
//! decisions may run at once.
//!
//! The header timeout also bounds an idle keep-alive connection: hyper's
//! timer runs whenever a connection waits for the next request head. A
//! streaming call (attach, logs -f, events, wait) is past its head and not
//! reading a body, so no timer runs on it; only the connection cap counts it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The transport limits of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed to send a request head (and to finish a TLS
    /// handshake), counted from when the connection is ready for one.
    pub header_timeout: Duration,
    /// Time allowed to send a body the host reads itself.
    pub body_timeout: Duration,
    /// Open connections; one more is closed at once.
    pub max_connections: usize,
    /// Decisions running at once; one more is answered 503 at once.
    pub max_decisions: usize,
    /// The largest decision request or create body, in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_connections: 2048,
            max_decisions: 256,
            max_body: 1 << 20,
        }
    }
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// 413: over the cap (by its `Content-Length`, or as it arrived).
    #[error("the body is over the {cap}-byte limit")]
    TooLarge { cap: usize },
    /// 408: the client did not finish sending it in time.
    #[error("the body was not sent within {} s", timeout.as_secs_f64())]
    TimedOut { timeout: Duration },
    /// 400: the connection broke or the framing was wrong.
    #[error("cannot read the body: {0}")]
    Broken(String),
}

/// Reads a body the host parses itself, up to `cap` bytes within
/// `timeout`. A declared `Content-Length` over the cap is refused before
/// a byte of the body is read.
pub async fn read_body<B>(
    body: B,
    declared: Option<u64>,
    cap: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge { cap });
    }
    let limited = http_body_util::Limited::new(body, cap);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(BodyError::TimedOut { timeout }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { cap })
        }
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
    }
}

/// The `Content-Length` a request declares, if it is a number.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A bound on work running at once that refuses rather than queues: a
/// caller over the bound is told so at once, so a burst cannot build a
/// queue no one will wait for.
#[derive(Debug, Clone)]
pub struct Gate {
    slots: Arc<Semaphore>,
}

/// Held while the work runs.
#[derive(Debug)]
pub struct Pass(#[allow(dead_code)] OwnedSemaphorePermit);

impl Gate {
    pub fn new(slots: usize) -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// A pass, or `None` when every slot is taken.
    pub fn try_enter(&self) -> Option<Pass> {
        self.slots.clone().try_acquire_owned().ok().map(Pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_body_under_the_cap_is_read() {
        let b = rt()
            .block_on(read_body(
                Full::new(Bytes::from_static(b"abc")),
                Some(3),
                3,
                Duration::from_secs(1),
            ))
            .unwrap();
        assert_eq!(&b[..], b"abc");
    }

    #[test]
    fn a_declared_length_over_the_cap_is_refused_unread() {
        // The body would hang forever if it were read.
        let never = StreamBody::new(futures_util::stream::pending::<
            Result<hyper::body::Frame<Bytes>, std::io::Error>,
        >());
        let e = rt()
            .block_on(read_body(never, Some(11), 10, Duration::from_secs(5)))
            .unwrap_err();
        assert!(matches!(e, BodyError::TooLarge { cap: 10 }), "{e}");
    }

    #[test]
    fn an_undeclared_body_is_cut_at_the_cap() {
        let e = rt()
            .block_on(read_body(
                Full::new(Bytes::from(vec![b'x'; 11])),
                None,
                10,
                Duration::from_secs(1),
            ))
            .unwrap_err();
        assert!(matches!(e, BodyError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn a_stalled_body_times_out() {
        let never = StreamBody::new(futures_util::stream::pending::<
            Result<hyper::body::Frame<Bytes>, std::io::Error>,
        >());
        let e = rt()
            .block_on(read_body(never, None, 10, Duration::from_millis(50)))
            .unwrap_err();
        assert!(matches!(e, BodyError::TimedOut { .. }), "{e}");
    }

    #[test]
    fn the_gate_refuses_past_its_slots() {
        let g = Gate::new(2);
        let a = g.try_enter();
        let b = g.try_enter();
        assert!(a.is_some() && b.is_some());
        assert!(g.try_enter().is_none());
        drop(a);
        assert!(g.try_enter().is_some());
    }
}
