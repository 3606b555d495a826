use std::time::Duration;

/// Why a policy module could not be loaded, validated or run.
///
/// A decision that the engine refuses (`{"error": {"kind": ...}}`) is not a
/// `PolicyError`: it is the module's answer and comes back as `Ok`. A
/// `PolicyError` means the module itself misbehaved or the host could not
/// run it, and only the call that saw it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The runtime could not be set up.
    #[error("policy runtime: {0}")]
    Config(String),

    /// The bytes are not a WebAssembly module wasmtime can compile.
    #[error("policy module does not compile: {0}")]
    Compile(String),

    /// The module does not follow `docs/ABI.md`: an import, a missing or
    /// mistyped export, an unsupported ABI version, malformed policy info.
    #[error("policy module breaks the ABI: {0}")]
    Abi(String),

    /// The module could not be instantiated.
    #[error("policy module does not instantiate: {0}")]
    Instantiate(String),

    /// The call ran past its deadline and was interrupted.
    #[error("policy module call {call} ran past its deadline of {limit:?} and was stopped")]
    Deadline { call: &'static str, limit: Duration },

    /// The module tried to grow its memory past the cap.
    #[error(
        "policy module call {call} asked for {asked} bytes of memory, over the cap of {cap} bytes"
    )]
    MemoryLimit {
        call: &'static str,
        asked: usize,
        cap: usize,
    },

    /// The module trapped (a panic in the engine, `unreachable`, an
    /// out-of-bounds access, ...).
    #[error("policy module call {call} trapped: {message}")]
    Trap { call: &'static str, message: String },

    /// The module returned a result that is not one: out of bounds, not
    /// UTF-8, not the JSON the ABI says.
    #[error("policy module call {call} returned a bad result: {reason}")]
    BadResult { call: &'static str, reason: String },

    /// The module answered a state call (`snapshot_load`, `snapshot_apply`)
    /// with an error result; `0` is its JSON.
    #[error("policy module refused the state: {0}")]
    Refused(String),

    /// The input cannot be given to a module at all (over 2 GiB).
    #[error("policy input: {0}")]
    Input(String),

    /// The module ran but failed a check of [`super::validate`].
    #[error("policy module failed validation: {0}")]
    Validation(String),

    /// The module's decision does not bear out against the request and the
    /// cluster it was made on ([`super::guard::check`]); nothing is saved.
    #[error("policy module's decision refused: {0}")]
    Contract(String),

    /// Module bytes read from a store do not hash to the digest they are
    /// stored under ([`super::check_digest`]).
    #[error("the module stored as {stored} has digest {actual}: the stored bytes are not the module pushed")]
    Digest { stored: String, actual: String },
}

impl PolicyError {
    /// A short, stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Config(_) => "config",
            PolicyError::Compile(_) => "compile",
            PolicyError::Abi(_) => "abi",
            PolicyError::Instantiate(_) => "instantiate",
            PolicyError::Deadline { .. } => "deadline",
            PolicyError::MemoryLimit { .. } => "memory_limit",
            PolicyError::Trap { .. } => "trap",
            PolicyError::BadResult { .. } => "bad_result",
            PolicyError::Refused(_) => "refused",
            PolicyError::Input(_) => "input",
            PolicyError::Validation(_) => "validation",
            PolicyError::Contract(_) => "contract",
            PolicyError::Digest { .. } => "digest",
        }
    }

    /// Whether the instance that saw this error may be in a broken state
    /// (it stopped part-way), so resident state in it must be rebuilt.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            PolicyError::Deadline { .. }
                | PolicyError::MemoryLimit { .. }
                | PolicyError::Trap { .. }
                | PolicyError::BadResult { .. }
        )
    }
}
