//! `flocker serve`: the flags, read into [`flocker_host::serve::ServeConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use flocker_host::place;
use flocker_host::rollout::Follow;
use flocker_host::serve::{self, ServeConfig, ServeError};

use super::args::{open_or_create_store, EngineKind, StoreArg};
use super::exit::{Failure, Outcome, EXIT_OK};
use super::transport::TransportArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8640")]
    pub listen: String,
    /// Which engine decides.
    #[arg(long, value_enum, default_value = "wasm")]
    pub engine: EngineKind,
    /// A policy module file to watch: pushed (after validation) and swapped
    /// in whenever its content changes.
    #[arg(long, value_name = "FILE.wasm")]
    pub policy_file: Option<PathBuf>,
    /// How often to look for a new active policy, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Re-decisions allowed after a save loses to another writer.
    #[arg(long, default_value_t = place::DEFAULT_MAX_RETRIES)]
    pub retries: u32,
}

pub async fn run(args: ServeArgs) -> Outcome {
    let store = open_or_create_store(&args.store).await?;
    let config = ServeConfig {
        listen: args.listen,
        engine: args.engine.into(),
        retries: args.retries,
        follow: Follow {
            file: args.policy_file,
            every: Duration::from_millis(args.poll_ms.max(10)),
        },
        transport: args.transport.transport(),
    };
    serve::run(store, config).await.map_err(|e| match e {
        ServeError::PolicyFileNeedsWasm | ServeError::Listen(_) => Failure::usage(e.to_string()),
        other => Failure::failed(other.to_string()),
    })?;
    Ok(EXIT_OK)
}
