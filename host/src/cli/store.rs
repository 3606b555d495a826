//! `flocker store check [--repair]`: maintenance of the store itself.

use clap::Subcommand;
use flocker_host::store::Store;

use super::args::{open_store, StoreArg};
use super::exit::{Failure, Outcome, EXIT_OK};
use super::io::print_out;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Check that the records agree (every live route's port claims present,
    /// no orphan claims, volume claims); exit 1 listing what is wrong.
    Check {
        #[command(flatten)]
        store: StoreArg,
        /// First delete every port claim no live route holds (safe while
        /// other hosts place: a claim is deleted only if it and its
        /// holder's route are unchanged since they were read).
        #[arg(long)]
        repair: bool,
    },
}

pub async fn run(c: StoreCommand) -> Outcome {
    let StoreCommand::Check { store: arg, repair } = c;
    let store = open_store(&arg).await?;
    let checked = store.check(repair).await?;
    let mut text = String::new();
    for line in &checked.repaired {
        text.push_str(line);
        text.push('\n');
    }
    if checked.problems.is_empty() {
        let cluster = store.cluster().await?;
        let live = cluster.routes().filter(|r| r.is_live()).count();
        text.push_str(&format!(
            "consistent: {} servers, {} routes ({live} live), {} volume claims\n",
            cluster.servers().count(),
            cluster.routes().count(),
            cluster.volumes().count()
        ));
        print_out(&text)?;
        Ok(EXIT_OK)
    } else {
        for p in &checked.problems {
            text.push_str(p);
            text.push('\n');
        }
        print_out(&text)?;
        Err(Failure::error(format!(
            "{} problems found",
            checked.problems.len()
        )))
    }
}
