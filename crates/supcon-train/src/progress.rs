//! How the library tells what a run is doing. It never prints: it reports to a [`Progress`],
//! which the `supcon-train` binary shows as lines and a progress bar, and which tests and
//! embedding programs can ignore ([`Silent`]) or record.

/// Receives a run's messages and step-by-step progress. Every method does nothing by default.
pub trait Progress: Send + Sync {
    /// A line of information: the data loaded, the run folder, a resumption, an epoch's
    /// summary, an evaluation's result.
    fn message(&self, _line: &str) {}

    /// An epoch of `steps` steps of `stage` (`supcon`, `simclr`, `ce`) starts.
    fn epoch_started(&self, _stage: &str, _epoch: usize, _epochs: usize, _steps: usize) {}

    /// A step ended: the epoch's mean loss so far, the step's learning rate, and the images per
    /// second so far.
    fn step_done(&self, _mean_loss: f64, _learning_rate: f64, _images_per_second: f64) {}

    /// The epoch's steps are done (monitoring and checkpointing follow).
    fn epoch_finished(&self) {}

    /// Whether training should stop where it can save its state (the binary says so after
    /// Ctrl-C or SIGTERM). Training asks after every step and at the end of every epoch but the
    /// last: it saves a checkpoint that `--resume` continues exactly from there, and returns
    /// [`TrainError::Interrupted`](crate::TrainError::Interrupted). Once training has ended,
    /// pre-training asks again before and after extracting the features for its linear
    /// evaluation, and the cross-entropy baseline before its test evaluation: the trained model
    /// is saved, and `--resume` runs the evaluation. Evaluations themselves do not ask.
    /// `false` by default.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// Collects the messages, for tests and programs that want to show them their own way.
#[derive(Debug, Default)]
pub struct Messages(pub std::sync::Mutex<Vec<String>>);

impl Progress for Messages {
    fn message(&self, line: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.to_string());
    }
}
