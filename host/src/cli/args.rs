//! Arguments more than one command takes: the store, the engine.

use clap::{Args, ValueEnum};
use flocker_host::engine::EngineChoice;
use flocker_host::store::any::AnyStore;
use flocker_host::store::url::StoreUrl;

use super::exit::Failure;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// The engine compiled into this binary.
    Native,
    /// The policy module in wasmtime: --policy FILE, else the store's active
    /// module (place, serve), else the module embedded in this binary.
    Wasm,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArg {
    /// The state store URL (see `flocker_host::store::url`).
    #[arg(
        long,
        env = "FLOCKER_STORE",
        default_value = flocker_host::store::url::DEFAULT_STORE,
        help = "The state store: etcd://HOST:PORT[,HOST:PORT...][/PREFIX], \
                etcds://[USER@]HOST:PORT[,...][/PREFIX][?cacert=FILE&cert=FILE&key=FILE] \
                (password in FLOCKER_ETCD_PASSWORD) or file:PATH"
    )]
    pub store: String,
}

impl From<EngineKind> for EngineChoice {
    fn from(kind: EngineKind) -> EngineChoice {
        match kind {
            EngineKind::Native => EngineChoice::Native,
            EngineKind::Wasm => EngineChoice::Wasm,
        }
    }
}

/// Opens the store for a command that reads or changes what is there: a
/// missing embedded store file is an error (exit 3), not created.
pub async fn open_store(arg: &StoreArg) -> Result<AnyStore, Failure> {
    let url = StoreUrl::parse(&arg.store)?;
    Ok(AnyStore::open_existing(&url).await?)
}

/// Opens the store for a command that may start it (`inventory add`,
/// `policy push`, `serve`): a missing embedded store file is created.
pub async fn open_or_create_store(arg: &StoreArg) -> Result<AnyStore, Failure> {
    let url = StoreUrl::parse(&arg.store)?;
    Ok(AnyStore::open(&url).await?)
}
