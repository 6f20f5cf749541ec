//! The command line: `supcon-train [COMMAND] [OPTIONS]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use supcon_train::config::Options;
use supcon_train::runs::Split;

/// Supervised contrastive learning (SupCon) and SimCLR on Burn: pre-train, evaluate, compare.
///
/// Without a command: the demo, SupCon pre-training of a small CNN on the embedded MNIST
/// digits, linear evaluation, and a summary.
#[derive(Debug, Parser)]
#[command(
    name = "supcon-train",
    version,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    /// What to do (default: the demo).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the demo (over its recipe).
    #[command(flatten)]
    pub options: Options,
    /// Print only the final result.
    #[arg(long, global = true)]
    pub quiet: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// SupCon or SimCLR pre-training (`--method`), then linear evaluation.
    #[command(allow_negative_numbers = true)]
    Pretrain {
        /// Continue the interrupted run in this folder (its saved configuration is used).
        #[arg(long)]
        resume: Option<PathBuf>,
        #[command(flatten)]
        options: Options,
    },
    /// Linear evaluation of a pre-trained encoder.
    #[command(allow_negative_numbers = true)]
    Linear {
        /// The pre-training run folder.
        #[arg(long)]
        encoder: PathBuf,
        #[command(flatten)]
        options: Options,
    },
    /// The cross-entropy baseline.
    #[command(allow_negative_numbers = true)]
    Ce {
        /// Continue the interrupted run in this folder.
        #[arg(long)]
        resume: Option<PathBuf>,
        #[command(flatten)]
        options: Options,
    },
    /// kNN accuracy of a pre-trained encoder on the validation and test splits.
    #[command(allow_negative_numbers = true)]
    Knn {
        /// The pre-training run folder.
        #[arg(long)]
        encoder: PathBuf,
        #[command(flatten)]
        options: Options,
    },
    /// Encoder embeddings and labels of a split as `.npy` files.
    #[command(allow_negative_numbers = true)]
    Embed {
        /// The pre-training run folder.
        #[arg(long)]
        encoder: PathBuf,
        /// Which split.
        #[arg(long, value_enum, default_value = "test")]
        split: Split,
        /// Output folder (default: the run folder).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        options: Options,
    },
}
