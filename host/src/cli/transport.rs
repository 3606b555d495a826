//! The listener flags `serve` and `proxy` share: TLS as Docker names it,
//! and the transport limits.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use flocker_host::net::{Limits, ListenTls, Transport};

#[derive(Args, Debug, Clone)]
pub struct TransportArgs {
    /// Use TLS and let in only clients whose certificate chains to
    /// --tlscacert (Docker's --tlsverify).
    #[arg(long)]
    pub tlsverify: bool,
    /// The CA client certificates must chain to (with --tlsverify).
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// This listener's certificate; with --tlskey and without --tlsverify,
    /// TLS without checking clients.
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// The key of --tlscert.
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Listen on a non-loopback address without --tlsverify (a warning is
    /// printed: whoever reaches it controls every server).
    #[arg(long)]
    pub insecure_listen: bool,
    /// Time a client has to send a request's head, and the longest a
    /// keep-alive connection may sit idle, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub header_timeout_ms: u64,
    /// Time a client has to send a decision request or create body, in
    /// milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub body_timeout_ms: u64,
    /// Connections held open at once; one more is closed unanswered.
    #[arg(long, value_name = "N", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_connections: u64,
    /// Decisions running at once; one more is answered 503 at once.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_decisions: u64,
    /// The largest decision request or create body, in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_body_kib: u64,
}

impl TransportArgs {
    pub fn transport(&self) -> Transport {
        // The ranges above keep every value well inside usize.
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Transport {
            tls: ListenTls {
                verify: self.tlsverify,
                ca: self.tlscacert.clone(),
                cert: self.tlscert.clone(),
                key: self.tlskey.clone(),
            },
            limits: Limits {
                header_timeout: Duration::from_millis(self.header_timeout_ms),
                body_timeout: Duration::from_millis(self.body_timeout_ms),
                max_connections: size(self.max_connections),
                max_decisions: size(self.max_decisions),
                max_body: size(self.max_body_kib).saturating_mul(1024),
            },
            insecure_listen: self.insecure_listen,
        }
    }
}
