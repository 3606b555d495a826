//! `flocker store check`: maintenance of the store itself.

use clap::Subcommand;
use flocker_host::store::file::FileStore;
use flocker_host::store::url::StoreUrl;
use flocker_host::store::Store;

use super::args::StoreArg;
use super::exit::{Failure, Outcome, EXIT_OK};
use super::io::print_out;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Check that the records agree (every live route's port claims present,
    /// no orphan claims, volume claims); exit 1 listing what is wrong.
    Check {
        #[command(flatten)]
        store: StoreArg,
    },
}

pub async fn run(c: StoreCommand) -> Outcome {
    let StoreCommand::Check { store: arg } = c;
    let url = StoreUrl::parse(&arg.store)?;
    let StoreUrl::File(path) = &url else {
        return Err(Failure::usage(
            "store check runs on the embedded store (file:PATH)",
        ));
    };
    if !path.exists() {
        return Err(Failure::failed(format!(
            "no embedded store at {}",
            path.display()
        )));
    }
    let path = path.clone();
    let store = tokio::task::spawn_blocking(move || FileStore::open(path))
        .await
        .map_err(|e| Failure::failed(e.to_string()))??;
    let problems = store.check()?;
    let cluster = store.cluster().await?;
    let live = cluster.routes().filter(|r| r.is_live()).count();
    if problems.is_empty() {
        print_out(&format!(
            "consistent: {} servers, {} routes ({live} live), {} volume claims\n",
            cluster.servers().count(),
            cluster.routes().count(),
            cluster.volumes().count()
        ))?;
        Ok(EXIT_OK)
    } else {
        let mut text = String::new();
        for p in &problems {
            text.push_str(p);
            text.push('\n');
        }
        print_out(&text)?;
        Err(Failure::error(format!("{} problems found", problems.len())))
    }
}
