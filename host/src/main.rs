//! The `flocker` command; see `flocker --help`. The command line lives
//! here, above the library: `flocker_host` knows nothing of it.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
