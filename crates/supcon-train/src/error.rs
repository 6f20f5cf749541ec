//! The trainer's error type: every failure a user can cause or meet, with its exit status.

use std::path::PathBuf;

/// What went wrong, plainly enough to print as the command's only message.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad option value or combination (unknown model, non-positive learning rate, ...).
    #[error("{0}")]
    Config(String),
    /// The dataset could not be read.
    #[error(transparent)]
    Data(#[from] supcon_data::DataError),
    /// The augmentation configuration does not fit the data.
    #[error(transparent)]
    Augment(#[from] supcon_augment::AugmentError),
    /// The loss rejected its input.
    #[error(transparent)]
    Loss(#[from] supcon_loss::LossError),
    /// Weights could not be loaded or saved.
    #[error(transparent)]
    Weights(#[from] supcon_head::weights::WeightsError),
    /// A run folder or checkpoint is missing, foreign or corrupt.
    #[error("{path}: {message}")]
    Run {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Training produced a non-finite loss.
    #[error(
        "the loss became {value} at epoch {epoch}, step {step}: training diverged (a learning \
         rate too high or a temperature too low are the usual causes); the last checkpoint is \
         kept as it was"
    )]
    Diverged {
        /// The loss value.
        value: f32,
        /// The epoch (1-based).
        epoch: usize,
        /// The step within the epoch (1-based).
        step: usize,
    },
    /// The loss of the very first step, before any update, is not finite: no learning rate or
    /// temperature causes that, the inputs (normalisation) or the initial weights do.
    #[error(
        "the loss is {value} at the first step, before any update: the normalised images or the \
         initial weights are not finite (check --mean and --std); nothing was saved"
    )]
    NonFiniteAtStart {
        /// The loss value.
        value: f32,
    },
    /// Training made the weights non-finite while the loss still was.
    #[error(
        "the weights became non-finite (NaN or infinity) during epoch {epoch}: training \
         diverged; nothing was saved over the last checkpoint"
    )]
    NonFiniteWeights {
        /// The epoch (1-based).
        epoch: usize,
    },
    /// The encoder's features of some image are not finite: the weights are finite but so
    /// large that the network overflows.
    #[error(
        "the encoder gives non-finite (NaN or infinite) features: its weights overflow the \
         network (training diverged); no evaluation of it would mean anything"
    )]
    NonFiniteFeatures,
    /// The run was asked to stop ([`Progress::stop_requested`](crate::progress::Progress::stop_requested):
    /// Ctrl-C or SIGTERM in the binary) and stopped where it could save its state.
    #[error("interrupted {0}")]
    Interrupted(String),
}

impl TrainError {
    /// The process exit status for this error: 2 for bad input (options, data, runs), 1 for
    /// failures during the work itself, 130 for an interruption (as a shell reports Ctrl-C).
    pub fn exit_code(&self) -> i32 {
        match self {
            TrainError::Diverged { .. }
            | TrainError::NonFiniteWeights { .. }
            | TrainError::NonFiniteFeatures
            | TrainError::Io { .. } => 1,
            TrainError::Interrupted(_) => 130,
            _ => 2,
        }
    }

    /// [`TrainError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    /// [`TrainError::Run`]: `message` about `path`.
    pub fn run(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::Run {
            path: path.into(),
            message: message.into(),
        }
    }
}
