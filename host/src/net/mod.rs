//! The transport every listener and dial shares: TLS after Docker's flags
//! ([`tls`]), the limits one client may hold ([`limits`]), and the accept
//! loop that applies both ([`server`]). It knows nothing of decisions or
//! stores; `serve` and `proxy` hand it a router.

pub mod limits;
pub mod server;
pub mod tls;

pub use limits::{read_body, BodyError, Gate, Limits, Pass};
pub use server::{ListenError, Listener, Server, Transport};
pub use tls::{ListenTls, TlsError};
