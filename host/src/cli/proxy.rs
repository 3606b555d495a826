//! `flocker proxy`: the flags, read into [`flocker_host::proxy::ProxyConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use flocker_host::place;
use flocker_host::proxy::{self, Listen, ProxyConfig};

use super::args::{open_or_create_store, EngineKind, StoreArg};
use super::exit::{Failure, Outcome, EXIT_OK};
use super::transport::TransportArgs;

#[derive(Args, Debug)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Certificates for daemons dialed over TLS (https://, or tcp:// on
    /// 2376): DIR/ca.pem, cert.pem, key.pem as in DOCKER_CERT_PATH;
    /// `DIR/<hostname>/` for one server (then TLS on any port).
    #[arg(long, value_name = "DIR", env = "FLOCKER_SERVER_CERTS")]
    pub server_certs: Option<PathBuf>,
    /// Where to serve the Docker API: tcp://HOST:PORT (port 0 picks a free
    /// one) or unix:///PATH; repeat for several. Default tcp://127.0.0.1:2375.
    #[arg(long, value_name = "URL")]
    pub listen: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    /// Which engine decides.
    #[arg(long, value_enum, default_value = "wasm")]
    pub engine: EngineKind,
    /// Re-decisions allowed after a save loses to another writer.
    #[arg(long, default_value_t = place::DEFAULT_MAX_RETRIES)]
    pub retries: u32,
    /// How long a server may take to answer a call that does not stream,
    /// in milliseconds (stop and restart add their own wait).
    #[arg(long, value_name = "MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub backend_timeout_ms: u64,
    /// How often every server's daemon is checked, in milliseconds; one
    /// that stops answering is decided on as down.
    #[arg(long, value_name = "MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub health_ms: u64,
}

pub async fn run(args: ProxyArgs) -> Outcome {
    let listen = args
        .listen
        .iter()
        .map(|l| Listen::parse(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let store = open_or_create_store(&args.store).await?;
    let config = ProxyConfig {
        engine: args.engine.into(),
        retries: args.retries,
        listen,
        metrics_listen: args.metrics_listen,
        backend_timeout: Duration::from_millis(args.backend_timeout_ms),
        health_every: Duration::from_millis(args.health_ms),
        transport: args.transport.transport(),
        server_certs: args.server_certs,
    };
    proxy::run(store, config).await.map_err(|e| match e {
        proxy::listen::StartError::Listen(_) => Failure::usage(e.to_string()),
        other => Failure::failed(other.to_string()),
    })?;
    Ok(EXIT_OK)
}
