//! `flocker bench`: `place` decisions per second against a store.
//!
//! Seeds `--servers` servers (hostnames `bench-nN`, wide port ranges) and
//! places `--count` containers named `bench-<run>.<i>`, each publishing one
//! port, from `--concurrency` tasks. Against the embedded store the default
//! is a scratch file in a temporary directory, removed afterwards; with
//! `--store` it writes into that store, refusing one that holds servers
//! other than `bench-*` or any routes (real containers could then land on
//! fake servers) unless `force` is set, and removes the servers and routes
//! it wrote when it is done. Prints one JSON
//! line: store, count, seconds, places per second, retries, the rate of
//! deciding alone on the same state (no save), and on the embedded store
//! the rate of bare redb write transactions of about the same size in a
//! scratch file beside it, measured in alternating rounds with the places
//! (`raw_transactions_per_second`, `place_to_raw`): what the disk allows.

use std::sync::Arc;
use std::time::Instant;

use std::path::PathBuf;

use flocker_core::Server;
use serde_json::{json, Value};

use crate::engine::{Engine, EngineError, Native};
use crate::place::{PlaceError, Placer};
use crate::store::any::AnyStore;
use crate::store::url::StoreUrl;
use crate::store::{Store, StoreError};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The store to write into; a scratch embedded store when absent.
    pub store: Option<StoreUrl>,
    /// Containers to place.
    pub count: u32,
    /// Servers to seed.
    pub servers: u32,
    /// Places running at once.
    pub concurrency: u32,
    /// Skip measuring the decide-only rate.
    pub place_only: bool,
    /// Write into a `store` that holds real servers or routes.
    pub force: bool,
}

/// Why a bench run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Place(#[from] PlaceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A bench request or server was refused, or a place not saved.
    #[error("bench request refused: {0}")]
    Refused(Value),
    /// The scratch files could not be made or written.
    #[error("{}: {source}", path.display())]
    Scratch {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a bench task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// `--store` holds a real cluster; bench would seed fake servers into it.
    #[error("bench refuses to write into a store that holds {0}; use a scratch store (no --store), or --force")]
    RealStore(String),
}

/// Runs the bench; the report is the JSON line `flocker bench` prints.
pub async fn run(config: &BenchConfig) -> Result<Value, BenchError> {
    let (url, scratch_dir) = match &config.store {
        Some(u) => (u.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("flocker-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| scratch(&dir, e))?;
            (StoreUrl::File(dir.join("bench.redb")), Some(dir))
        }
    };
    let result = match &config.store {
        Some(_) => seeded(&url, config).await,
        None => match AnyStore::open(&url).await {
            Ok(store) => bench(&url, Arc::new(store), config).await,
            Err(e) => Err(e.into()),
        },
    };
    if let Some(dir) = scratch_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn scratch(
    path: &std::path::Path,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> BenchError {
    BenchError::Scratch {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// A bench into a caller's store: refused when it holds a real cluster
/// (unless forced); what it wrote is removed afterwards, even after a failure.
async fn seeded(url: &StoreUrl, args: &BenchConfig) -> Result<Value, BenchError> {
    let store = Arc::new(AnyStore::open(url).await?);
    let before = store.cluster().await?;
    if !args.force {
        let real: Vec<&str> = before
            .servers()
            .map(|s| s.hostname.as_str())
            .filter(|h| !h.starts_with("bench-"))
            .collect();
        let routes = before.routes().count();
        if !real.is_empty() {
            return Err(BenchError::RealStore(format!(
                "{} servers not named bench-* ({}{})",
                real.len(),
                real.iter().take(3).copied().collect::<Vec<_>>().join(", "),
                if real.len() > 3 { ", ..." } else { "" }
            )));
        }
        if routes > 0 {
            return Err(BenchError::RealStore(format!("{routes} routes")));
        }
    }
    let had: std::collections::HashSet<String> =
        before.servers().map(|s| s.hostname.clone()).collect();
    drop(before);
    let result = bench(url, store.clone(), args).await;
    let cleaned = clean_up(&store, &had).await;
    let report = result?;
    cleaned?;
    Ok(report)
}

/// Removes this run's routes (then prunes them) and the seeded servers the
/// store did not hold before.
async fn clean_up(
    store: &AnyStore,
    had: &std::collections::HashSet<String>,
) -> Result<(), BenchError> {
    let prefix = format!("bench-{}.", std::process::id());
    let cluster = store.cluster().await?;
    let ours: Vec<String> = cluster
        .routes()
        .filter(|r| r.name.starts_with(&prefix) && r.is_live())
        .map(|r| r.name.clone())
        .collect();
    let seeded: Vec<String> = cluster
        .servers()
        .map(|s| s.hostname.clone())
        .filter(|h| h.starts_with("bench-n") && !had.contains(h))
        .collect();
    drop(cluster);
    for name in ours {
        store.remove_route(&name).await?;
    }
    store
        .prune_routes(&crate::store::Prune {
            older_than: None,
            name_prefix: prefix,
        })
        .await?;
    for h in seeded {
        store.remove_server(&h).await?;
    }
    Ok(())
}

async fn bench(
    url: &StoreUrl,
    store: Arc<AnyStore>,
    args: &BenchConfig,
) -> Result<Value, BenchError> {
    let servers: Vec<Server> = (0..args.servers.max(1))
        .map(|i| {
            Server::from_value(
                &json!({"hostname": format!("bench-n{i}"), "address": format!("10.9.{}.{}", i / 250, i % 250 + 1),
                        "port_range": [10000, 65000]}),
                "bench",
            )
        })
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError::Refused(e.to_value()))?;
    store.put_servers(&servers).await?;
    let run = std::process::id();

    // Deciding alone, on the seeded state.
    let cluster = store.cluster().await?;
    let n = if args.place_only {
        0
    } else {
        args.count.clamp(1, 5000)
    };
    let t = Instant::now();
    for i in 0..n {
        let d = Native.decide(&cluster, &request(run, i))?;
        if d.is_error() {
            return Err(BenchError::Refused(d.output));
        }
    }
    let decide_rate = f64::from(n) / t.elapsed().as_secs_f64().max(1e-9);
    drop(cluster);

    let conc = args.concurrency.max(1);
    // On the embedded store, the same number of bare redb write
    // transactions (a route-sized record and a port claim, committed the
    // same way) in a scratch file beside it: the raw rate `place` is
    // measured against. Places and raw transactions alternate in ten
    // rounds, so that a change in disk load hits both alike.
    let mut raw = match url {
        StoreUrl::File(path) => Some(RawFile::open(path.with_extension("raw.redb"))?),
        StoreUrl::Etcd { .. } => None,
    };
    let rounds = 10u32.min(args.count.max(1));
    let (mut place_secs, mut raw_secs, mut retries) = (0.0, 0.0, 0u64);
    for round in 0..rounds {
        let from = args.count * round / rounds;
        let to = args.count * (round + 1) / rounds;
        let t = Instant::now();
        retries += place_range(&store, run, from, to, conc).await?;
        place_secs += t.elapsed().as_secs_f64();
        if let Some(r) = raw.take() {
            let (r, took) = tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                let res = r.write(from, to);
                (r, res.map(|_| t.elapsed().as_secs_f64()))
            })
            .await?;
            raw_secs += took?;
            raw = Some(r);
        }
    }
    if let Some(r) = raw {
        r.remove();
    }
    let secs = place_secs;
    let raw_rate = (raw_secs > 0.0).then(|| (f64::from(args.count) / raw_secs).round());
    Ok(json!({
        "store": url.to_string(),
        "servers": args.servers,
        "count": args.count,
        "concurrency": conc,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "places_per_second": (f64::from(args.count) / secs).round(),
        "retries": retries,
        "decides_per_second": decide_rate.round(),
        "raw_transactions_per_second": raw_rate,
        "place_to_raw": raw_rate.map(|r| ((f64::from(args.count) / secs) / r * 100.0).round() / 100.0),
    }))
}

/// Places requests `from..to` from `conc` tasks; returns the retries. On
/// the embedded store they go through the batching placer, as in
/// `flocker serve`; on etcd each task places on its own.
async fn place_range(
    store: &Arc<AnyStore>,
    run: u32,
    from: u32,
    to: u32,
    conc: u32,
) -> Result<u64, BenchError> {
    let placer = Placer::new(store.clone(), Arc::new(Native), 64, 256)?;
    let mut tasks = Vec::new();
    for w in 0..conc {
        let placer = placer.clone();
        tasks.push(tokio::spawn(async move {
            let mut retries = 0u64;
            for i in (from + w..to).step_by(conc as usize) {
                let r = request(run, i);
                let p = placer.place(r).await?;
                if !p.saved {
                    return Err(BenchError::Refused(p.decided.output));
                }
                retries += u64::from(p.retries);
            }
            Ok::<u64, BenchError>(retries)
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await??;
    }
    Ok(retries)
}

/// A scratch redb file written the way the embedded store writes.
struct RawFile {
    db: redb::Database,
    path: PathBuf,
}

const RAW: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("raw");

impl RawFile {
    fn open(path: PathBuf) -> Result<RawFile, BenchError> {
        let db = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .create(&path)
            .map_err(|e| scratch(&path, e))?;
        Ok(RawFile { db, path })
    }

    /// One transaction per `i`: a route-sized record and a port claim.
    fn write(&self, from: u32, to: u32) -> Result<(), BenchError> {
        let err = |e: &dyn std::fmt::Display| scratch(&self.path, e.to_string());
        for i in from..to {
            let txn = self.db.begin_write().map_err(|e| err(&e))?;
            {
                let mut t = txn.open_table(RAW).map_err(|e| err(&e))?;
                let name = format!("raw.{i}");
                let record = request(0, i).to_string();
                t.insert(name.as_str(), record.as_str())
                    .map_err(|e| err(&e))?;
                let port = format!("n/{i}");
                t.insert(port.as_str(), name.as_str())
                    .map_err(|e| err(&e))?;
            }
            txn.commit().map_err(|e| err(&e))?;
        }
        Ok(())
    }

    fn remove(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}

/// The bench request number `i` of run `run`: a named container publishing one port.
fn request(run: u32, i: u32) -> Value {
    json!({"name": format!("bench-{run}.{i}"), "container": {"Image": "bench"},
           "image": {"Config": {"ExposedPorts": {"8080/tcp": {}}}}})
}
