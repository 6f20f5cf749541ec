//! The terminal's view of a run: messages on stdout, a progress bar on stderr while an epoch
//! runs (hidden when stderr is not a terminal, and under `--quiet`), and Ctrl-C / SIGTERM as a
//! request to stop training where it can be saved.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use supcon_train::progress::Progress;

/// Shows a run's [`Progress`] on the terminal.
pub struct Terminal {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
    stop: Arc<AtomicBool>,
    /// Set by SIGTERM (besides `stop`), for the exit status.
    terminated: Arc<AtomicBool>,
}

impl Terminal {
    /// Everything, or (`quiet`) nothing but the commands' results.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            terminated: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a SIGTERM came (the run it stopped then exits with 143, as a process the signal
    /// ended would, rather than Ctrl-C's 130).
    pub fn terminated(&self) -> bool {
        self.terminated.load(Ordering::Relaxed)
    }

    /// From now on the first Ctrl-C (SIGINT) or SIGTERM asks training to stop at the end of
    /// its step, with a checkpoint `--resume` continues exactly (and says so on stderr); a
    /// second one ends the process at once, with status 130 (SIGINT) or 143 (SIGTERM). For
    /// the commands that train; the others keep the signals' default, which ends them at once.
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for (signal, status) in [(SIGINT, 130), (SIGTERM, 143)] {
            // The exit is registered first, so that it sees the flag as the previous signal
            // left it: a first signal only sets the flag.
            signal_hook::flag::register_conditional_shutdown(signal, status, self.stop.clone())?;
            signal_hook::flag::register(signal, self.stop.clone())?;
        }
        signal_hook::flag::register(SIGTERM, self.terminated.clone())?;
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprintln!(
                "\nstopping where the run can be saved: after the current training step, or \
                 before the evaluation that follows training (Ctrl-C again quits at once, \
                 losing what was not saved)"
            );
        });
        Ok(())
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for Terminal {
    fn message(&self, line: &str) {
        if self.quiet {
            return;
        }
        let write = || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        };
        match self.bar().as_ref() {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    fn epoch_started(&self, stage: &str, epoch: usize, epochs: usize, steps: usize) {
        if self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{stage} epoch {epoch}/{epochs}"));
        *self.bar() = Some(bar);
    }

    fn step_done(&self, mean_loss: f64, learning_rate: f64, images_per_second: f64) {
        if let Some(bar) = self.bar().as_ref() {
            bar.inc(1);
            bar.set_message(format!(
                "loss {mean_loss:.4} lr {learning_rate:.4} {images_per_second:.0} img/s"
            ));
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn epoch_finished(&self) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.epoch_finished();
    }
}
