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
    report_panics(trains);
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

/// Reports a panic (a backend's failure, such as a GPU out of memory, or a bug of ours: every
/// input the trainer checks ends in an `error:` line instead) in plain words with what to do,
/// the exit status staying Rust's 101; under `RUST_BACKTRACE` the standard report follows.
/// Only the first panic is reported (Burn's fusion may catch one in a worker and raise it again).
fn report_panics(trains: bool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static REPORTED: AtomicBool = AtomicBool::new(false);
    let standard = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if REPORTED.swap(true, Ordering::Relaxed) {
            return;
        }
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let at = info
            .location()
            .map_or(String::new(), |l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!(
            "\nerror: internal failure{at}: {message}\n  Not an input the trainer checks: the \
             device failed (out of memory: a smaller --batch_size, or --chunk) or supcon has a \
             bug (please report it, with the output of RUST_BACKTRACE=1)."
        );
        if trains {
            eprintln!(
                "  The run folder keeps the checkpoint of its last saved epoch (--save_freq): \
                 --resume RUN continues from it."
            );
        }
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            standard(info);
        }
    }));
}
