//! The `flocker` command line.
//!
//! Exit codes, for every command:
//! - 0: done; for `decide`, `place` and `explain`, a decision.
//! - 1: an answer that is an error: a decision `{"error": ...}`, a route or
//!   server that does not exist, a policy that failed validation, a store
//!   that `store check` found inconsistent.
//! - 2: a usage problem: bad arguments (clap's own errors), an unreadable
//!   INPUT file, a bad `--store` URL, an unreadable or invalid `--policy`.
//! - 3: the host failed: the store is unreachable or locked, a save lost to
//!   other writers on every retry, the policy module trapped or timed out.
//!
//! One file per command, each with its own arguments; `args`, `exit` and
//! `io` hold what they share. The CLI is the top of the crate: it is
//! declared by `main.rs`, and the library knows nothing of it (no clap
//! types in `flocker_host`).

mod args;
mod bench;
mod decide;
mod exit;
mod explain;
mod inventory;
mod io;
mod place;
mod policy;
mod proxy;
mod routes;
mod serve;
mod store;
mod table;
mod transport;
mod volumes;

use clap::{Parser, Subcommand};

use exit::{Failure, Outcome};

#[derive(Parser, Debug)]
#[command(
    name = "flocker",
    version,
    about = "Decides where a `docker run` lands in a small Docker cluster, and keeps the cluster state.",
    after_help = "Exit codes: 0 done (a decision), 1 an error answer (an {\"error\": ...} decision, \
a missing record), 2 a usage problem, 3 the host failed (store unreachable, policy trapped).\n\
Store commands take --store etcd://HOST:PORT[,HOST:PORT...][/PREFIX] or --store file:PATH; \
without it, $FLOCKER_STORE, else the embedded store file:flocker.redb in the current directory."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Decide a full decision input (SPEC section 2) and print the decision JSON.
    Decide(decide::DecideArgs),
    /// Decide {name, container, image} against a store's state and save the route.
    Place(place::PlaceArgs),
    /// Show, as a table, why each server was or was not chosen for a request.
    Explain(explain::ExplainArgs),
    /// The servers of the cluster.
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// The routes earlier decisions saved.
    #[command(subcommand)]
    Routes(routes::RoutesCommand),
    /// Volume claims: which server holds each named volume's data.
    #[command(subcommand)]
    Volumes(volumes::VolumesCommand),
    /// Policy modules: push (validated first), history, rollback.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Serve decisions over HTTP: POST /v1/place, POST /v1/decide, GET /healthz, GET /metrics.
    Serve(serve::ServeArgs),
    /// Serve the Docker Engine API in front of the inventory's servers:
    /// `docker -H tcp://HOST:PORT run ...` lands on the chosen server.
    Proxy(proxy::ProxyArgs),
    /// Maintenance of the store itself.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Measure `place` decisions per second against a scratch store.
    Bench(bench::BenchArgs),
}

/// Parses the command line, runs it and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version print to stdout and exit 0; usage errors exit 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let outcome = match cli.command {
        // No runtime needed to decide a file.
        Command::Decide(args) => decide::run(args),
        command => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run(command)),
            Err(e) => Err(Failure::failed(format!("cannot start the runtime: {e}"))),
        },
    };
    match outcome {
        Ok(code) => code,
        Err(f) => {
            eprintln!("flocker: {}", f.message);
            f.code
        }
    }
}

async fn run(command: Command) -> Outcome {
    match command {
        Command::Decide(args) => decide::run(args),
        Command::Place(args) => place::run(args).await,
        Command::Explain(args) => explain::run(args).await,
        Command::Inventory(c) => inventory::run(c).await,
        Command::Routes(c) => routes::run(c).await,
        Command::Volumes(c) => volumes::run(c).await,
        Command::Policy(c) => policy::run(c).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Proxy(args) => proxy::run(args).await,
        Command::Store(c) => store::run(c).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
