//! `flocker volumes ls | rm`: the volume claims that pin named volumes' data
//! to a server.

use clap::Subcommand;
use flocker_host::store::prune::volume_users;
use flocker_host::store::{Released, Store};
use serde_json::{json, Map, Value};

use super::args::{open_store, StoreArg};
use super::exit::{Failure, Outcome, EXIT_OK};
use super::io::{print_json, print_out};
use super::table;

#[derive(Subcommand, Debug)]
pub enum VolumesCommand {
    /// List the volume claims: volume, the server holding it, live routes using it.
    Ls {
        #[command(flatten)]
        store: StoreArg,
        /// {"VOLUME": {"server": "...", "used_by": [...]}, ...}
        #[arg(long)]
        json: bool,
    },
    /// Release volume claims, so the volume may be placed anew on any
    /// server; refused for a volume a live route uses.
    Rm {
        #[command(flatten)]
        store: StoreArg,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub async fn run(c: VolumesCommand) -> Outcome {
    match c {
        VolumesCommand::Ls { store, json } => {
            let cluster = open_store(&store).await?.cluster().await?;
            let rows: Vec<(String, String, Vec<String>)> = cluster
                .volumes()
                .map(|(v, s)| (v.to_string(), s.to_string(), volume_users(&cluster, v)))
                .collect();
            if json {
                let mut out = Map::new();
                for (v, s, users) in rows {
                    out.insert(v, json!({"server": s, "used_by": users}));
                }
                print_json(&Value::Object(out), false)?;
                return Ok(EXIT_OK);
            }
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|(v, s, users)| vec![v, s, users.join(",")])
                .collect();
            print_out(&table::render(&["VOLUME", "SERVER", "USED BY"], &rows))?;
            Ok(EXIT_OK)
        }
        VolumesCommand::Rm { store, names } => {
            let store = open_store(&store).await?;
            let mut refused = Vec::new();
            for name in &names {
                match store.release_volume(name).await? {
                    Released::Released { server } => {
                        print_out(&format!("released {name} (was held by {server})\n"))?;
                    }
                    Released::NotClaimed => refused.push(format!("no volume claim named {name}")),
                    Released::InUse(users) => refused.push(format!(
                        "volume {name} is used by live route{} {}; remove {} first",
                        if users.len() == 1 { "" } else { "s" },
                        users.join(", "),
                        if users.len() == 1 { "it" } else { "them" }
                    )),
                }
            }
            if refused.is_empty() {
                Ok(EXIT_OK)
            } else {
                Err(Failure::error(refused.join("; ")))
            }
        }
    }
}
