//! What a run reports: per-epoch metrics (kept in the checkpoint, written to `metrics.jsonl`)
//! and the progress bar.

use std::io::Write;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Learning rate at the epoch's last step.
    pub learning_rate: f64,
    /// Training images (not views) per second.
    pub images_per_second: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
    /// kNN accuracy on the validation split, when measured this epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_accuracy: Option<f64>,
    /// Classification accuracy on the validation split (cross-entropy and linear stages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
}

/// Writes `history` as JSON lines to `path` (atomically: a resumed run rewrites it from its
/// checkpoint, dropping epochs the interruption lost).
pub fn write_jsonl(path: &Path, history: &[EpochMetrics]) -> Result<(), TrainError> {
    let mut text = Vec::new();
    for m in history {
        serde_json::to_writer(&mut text, m)
            .map_err(|e| TrainError::run(path, format!("cannot serialise metrics: {e}")))?;
        text.push(b'\n');
    }
    crate::atomic::write_atomically(path, &text)
}

/// A progress bar over one epoch's steps showing loss, learning rate and speed; hidden when
/// `quiet` (tests) or when stderr is not a terminal, in which case a line per epoch is printed.
pub fn epoch_bar(
    stage: &str,
    epoch: usize,
    epochs: usize,
    steps: usize,
    quiet: bool,
) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    if quiet || !console_is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{stage} epoch {epoch}/{epochs}"));
    bar
}

fn console_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Prints a line to stdout unless quiet, flushing so that logs interleave correctly.
pub fn say(quiet: bool, line: &str) {
    if !quiet {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
