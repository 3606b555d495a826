//! `flocker bench`: the flags, read into [`flocker_host::bench::BenchConfig`].

use clap::Args;
use flocker_host::bench::{self, BenchConfig};
use flocker_host::store::url::StoreUrl;

use super::exit::{Outcome, EXIT_OK};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The store to write into; a scratch embedded store when absent.
    #[arg(long)]
    pub store: Option<String>,
    /// Containers to place.
    #[arg(long, default_value_t = 2000)]
    pub count: u32,
    /// Servers to seed.
    #[arg(long, default_value_t = 10)]
    pub servers: u32,
    /// Places running at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u32,
    /// Skip measuring the decide-only rate.
    #[arg(long)]
    pub place_only: bool,
    /// Write into a `--store` that holds servers other than `bench-*`, or
    /// routes; without it bench refuses such a store.
    #[arg(long)]
    pub force: bool,
}

pub async fn run(args: BenchArgs) -> Outcome {
    let config = BenchConfig {
        store: args.store.as_deref().map(StoreUrl::parse).transpose()?,
        count: args.count,
        servers: args.servers,
        concurrency: args.concurrency,
        place_only: args.place_only,
        force: args.force,
    };
    let report = bench::run(&config).await?;
    println!("{report}");
    Ok(EXIT_OK)
}
