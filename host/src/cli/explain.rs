//! `flocker explain`: why each server was or was not chosen.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use flocker_core::{Cluster, Verdict};
use flocker_host::store::Store;

use super::args::{open_store, StoreArg};
use super::exit::{Failure, Outcome, EXIT_ERROR, EXIT_OK};
use super::io::{print_out, read_input};
use super::table;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// {"name", "container", "image"} decided against the store, or a full
    /// decision input (with "inventory"), decided on its own; stdin when
    /// absent or `-`.
    pub input: Option<PathBuf>,
}

pub async fn run(args: ExplainArgs) -> Outcome {
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
    // A request that fails before routing has no ranking: every server
    // reads "not decided" and the error follows the table.
    let (ranking, error) = match cluster.rank(&request) {
        Ok(r) => {
            let error = match r.chosen {
                Some(_) => None,
                None => cluster.decide(&request).err(),
            };
            (Some(r), error)
        }
        Err(e) => (None, Some(e)),
    };
    let verdict_of = |host: &str| {
        ranking
            .as_ref()
            .and_then(|r| r.servers.iter().find(|s| s.hostname == host))
            .map(|s| &s.verdict)
    };
    let chosen = ranking.as_ref().and_then(|r| r.chosen.as_deref());
    let chosen_key = chosen.and_then(|h| match verdict_of(h) {
        Some(Verdict::Eligible { load, same_service }) => Some((*load, *same_service, h)),
        _ => None,
    });
    let mut rows = Vec::new();
    for s in cluster.servers() {
        let load = cluster.load(s);
        let max = s.max_containers.map_or("-".to_string(), |m| m.to_string());
        let (status, why) = match verdict_of(&s.hostname) {
            _ if chosen == Some(s.hostname.as_str()) => (
                "chosen",
                "fewest containers, then fewest of its service, then smallest hostname".to_string(),
            ),
            Some(Verdict::Removed(reason)) => ("rejected", reason.clone()),
            Some(Verdict::Eligible { load, same_service }) => match chosen_key {
                Some((cl, cm, ch)) => {
                    let why = if *load > cl {
                        format!("eligible, but load {load} against {cl} on {ch}")
                    } else if *same_service > cm {
                        format!(
                            "eligible, same load, but {same_service} of its service against {cm} on {ch}"
                        )
                    } else {
                        format!("eligible, tied with {ch}, which sorts first")
                    };
                    ("eligible", why)
                }
                None => ("eligible", String::new()),
            },
            None => ("-", "not decided".to_string()),
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
    let summary = ranking.map(|r| r.summary).unwrap_or_default();
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
