//! `flocker policy push | check | ls | export | rollback`: policy modules.

use clap::Subcommand;
use std::path::PathBuf;

use flocker_host::policy::{load_validated, Limits, PolicyError, Runtime, DEFAULT_MODULE};
use flocker_host::rollout::{self, PushError};
use flocker_host::store::Store;
use serde_json::{json, Value};

use super::args::{open_or_create_store, open_store, StoreArg};
use super::exit::{Failure, Outcome, EXIT_ERROR, EXIT_OK};
use super::io::{print_json, print_out};
use super::table;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy module and make it the active one.
    Push {
        #[command(flatten)]
        store: StoreArg,
        #[arg(value_name = "FILE.wasm")]
        file: PathBuf,
    },
    /// Run a module on generated clusters and requests and check every
    /// answer against the contract's hard rules; on a failure print the
    /// smallest failing input found and exit 1.
    Check {
        #[arg(value_name = "FILE.wasm")]
        file: PathBuf,
        /// How many generated inputs to run.
        #[arg(long, default_value_t = rollout::check::DEFAULT_CASES)]
        cases: u32,
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

pub async fn run(c: PolicyCommand) -> Outcome {
    match c {
        PolicyCommand::Push { store, file } => {
            let bytes = rollout::read_module(&file).map_err(|e| Failure::usage(e.to_string()))?;
            let runtime =
                Runtime::new(Limits::default()).map_err(|e| Failure::failed(e.to_string()))?;
            // Validated before the store is opened: a refused module
            // changes nothing, not even by creating an empty store.
            let size = bytes.len();
            let module = rollout::validate(&runtime, bytes)
                .await
                .map_err(|e| match e {
                    PushError::Refused(e) => {
                        Failure::error(format!("{} refused, nothing changed: {e}", file.display()))
                    }
                    other => other.into(),
                })?;
            let store = open_or_create_store(&store).await?;
            let info = module.push_to(&store).await?;
            print_out(&format!(
                "active: {} ({} {}, {} bytes)\n",
                info.digest, info.name, info.version, size
            ))?;
            Ok(EXIT_OK)
        }
        PolicyCommand::Check { file, cases } => {
            let bytes = rollout::read_module(&file).map_err(|e| Failure::usage(e.to_string()))?;
            let runtime =
                Runtime::new(Limits::default()).map_err(|e| Failure::failed(e.to_string()))?;
            let started = std::time::Instant::now();
            let checked = tokio::task::spawn_blocking(move || {
                let (policy, _) = load_validated(&runtime, &bytes)?;
                Ok::<_, PolicyError>(rollout::check::check(&policy, cases))
            })
            .await
            .map_err(|e| Failure::failed(format!("the check task failed: {e}")))?
            .map_err(|e| Failure::error(format!("{} refused: {e}", file.display())))?;
            match checked {
                Ok(c) => {
                    print_out(&format!(
                        "{}: {} cases checked ({} decisions, {} errors), every answer within the contract ({:.1}s)\n",
                        file.display(),
                        c.cases,
                        c.decisions,
                        c.errors,
                        started.elapsed().as_secs_f64()
                    ))?;
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    let input = serde_json::to_string_pretty(&e.input).unwrap_or_default();
                    print_out(&format!(
                        "{}: breaks the contract: {}\ncounterexample (shrunk):\n{input}\nthe module answered:\n{}\n",
                        file.display(),
                        e.why,
                        e.output
                    ))?;
                    Ok(EXIT_ERROR)
                }
            }
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
                ("embedded default".to_string(), DEFAULT_MODULE.to_vec())
            } else {
                match open_store(&store).await?.policy_active().await? {
                    Some((digest, bytes)) => (digest, bytes),
                    None => (
                        "embedded default (none pushed)".to_string(),
                        DEFAULT_MODULE.to_vec(),
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
            let target = rollout::rollback_target(&history, active.as_deref(), digest.as_deref())
                .map_err(|e| Failure::error(e.to_string()))?;
            // Conditioned on the active module read above: a push since
            // then fails this with "active module changed".
            store.policy_activate(&target, active.as_deref()).await?;
            print_out(&format!(
                "active: {target} (was {})\n",
                active.as_deref().unwrap_or("the embedded default")
            ))?;
            Ok(EXIT_OK)
        }
    }
}
