//! `supcon-train`: see `supcon-train --help`. A thin layer over the `supcon_train` library: the
//! command line, printing, figures and the allocator live here.

mod app;
mod cli;
#[cfg(feature = "mimalloc")]
mod memory;
mod plot;
mod terminal;

/// See `memory`: mimalloc, keeping freed memory.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    #[cfg(feature = "mimalloc")]
    memory::keep_freed_memory();
    let cli = cli::parse();
    let progress = terminal::Terminal::new(cli.quiet);
    let trains = matches!(
        cli.command,
        None | Some(cli::Command::Pretrain { .. }) | Some(cli::Command::Ce { .. })
    );
    if trains && let Err(error) = progress.stop_on_signals() {
        eprintln!("warning: Ctrl-C will end training at once (no checkpoint): {error}");
    }
    let result = app::run(cli.command, cli.options, &progress);
    let terminated = progress.terminated();
    drop(progress);
    if let Err(error) = result {
        eprintln!("error: {error}");
        let status = match error {
            supcon_train::TrainError::Interrupted(_) if terminated => 143,
            _ => error.exit_code(),
        };
        std::process::exit(status);
    }
}
