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

mod proxy;
mod table;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};
use flocker_core::{Cluster, ContainerName, Server};
use serde_json::{json, Map, Value};

use crate::place::{self, Decided, Engine, Native, PlaceError};
use crate::store::any::AnyStore;
use crate::store::url::StoreUrl;
use crate::store::{PolicyRecord, Store, StoreError};
use crate::wasm_engine::{self, Wasm};

pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_FAILED: i32 = 3;

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
    Decide(DecideArgs),
    /// Decide {name, container, image} against a store's state and save the route.
    Place(PlaceArgs),
    /// Show, as a table, why each server was or was not chosen for a request.
    Explain(ExplainArgs),
    /// The servers of the cluster.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// The routes earlier decisions saved.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Policy modules: push (validated first), history, rollback.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Serve decisions over HTTP: POST /v1/place, POST /v1/decide, GET /healthz, GET /metrics.
    Serve(crate::serve::ServeArgs),
    /// Serve the Docker Engine API in front of the inventory's servers:
    /// `docker -H tcp://HOST:PORT run ...` lands on the chosen server.
    Proxy(proxy::ProxyArgs),
    /// Maintenance of the store itself.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Measure `place` decisions per second against a scratch store.
    Bench(crate::bench::BenchArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// The engine compiled into this binary.
    Native,
    /// The policy module in wasmtime: --policy FILE, else the store's active
    /// module (place, serve), else the module embedded in this binary.
    Wasm,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArg {
    /// The state store URL (see `crate::store::url`).
    #[arg(
        long,
        env = "FLOCKER_STORE",
        default_value = crate::store::url::DEFAULT_STORE,
        help = "The state store: etcd://HOST:PORT[,HOST:PORT...][/PREFIX] or file:PATH"
    )]
    pub store: String,
}

#[derive(Args, Debug)]
pub struct DecideArgs {
    /// Which engine decides.
    #[arg(long, value_enum, default_value = "native")]
    pub engine: EngineKind,
    /// A policy module to run (implies --engine wasm); validated before use.
    #[arg(long, value_name = "FILE.wasm")]
    pub policy: Option<PathBuf>,
    /// Print the decision indented over several lines.
    #[arg(long)]
    pub pretty: bool,
    /// With the module: CPU time one decision may take. A one-shot input
    /// carries the whole cluster; about 10^4 routes fit in the default.
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub deadline_ms: u64,
    /// With the module: linear memory one decision may use. A one-shot
    /// decision needs about 13 times its input.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub memory_mib: u64,
    /// The decision input; stdin when absent or `-`.
    pub input: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PlaceArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Which engine decides (wasm: the store's active policy module).
    #[arg(long, value_enum, default_value = "native")]
    pub engine: EngineKind,
    /// Re-decisions allowed after a save loses to another writer.
    #[arg(long, default_value_t = place::DEFAULT_MAX_RETRIES)]
    pub retries: u32,
    /// Print one JSON line on stderr about the save:
    /// {"place":{"name","saved","retries","conflicts"}}. Without it the line
    /// is printed only when a save was retried.
    #[arg(long)]
    pub report: bool,
    /// Print the decision indented over several lines.
    #[arg(long)]
    pub pretty: bool,
    /// {"name", "container", "image"}; stdin when absent or `-`.
    pub input: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// {"name", "container", "image"} decided against the store, or a full
    /// decision input (with "inventory"), decided on its own; stdin when
    /// absent or `-`.
    pub input: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum InventoryCommand {
    /// Add or replace servers: one server record or an array of them.
    Add {
        #[command(flatten)]
        store: StoreArg,
        /// Server records (SPEC section 2); stdin when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Remove servers by hostname.
    Rm {
        #[command(flatten)]
        store: StoreArg,
        #[arg(required = true)]
        hostnames: Vec<String>,
    },
    /// List the servers with their load.
    Ls {
        #[command(flatten)]
        store: StoreArg,
        /// The records as a JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoutesCommand {
    /// List the routes.
    Ls {
        #[command(flatten)]
        store: StoreArg,
        /// {"containers": {...}, "volumes": {...}}, the `routes` of a decision input.
        #[arg(long)]
        json: bool,
    },
    /// Mark a route removed and free its host ports (its volume claims stay).
    Rm {
        #[command(flatten)]
        store: StoreArg,
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy module and make it the active one.
    Push {
        #[command(flatten)]
        store: StoreArg,
        #[arg(value_name = "FILE.wasm")]
        file: PathBuf,
    },
    /// The history of pushed modules, oldest first.
    Ls {
        #[command(flatten)]
        store: StoreArg,
        #[arg(long)]
        json: bool,
    },
    /// Write the active module (or, with --embedded or when none was
    /// pushed, the module embedded in this binary) to a file.
    Export {
        #[command(flatten)]
        store: StoreArg,
        /// The embedded default module, whatever the store holds.
        #[arg(long)]
        embedded: bool,
        /// Where to write the module.
        #[arg(long, short, value_name = "FILE.wasm")]
        output: PathBuf,
    },
    /// Make an earlier module active again: DIGEST (or a unique prefix), else
    /// the module active before the current one.
    Rollback {
        #[command(flatten)]
        store: StoreArg,
        digest: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Check that the records agree (every live route's port claims present,
    /// no orphan claims, volume claims); exit 1 listing what is wrong.
    Check {
        #[command(flatten)]
        store: StoreArg,
    },
}

/// A command's failure: what to print on stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
    pub fn error(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_ERROR,
            message: message.into(),
        }
    }
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::BadUrl { .. } => Failure::usage(e.to_string()),
            StoreError::NotFound(_) => Failure::error(e.to_string()),
            _ => Failure::failed(e.to_string()),
        }
    }
}

impl From<PlaceError> for Failure {
    fn from(e: PlaceError) -> Failure {
        match e {
            PlaceError::Store(s) => s.into(),
            other => Failure::failed(other.to_string()),
        }
    }
}

type Outcome = Result<i32, Failure>;

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
        Command::Decide(args) => decide(args),
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
        Command::Decide(args) => decide(args),
        Command::Place(args) => place_cmd(args).await,
        Command::Explain(args) => explain(args).await,
        Command::Inventory(c) => inventory(c).await,
        Command::Routes(c) => routes(c).await,
        Command::Policy(c) => policy(c).await,
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Proxy(args) => proxy::run(args).await,
        Command::Store(StoreCommand::Check { store }) => store_check(store).await,
        Command::Bench(args) => crate::bench::run(args).await,
    }
}

/// Reads INPUT: a file, or stdin when absent or `-`. A failure is a usage problem.
pub fn read_input(path: Option<&Path>) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    match path {
        None => read_stdin(&mut buf)?,
        Some(p) if p.as_os_str() == "-" => read_stdin(&mut buf)?,
        Some(p) => {
            buf = std::fs::read(p)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", p.display())))?
        }
    }
    Ok(buf)
}

fn read_stdin(buf: &mut Vec<u8>) -> Result<(), Failure> {
    std::io::stdin()
        .read_to_end(buf)
        .map(|_| ())
        .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))
}

/// Opens the store for a command that reads or changes what is there: a
/// missing embedded store file is an error (exit 3), not created.
pub async fn open_store(arg: &StoreArg) -> Result<AnyStore, Failure> {
    let url = StoreUrl::parse(&arg.store)?;
    Ok(AnyStore::open_existing(&url).await?)
}

/// Opens the store for a command that may start it (`inventory add`,
/// `policy push`, `serve`): a missing embedded store file is created.
pub async fn open_or_create_store(arg: &StoreArg) -> Result<AnyStore, Failure> {
    let url = StoreUrl::parse(&arg.store)?;
    Ok(AnyStore::open(&url).await?)
}

fn print_json(v: &Value, pretty: bool) -> Result<(), Failure> {
    let text = if pretty {
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    } else {
        v.to_string()
    };
    print_out(&format!("{text}\n"))
}

fn print_out(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Failure::failed(format!("cannot write stdout: {e}")))
}

fn decision_exit(d: &Decided) -> i32 {
    if d.is_error() {
        EXIT_ERROR
    } else {
        EXIT_OK
    }
}

fn decide(args: DecideArgs) -> Outcome {
    let input = read_input(args.input.as_deref())?;
    let engine = if args.policy.is_some() {
        EngineKind::Wasm
    } else {
        args.engine
    };
    let decided = match engine {
        EngineKind::Native => Decided::from_result(
            &flocker_core::parse(&input).and_then(|v| flocker_core::decide(&v)),
        ),
        EngineKind::Wasm => {
            let module = match &args.policy {
                Some(p) => Some(std::fs::read(p).map_err(|e| {
                    Failure::usage(format!("cannot read policy {}: {e}", p.display()))
                })?),
                None => None,
            };
            let limits = crate::policy::Limits {
                deadline: std::time::Duration::from_millis(args.deadline_ms),
                memory_bytes: usize::try_from(args.memory_mib << 20).unwrap_or(usize::MAX),
                ..crate::policy::Limits::default()
            };
            let host = wasm_engine::policy_host_with(module.as_deref(), limits).map_err(|e| {
                Failure::usage(match &args.policy {
                    Some(p) => format!("policy {}: {e}", p.display()),
                    None => format!("embedded policy: {e}"),
                })
            })?;
            let out = host
                .decide(&input)
                .map_err(|e| Failure::failed(e.to_string()))?;
            Decided::from_output(&out).map_err(|e| Failure::failed(e.to_string()))?
        }
    };
    print_json(&decided.output, args.pretty)?;
    Ok(decision_exit(&decided))
}

async fn engine_for(kind: EngineKind, store: &AnyStore) -> Result<Arc<dyn Engine>, Failure> {
    Ok(match kind {
        EngineKind::Native => Arc::new(Native),
        EngineKind::Wasm => {
            let host = wasm_engine::policy_host_for(store)
                .await
                .map_err(Failure::failed)?;
            Arc::new(Wasm {
                host: Arc::new(host),
            })
        }
    })
}

async fn place_cmd(args: PlaceArgs) -> Outcome {
    let input = read_input(args.input.as_deref())?;
    let request = match flocker_core::parse(&input) {
        Ok(v) => v,
        Err(e) => {
            let d = Decided::from_result(&Err(e));
            print_json(&d.output, args.pretty)?;
            return Ok(EXIT_ERROR);
        }
    };
    let store = open_store(&args.store).await?;
    let engine = engine_for(args.engine, &store).await?;
    let name = request.get("name").cloned().unwrap_or(Value::Null);
    // On the embedded store, the decision is made under the file's write
    // lock, on exactly the state it is saved over (see FileStore::placer).
    let result = match &store {
        AnyStore::File(fs) => match fs.placer(engine.clone(), args.retries, 1) {
            Ok(placer) => placer.place(request).await,
            Err(e) => Err(PlaceError::Store(e)),
        },
        AnyStore::Etcd(_) => place::place(&store, &engine, &request, args.retries).await,
    };
    let placed = match result {
        Ok(p) => p,
        Err(e) => {
            if let PlaceError::Contention { retries, conflicts } = &e {
                eprintln!(
                    "{}",
                    json!({"place": {"name": name, "saved": false, "retries": retries, "conflicts": conflicts}})
                );
            }
            return Err(e.into());
        }
    };
    if args.report || placed.retries > 0 {
        eprintln!(
            "{}",
            json!({"place": {"name": name, "saved": placed.saved, "retries": placed.retries, "conflicts": placed.conflicts}})
        );
    }
    print_json(&placed.decided.output, args.pretty)?;
    Ok(decision_exit(&placed.decided))
}

async fn explain(args: ExplainArgs) -> Outcome {
    let input = read_input(args.input.as_deref())?;
    let request = match flocker_core::parse(&input) {
        Ok(v) => v,
        Err(e) => return Err(Failure::error(e.to_string())),
    };
    let cluster = if request.get("inventory").is_some() {
        Arc::new(Cluster::from_snapshot(&request).map_err(|e| Failure::error(e.to_string()))?)
    } else {
        open_store(&args.store).await?.cluster().await?
    };
    let result = cluster.decide(&request);
    let service = request.get("name").and_then(Value::as_str).map(|n| {
        ContainerName::split(n.trim_start_matches('/'))
            .0
            .to_string()
    });
    let (chosen, rejected, summary, error) = match &result {
        Ok(d) => (
            Some(d.server.hostname.clone()),
            d.explain.rejected.clone(),
            d.explain.summary.clone(),
            None,
        ),
        Err(e) => {
            let (rejected, summary) = match e.explain() {
                Some(x) => (x.rejected.clone(), x.summary.clone()),
                None => (Vec::new(), String::new()),
            };
            (None, rejected, summary, Some(e))
        }
    };
    let members_on = |host: &str| -> usize {
        service.as_deref().map_or(0, |s| {
            cluster.members(s).filter(|r| r.server == host).count()
        })
    };
    let chosen_key = chosen
        .as_deref()
        .and_then(|h| cluster.server(h))
        .map(|s| (cluster.load(s), members_on(&s.hostname), s.hostname.clone()));
    let mut rows = Vec::new();
    for s in cluster.servers() {
        let load = cluster.load(s);
        let max = s.max_containers.map_or("-".to_string(), |m| m.to_string());
        let (status, why) = if chosen.as_deref() == Some(s.hostname.as_str()) {
            (
                "chosen",
                "fewest containers, then fewest of its service, then smallest hostname".to_string(),
            )
        } else if let Some((_, reason)) = rejected.iter().find(|(h, _)| h == &s.hostname) {
            ("rejected", reason.clone())
        } else if let Some((cl, cm, ch)) = &chosen_key {
            let m = members_on(&s.hostname);
            let why = if load > *cl {
                format!("eligible, but load {load} against {cl} on {ch}")
            } else if m > *cm {
                format!("eligible, same load, but {m} of its service against {cm} on {ch}")
            } else {
                format!("eligible, tied with {ch}, which sorts first")
            };
            ("eligible", why)
        } else if error.is_some() {
            ("-", "not decided".to_string())
        } else {
            ("eligible", String::new())
        };
        rows.push(vec![
            s.hostname.clone(),
            s.address.clone(),
            format!("{load}/{max}"),
            s.tags.join(","),
            status.to_string(),
            why,
        ]);
    }
    let mut text = table::render(
        &["SERVER", "ADDRESS", "LOAD", "TAGS", "STATUS", "WHY"],
        &rows,
    );
    if !summary.is_empty() {
        text.push_str(&format!("{summary}\n"));
    }
    match error {
        None => {
            print_out(&text)?;
            Ok(EXIT_OK)
        }
        Some(e) => {
            text.push_str(&format!("error {}: {e}\n", e.kind()));
            print_out(&text)?;
            Ok(EXIT_ERROR)
        }
    }
}

fn read_servers(bytes: &[u8]) -> Result<Vec<Server>, Failure> {
    let v = flocker_core::parse(bytes).map_err(|e| Failure::error(e.to_string()))?;
    let records: Vec<(String, &Value)> = match &v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("[{i}]"), s))
            .collect(),
        other => vec![(String::new(), other)],
    };
    let mut servers: Vec<Server> = Vec::new();
    for (path, record) in records {
        let s = Server::from_value(record, &path).map_err(|e| Failure::error(e.to_string()))?;
        if servers.iter().any(|o| o.hostname == s.hostname) {
            return Err(Failure::error(format!(
                "{path}.hostname: duplicate hostname {:?}",
                s.hostname
            )));
        }
        servers.push(s);
    }
    if servers.is_empty() {
        return Err(Failure::error("no server records given"));
    }
    Ok(servers)
}

async fn inventory(c: InventoryCommand) -> Outcome {
    match c {
        InventoryCommand::Add { store, file } => {
            let bytes = read_input(file.as_deref())?;
            let servers = read_servers(&bytes)?;
            let store = open_or_create_store(&store).await?;
            store.put_servers(&servers).await?;
            let names: Vec<&str> = servers.iter().map(|s| s.hostname.as_str()).collect();
            print_out(&format!(
                "added {} server{}: {}\n",
                servers.len(),
                if servers.len() == 1 { "" } else { "s" },
                names.join(", ")
            ))?;
            Ok(EXIT_OK)
        }
        InventoryCommand::Rm { store, hostnames } => {
            let store = open_store(&store).await?;
            let mut missing = Vec::new();
            for h in &hostnames {
                if store.remove_server(h).await? {
                    print_out(&format!("removed {h}\n"))?;
                } else {
                    missing.push(h.as_str());
                }
            }
            if missing.is_empty() {
                Ok(EXIT_OK)
            } else {
                Err(Failure::error(format!(
                    "no such server: {}",
                    missing.join(", ")
                )))
            }
        }
        InventoryCommand::Ls { store, json } => {
            let cluster = open_store(&store).await?.cluster().await?;
            if json {
                let records: Vec<Value> = cluster.servers().map(Server::to_value).collect();
                print_json(&Value::Array(records), false)?;
                return Ok(EXIT_OK);
            }
            let rows: Vec<Vec<String>> = cluster
                .servers()
                .map(|s| {
                    let mut flags = Vec::new();
                    if s.reserved {
                        flags.push("reserved");
                    }
                    if s.full {
                        flags.push("full");
                    }
                    if s.down {
                        flags.push("down");
                    }
                    vec![
                        s.hostname.clone(),
                        s.address.clone(),
                        s.docker.clone(),
                        format!(
                            "{}/{}",
                            cluster.load(s),
                            s.max_containers.map_or("-".to_string(), |m| m.to_string())
                        ),
                        format!("{}-{}", s.port_range.0, s.port_range.1),
                        s.tags.join(","),
                        flags.join(","),
                    ]
                })
                .collect();
            print_out(&table::render(
                &[
                    "HOSTNAME", "ADDRESS", "DOCKER", "LOAD", "PORTS", "TAGS", "FLAGS",
                ],
                &rows,
            ))?;
            Ok(EXIT_OK)
        }
    }
}

async fn routes(c: RoutesCommand) -> Outcome {
    match c {
        RoutesCommand::Ls { store, json } => {
            let cluster = open_store(&store).await?.cluster().await?;
            if json {
                print_json(&routes_json(&cluster), false)?;
                return Ok(EXIT_OK);
            }
            let rows: Vec<Vec<String>> = cluster
                .routes()
                .map(|r| {
                    let ports: Vec<String> =
                        r.ports.iter().map(|(p, h)| format!("{h}->{p}")).collect();
                    vec![
                        r.name.clone(),
                        r.service.clone(),
                        r.server.clone(),
                        r.address.clone(),
                        r.state.clone(),
                        ports.join(","),
                        r.volumes.join(","),
                    ]
                })
                .collect();
            print_out(&table::render(
                &[
                    "NAME", "SERVICE", "SERVER", "ADDRESS", "STATE", "PORTS", "VOLUMES",
                ],
                &rows,
            ))?;
            Ok(EXIT_OK)
        }
        RoutesCommand::Rm { store, name } => {
            let store = open_store(&store).await?;
            match store.remove_route(&name).await? {
                None => Err(Failure::error(format!("no route named {name}"))),
                Some(r) if !r.is_live() => {
                    print_out(&format!("{name} was already {}\n", r.state))?;
                    Ok(EXIT_OK)
                }
                Some(r) => {
                    let ports: Vec<String> = r.host_ports.iter().map(u16::to_string).collect();
                    let freed = if ports.is_empty() {
                        "no host ports".to_string()
                    } else {
                        format!(
                            "freed port{} {}",
                            if ports.len() == 1 { "" } else { "s" },
                            ports.join(", ")
                        )
                    };
                    print_out(&format!("removed {name} from {} ({freed})\n", r.server))?;
                    Ok(EXIT_OK)
                }
            }
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn policy(c: PolicyCommand) -> Outcome {
    match c {
        PolicyCommand::Push { store, file } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
            let runtime = crate::policy::Runtime::new(crate::policy::Limits::default())
                .map_err(|e| Failure::failed(e.to_string()))?;
            let info = crate::policy::validate(&runtime, &bytes).map_err(|e| {
                Failure::error(format!("{} refused, nothing changed: {e}", file.display()))
            })?;
            let store = open_or_create_store(&store).await?;
            let record = PolicyRecord {
                digest: info.digest.clone(),
                pushed_at: now(),
                info: info.raw.clone(),
            };
            store.policy_push(&bytes, record).await?;
            print_out(&format!(
                "active: {} ({} {}, {} bytes)\n",
                info.digest,
                info.name,
                info.version,
                bytes.len()
            ))?;
            Ok(EXIT_OK)
        }
        PolicyCommand::Ls { store, json } => {
            let store = open_store(&store).await?;
            let history = store.policy_history().await?;
            let active = store.policy_active().await?.map(|(d, _)| d);
            if json {
                let items: Vec<Value> = history
                    .iter()
                    .map(|r| {
                        json!({"digest": r.digest, "pushed_at": r.pushed_at,
                               "info": serde_json::from_str::<Value>(&r.info).unwrap_or(Value::String(r.info.clone())),
                               "active": active.as_deref() == Some(r.digest.as_str())})
                    })
                    .collect();
                print_json(&json!({"active": active, "history": items}), false)?;
                return Ok(EXIT_OK);
            }
            let rows: Vec<Vec<String>> = history
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let info: Value = serde_json::from_str(&r.info).unwrap_or(Value::Null);
                    let label = match (info["name"].as_str(), info["version"].as_str()) {
                        (Some(n), Some(v)) => format!("{n} {v}"),
                        _ => r.info.clone(),
                    };
                    let is_active = active.as_deref() == Some(r.digest.as_str())
                        && !history[i + 1..]
                            .iter()
                            .any(|later| later.digest == r.digest);
                    vec![
                        (i + 1).to_string(),
                        r.digest.clone(),
                        r.pushed_at.to_string(),
                        label,
                        if is_active { "*".into() } else { String::new() },
                    ]
                })
                .collect();
            let mut text = table::render(&["#", "DIGEST", "PUSHED_AT", "POLICY", "ACTIVE"], &rows);
            if history.is_empty() {
                text.push_str("(no module pushed: the embedded default module is active)\n");
            }
            print_out(&text)?;
            Ok(EXIT_OK)
        }
        PolicyCommand::Export {
            store,
            embedded,
            output,
        } => {
            let (what, bytes) = if embedded {
                (
                    "embedded default".to_string(),
                    crate::policy::DEFAULT_MODULE.to_vec(),
                )
            } else {
                match open_store(&store).await?.policy_active().await? {
                    Some((digest, bytes)) => (digest, bytes),
                    None => (
                        "embedded default (none pushed)".to_string(),
                        crate::policy::DEFAULT_MODULE.to_vec(),
                    ),
                }
            };
            std::fs::write(&output, &bytes)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", output.display())))?;
            print_out(&format!(
                "wrote {what} module to {} ({} bytes)\n",
                output.display(),
                bytes.len()
            ))?;
            Ok(EXIT_OK)
        }
        PolicyCommand::Rollback { store, digest } => {
            let store = open_store(&store).await?;
            let history = store.policy_history().await?;
            let active = store.policy_active().await?.map(|(d, _)| d);
            let target = match digest {
                Some(prefix) => {
                    let mut found: Vec<&str> = history
                        .iter()
                        .map(|r| r.digest.as_str())
                        .filter(|d| d.starts_with(prefix.as_str()))
                        .collect();
                    found.sort_unstable();
                    found.dedup();
                    match found.as_slice() {
                        [one] => one.to_string(),
                        [] => {
                            return Err(Failure::error(format!(
                                "no pushed module has digest {prefix}"
                            )))
                        }
                        _ => {
                            return Err(Failure::error(format!(
                                "digest prefix {prefix} is ambiguous"
                            )))
                        }
                    }
                }
                None => {
                    let Some(active) = active.as_deref() else {
                        return Err(Failure::error("no module was pushed; nothing to roll back"));
                    };
                    let last = history.iter().rposition(|r| r.digest == active);
                    let before =
                        last.and_then(|i| history[..i].iter().rev().find(|r| r.digest != active));
                    match before {
                        Some(r) => r.digest.clone(),
                        None => {
                            return Err(Failure::error(format!(
                                "no module was active before {active}"
                            )))
                        }
                    }
                }
            };
            store.policy_activate(&target).await?;
            print_out(&format!(
                "active: {target} (was {})\n",
                active.as_deref().unwrap_or("the embedded default")
            ))?;
            Ok(EXIT_OK)
        }
    }
}

async fn store_check(arg: StoreArg) -> Outcome {
    let url = StoreUrl::parse(&arg.store)?;
    let StoreUrl::File(path) = &url else {
        return Err(Failure::usage(
            "store check runs on the embedded store (file:PATH)",
        ));
    };
    if !path.exists() {
        return Err(Failure::failed(format!(
            "no embedded store at {}",
            path.display()
        )));
    }
    let path = path.clone();
    let store = tokio::task::spawn_blocking(move || crate::store::file::FileStore::open(path))
        .await
        .map_err(|e| Failure::failed(e.to_string()))??;
    let problems = store.check()?;
    let cluster = store.cluster().await?;
    let live = cluster.routes().filter(|r| r.is_live()).count();
    if problems.is_empty() {
        print_out(&format!(
            "consistent: {} servers, {} routes ({live} live), {} volume claims\n",
            cluster.servers().count(),
            cluster.routes().count(),
            cluster.volumes().count()
        ))?;
        Ok(EXIT_OK)
    } else {
        let mut text = String::new();
        for p in &problems {
            text.push_str(p);
            text.push('\n');
        }
        print_out(&text)?;
        Err(Failure::error(format!("{} problems found", problems.len())))
    }
}

/// The `routes` JSON of a cluster, for callers that print it.
pub fn routes_json(cluster: &Cluster) -> Value {
    cluster
        .to_snapshot()
        .get("routes")
        .cloned()
        .unwrap_or_else(|| json!({"containers": Map::new(), "volumes": Map::new()}))
}
