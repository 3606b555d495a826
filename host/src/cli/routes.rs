//! `flocker routes ls | rm | prune`: the routes earlier decisions saved.

use clap::Subcommand;
use flocker_core::Cluster;
use flocker_host::store::{Prune, Store};
use serde_json::{json, Map, Value};

use super::args::{open_store, StoreArg};
use super::exit::{Failure, Outcome, EXIT_OK};
use super::io::{print_json, print_out};
use super::table;

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
    /// Delete removed routes (history); live routes and every volume claim stay.
    Prune {
        #[command(flatten)]
        store: StoreArg,
        /// Only routes removed at least this long ago: `90s`, `30m`, `12h`, `7d`.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

/// `N` followed by `s`, `m`, `h` or `d`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration like 90s, 30m, 12h or 7d");
    let unit = text.chars().last().ok_or_else(bad)?;
    let scale: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    n.checked_mul(scale)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

pub async fn run(c: RoutesCommand) -> Outcome {
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
        RoutesCommand::Prune { store, older_than } => {
            let store = open_store(&store).await?;
            let prune = Prune {
                older_than,
                name_prefix: String::new(),
            };
            let n = store.prune_routes(&prune).await?;
            print_out(&format!(
                "pruned {n} removed route{}\n",
                if n == 1 { "" } else { "s" }
            ))?;
            Ok(EXIT_OK)
        }
    }
}

/// The `routes` JSON of a cluster, for callers that print it.
fn routes_json(cluster: &Cluster) -> Value {
    cluster
        .to_snapshot()
        .get("routes")
        .cloned()
        .unwrap_or_else(|| json!({"containers": Map::new(), "volumes": Map::new()}))
}
