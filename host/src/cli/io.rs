//! Reading INPUT and writing answers.

use std::io::{Read, Write};
use std::path::Path;

use flocker_host::engine::Decided;
use serde_json::Value;

use super::exit::{Failure, EXIT_ERROR, EXIT_OK};

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

pub fn print_json(v: &Value, pretty: bool) -> Result<(), Failure> {
    let text = if pretty {
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    } else {
        v.to_string()
    };
    print_out(&format!("{text}\n"))
}

pub fn print_out(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Failure::failed(format!("cannot write stdout: {e}")))
}

/// 0 for a decision, 1 for an `{"error": ...}` decision.
pub fn decision_exit(d: &Decided) -> i32 {
    if d.is_error() {
        EXIT_ERROR
    } else {
        EXIT_OK
    }
}
