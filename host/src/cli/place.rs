//! `flocker place`: decide against the store and save the route.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use flocker_host::engine::{self, Decided, StoredModule};
use flocker_host::place::{self as placing, PlaceError, Placer, Repeat};
use serde_json::{json, Value};

use super::args::{open_store, EngineKind, StoreArg};
use super::exit::{Outcome, EXIT_ERROR};
use super::io::{decision_exit, print_json, read_input};

#[derive(Args, Debug)]
pub struct PlaceArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Which engine decides (wasm: the store's active policy module).
    #[arg(long, value_enum, default_value = "native")]
    pub engine: EngineKind,
    /// Re-decisions allowed after a save loses to another writer.
    #[arg(long, default_value_t = placing::DEFAULT_MAX_RETRIES)]
    pub retries: u32,
    /// Print one JSON line on stderr about the save:
    /// {"place":{"name","saved","retries","conflicts"}}. Without it the line
    /// is printed only when a save was retried.
    #[arg(long)]
    pub report: bool,
    /// This place may repeat one whose answer was lost (a timeout, a
    /// crash): if the name's live route was saved from this very input,
    /// print that saved decision (exit 0) instead of `name_in_use`.
    #[arg(long)]
    pub retry: bool,
    /// Print the decision indented over several lines.
    #[arg(long)]
    pub pretty: bool,
    /// {"name", "container", "image"}; stdin when absent or `-`.
    pub input: Option<PathBuf>,
}

pub async fn run(args: PlaceArgs) -> Outcome {
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
    let engine = engine::open(args.engine.into(), &store, StoredModule::Required)
        .await?
        .engine;
    let name = request.get("name").cloned().unwrap_or(Value::Null);
    // On the embedded store, the decision is made under the file's write
    // lock, on exactly the state it is saved over.
    let placer = Placer::new(Arc::new(store), engine, args.retries, 1)?;
    let result = placer.place_as(request, Repeat::asked(args.retry)).await;
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
            json!({"place": {"name": name, "saved": placed.saved, "replayed": placed.replayed, "retries": placed.retries, "conflicts": placed.conflicts}})
        );
    }
    print_json(&placed.decided.output, args.pretty)?;
    Ok(decision_exit(&placed.decided))
}
