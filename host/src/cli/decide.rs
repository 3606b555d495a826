//! `flocker decide`: one full decision input, no store.

use std::path::PathBuf;

use clap::Args;
use flocker_host::engine::{self, Decided};
use flocker_host::policy::Limits;
use flocker_host::rollout::ModuleFileError;

use super::args::EngineKind;
use super::exit::{Failure, Outcome};
use super::io::{decision_exit, print_json, read_input};

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

pub fn run(args: DecideArgs) -> Outcome {
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
                Some(p) => Some(flocker_host::rollout::read_module(p).map_err(|e| {
                    Failure::usage(match e {
                        ModuleFileError::Io { path, source } => {
                            format!("cannot read policy {}: {source}", path.display())
                        }
                        too_large => too_large.to_string(),
                    })
                })?),
                None => None,
            };
            let limits = Limits {
                deadline: std::time::Duration::from_millis(args.deadline_ms),
                memory_bytes: usize::try_from(args.memory_mib << 20).unwrap_or(usize::MAX),
                ..Limits::default()
            };
            let host = engine::policy_host_with(module.as_deref(), limits).map_err(|e| {
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
