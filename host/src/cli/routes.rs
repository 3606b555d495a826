//! `flocker routes ls | rm`: the routes earlier decisions saved.

use clap::Subcommand;
use flocker_core::Cluster;
use flocker_host::store::Store;
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
