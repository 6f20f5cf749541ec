//! Per-epoch metrics, kept in the checkpoint and written to `metrics.jsonl`.

use std::path::Path;

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
    /// When the epoch ended, in seconds since the Unix epoch (0 in runs of earlier versions).
    #[serde(default)]
    pub unix_time: f64,
}

/// Seconds since the Unix epoch, now.
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
