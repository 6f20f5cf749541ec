//! `supcon-train`: see `supcon-train --help`.

use clap::Parser;
use supcon_train::cli::Cli;

/// Burn's CPU backends allocate a fresh buffer for most tensor operations; with glibc's
/// allocator, every large one is a new `mmap` whose pages fault in zeroed (a third of a
/// training step's time measured here). mimalloc reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    if let Err(error) = supcon_train::commands::run(cli.command, cli.options, cli.quiet) {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
    }
}
