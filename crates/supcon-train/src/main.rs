//! `supcon-train`: see `supcon-train --help`.

use clap::Parser;
use supcon_train::cli::Cli;

/// See `supcon_train::memory`: mimalloc, keeping freed memory.
#[global_allocator]
static ALLOCATOR: supcon_train::memory::Allocator = mimalloc::MiMalloc;

fn main() {
    supcon_train::memory::keep_freed_memory();
    let cli = Cli::parse();
    if let Err(error) = supcon_train::commands::run(cli.command, cli.options, cli.quiet) {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
    }
}
