//! The `flocker` command; see `flocker --help` and [`flocker_host::cli`].

fn main() {
    std::process::exit(flocker_host::cli::main());
}
