//! Exit codes, and [`Failure`]: a command's failure mapped to one of them,
//! once for every error type the library returns.

use flocker_host::bench::BenchError;
use flocker_host::engine::EngineError;
use flocker_host::place::PlaceError;
use flocker_host::rollout::PushError;
use flocker_host::store::StoreError;

pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_FAILED: i32 = 3;

/// What a command returns: its exit code, or a failure to print.
pub type Outcome = Result<i32, Failure>;

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
            StoreError::NotFound(_) | StoreError::Changed(_) => Failure::error(e.to_string()),
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

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        match e {
            EngineError::Store(s) => s.into(),
            other => Failure::failed(other.to_string()),
        }
    }
}

impl From<PushError> for Failure {
    fn from(e: PushError) -> Failure {
        match e {
            PushError::Store(s) => s.into(),
            PushError::Refused(_) => Failure::error(e.to_string()),
            PushError::Task(_) => Failure::failed(e.to_string()),
        }
    }
}

impl From<BenchError> for Failure {
    fn from(e: BenchError) -> Failure {
        match e {
            BenchError::Store(s) => s.into(),
            BenchError::Place(p) => p.into(),
            r @ BenchError::RealStore(_) => Failure::usage(r.to_string()),
            other => Failure::failed(other.to_string()),
        }
    }
}
