//! `flocker inventory add | rm | ls`: the servers.

use std::path::PathBuf;

use clap::Subcommand;
use flocker_core::Server;
use flocker_host::store::Store;
use serde_json::Value;

use super::args::{open_or_create_store, open_store, StoreArg};
use super::exit::{Failure, Outcome, EXIT_OK};
use super::io::{print_json, print_out, read_input};
use super::table;

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

pub async fn run(c: InventoryCommand) -> Outcome {
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
