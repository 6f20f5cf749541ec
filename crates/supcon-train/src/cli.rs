//! The command line: `supcon-train [COMMAND] [OPTIONS]`. Each command accepts only the options
//! it uses, and `--help` shows each option's default, read from the configuration's defaults.

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use supcon_encoder::Architecture;
use supcon_head::HeadKind;
use supcon_train::config::Options;
use supcon_train::dataset::DatasetSpec;
use supcon_train::device::{DeviceChoice, Precision};
use supcon_train::runs::{ExportFormat, Split};

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
    /// Options of the demo (over its recipe, `recipes/demo.toml`).
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
        /// Continue the interrupted run in this folder with its saved configuration (only
        /// --device, --linear_epochs, --linear_learning_rate and --knn_k may be given), or
        /// extend it, finished or not, with --epochs N (more than its epochs; the schedule is
        /// recomputed over N).
        #[arg(long)]
        resume: Option<PathBuf>,
        #[command(flatten)]
        options: Options,
    },
    /// Linear evaluation of a pre-trained encoder.
    #[command(allow_negative_numbers = true)]
    Linear {
        /// A pre-training run folder, or a checkpoint file: the PyTorch reference's (.pth, .pt,
        /// .safetensors), or one `export` wrote or a `ce` run's best-model.bpk (these record
        /// their run's settings, the defaults here); give --model and the dataset options with
        /// other files.
        #[arg(long)]
        encoder: PathBuf,
        #[command(flatten)]
        device: DeviceOption,
        #[command(flatten)]
        checkpoint: CheckpointOptions,
        /// Epochs of the linear classifier (on the frozen encoder; default: the run's setting, or
        /// pretrain's default for a checkpoint file).
        #[arg(long = "linear_epochs", alias = "linear-epochs")]
        linear_epochs: Option<usize>,
        /// Learning rate of the linear classifier (default: the run's setting, or pretrain's
        /// default for a checkpoint file).
        #[arg(long = "linear_learning_rate", alias = "linear-learning-rate")]
        linear_learning_rate: Option<f64>,
    },
    /// The cross-entropy baseline.
    #[command(allow_negative_numbers = true)]
    Ce {
        /// Continue the interrupted run in this folder with its saved configuration, or extend
        /// it with --epochs N (more than its epochs; the schedule is recomputed over N).
        #[arg(long)]
        resume: Option<PathBuf>,
        #[command(flatten)]
        options: Options,
    },
    /// kNN accuracy of a pre-trained encoder on the validation and test splits.
    Knn {
        /// A pre-training run folder, or a checkpoint file: the PyTorch reference's (.pth, .pt,
        /// .safetensors), or one `export` wrote or a `ce` run's best-model.bpk (these record
        /// their run's settings, the defaults here); give --model and the dataset options with
        /// other files.
        #[arg(long)]
        encoder: PathBuf,
        #[command(flatten)]
        device: DeviceOption,
        #[command(flatten)]
        checkpoint: CheckpointOptions,
        /// Neighbours that vote (default: the run's setting, or pretrain's default for a
        /// checkpoint file).
        #[arg(long = "knn_k", alias = "knn-k")]
        knn_k: Option<usize>,
    },
    /// Encoder embeddings (and projections on request) of a split, or of image files and
    /// folders, as `.npy` files.
    Embed {
        /// A pre-training run folder, or a checkpoint file: the PyTorch reference's (.pth, .pt,
        /// .safetensors), or one `export` wrote or a `ce` run's best-model.bpk (these record
        /// their run's settings, the defaults here); give --model and the dataset options with
        /// other files.
        #[arg(long)]
        encoder: PathBuf,
        /// Which split (labels are written too; default: test).
        #[arg(long, value_enum, conflicts_with = "images")]
        split: Option<Split>,
        /// Image files (PNG, JPEG) or folders of them (with their sub-folders) instead of a
        /// split: resized to the run's images, their paths written to images-files.txt.
        #[arg(long, num_args = 1.., value_name = "PATH")]
        images: Vec<PathBuf>,
        /// Also write the projection head's outputs (<name>-projections.npy).
        #[arg(long)]
        projection: bool,
        /// Output folder (default: the run folder).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceOption,
        #[command(flatten)]
        checkpoint: CheckpointOptions,
        /// The projection head a checkpoint file holds, mlp or linear (with --projection;
        /// default: mlp, the reference's).
        #[arg(long, requires = "projection", help_heading = "With a checkpoint file")]
        head: Option<HeadKind>,
        /// The projection head's outputs in a checkpoint file (with --projection; default: 128,
        /// the reference's).
        #[arg(
            long = "feat_dim",
            alias = "feat-dim",
            requires = "projection",
            help_heading = "With a checkpoint file"
        )]
        feat_dim: Option<usize>,
    },
    /// Write a run's encoder (or, with --head, encoder and projection head, or a cross-entropy
    /// run's classifier) as safetensors, burnpack, or safetensors with PyTorch's names.
    Export {
        /// The run folder: a pre-training run, or a cross-entropy run (its best validation
        /// epoch's network).
        run: PathBuf,
        /// File format: safetensors (our names), burnpack, or pytorch (safetensors with the
        /// reference's names and layouts, for `load_state_dict` in PyTorch).
        #[arg(long, value_enum, default_value = "safetensors")]
        format: ExportFormat,
        /// Export the projection head too (the whole model; of a cross-entropy run, the
        /// classifier).
        #[arg(long)]
        head: bool,
        /// Output file (default: RUN/encoder.safetensors, RUN/model.bpk,
        /// RUN/encoder.pytorch.safetensors, ...).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// The device option of the commands that read a run.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceOption {
    /// Device: flex, ndarray, wgpu, vulkan or cuda (those compiled in; default: the run's).
    #[arg(long)]
    pub device: Option<DeviceChoice>,
}

/// The data and architecture of an encoder given as a checkpoint file (a run folder has its
/// own, and refuses these).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "With a checkpoint file")]
pub struct CheckpointOptions {
    /// Encoder the checkpoint holds: resnet18, resnet34, resnet50, resnet101 or small (default:
    /// the one a file `export` wrote records; required with other checkpoint files).
    #[arg(long)]
    pub model: Option<Architecture>,
    /// mnist (embedded), idx:DIR, cifar10:DIR, cifar100:DIR or folder:DIR.
    #[arg(long)]
    pub dataset: Option<DatasetSpec>,
    /// Side the images are resized to (the checkpoint's training crops).
    #[arg(long)]
    pub size: Option<usize>,
    /// Per-channel normalisation mean the checkpoint was trained with (comma list; the
    /// reference's CIFAR-10: 0.4914,0.4822,0.4465; default: the one a file `export` wrote
    /// records, else measured on the training split).
    #[arg(long, value_delimiter = ',')]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation (the reference's CIFAR-10: 0.2023,0.1994,0.2010; default:
    /// recorded, as --mean, else measured).
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f64>>,
    /// Fraction of the training set held out for validation.
    #[arg(long = "val_fraction", alias = "val-fraction")]
    pub val_fraction: Option<f64>,
    /// Seed of the split and of the linear classifier.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder under which the evaluation folder is created.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Name of the evaluation folder (default: eval-<model>-<n>, the first free n).
    #[arg(long)]
    pub name: Option<String>,
    /// Float type to evaluate in: f32 (default), f16, bf16, flex32 (GPU devices).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

impl CheckpointOptions {
    /// `options` with these set.
    pub fn over(self, options: Options) -> Options {
        Options {
            model: self.model,
            dataset: self.dataset,
            size: self.size,
            mean: self.mean,
            std: self.std,
            val_fraction: self.val_fraction,
            seed: self.seed,
            out: self.out,
            name: self.name,
            precision: self.precision,
            ..options
        }
    }
}

/// Parses the process's arguments, exiting with status 2 and clap's message on an error (one
/// line for a value that does not parse: the option and why).
pub fn parse() -> Cli {
    let matches = with_defaults(Cli::command())
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    match matches {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ValueValidation | ErrorKind::InvalidValue
            ) =>
        {
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid value"));
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    }
}

/// `command` with each option's default appended to its help, from the configuration's
/// defaults (`RunConfig::new()`), so that the help cannot disagree with the code. Options whose
/// help states their default already (the run's setting, a measured value) are left as they are.
fn with_defaults(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            let stated = arg
                .get_help()
                .is_some_and(|h| h.to_string().contains("default:"));
            // A switch (`--head` of export, `--quiet`) sets no configuration value.
            let switch = !arg.get_action().takes_values();
            let default = arg
                .get_long()
                .filter(|_| !stated && !switch)
                .and_then(supcon_train::config::layers::default_text);
            match default {
                Some(default) => {
                    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                    arg.help(format!("{help} [default: {default}]"))
                }
                None => arg,
            }
        })
        .mut_subcommands(with_defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        with_defaults(Cli::command()).debug_assert();
    }

    #[test]
    fn help_shows_the_configuration_defaults() {
        let mut command = with_defaults(Cli::command());
        let pretrain = command.find_subcommand_mut("pretrain").unwrap();
        let help = pretrain.render_long_help().to_string();
        assert!(help.contains("[default: 128]"), "{help}");
        assert!(help.contains("[default: cosine]"), "{help}");
        let knn = command.find_subcommand_mut("knn").unwrap();
        let help = knn.render_long_help().to_string();
        assert!(
            help.contains("--knn_k") && help.contains("the run's setting"),
            "{help}"
        );
        assert!(
            !help.contains("--batch_size"),
            "knn lists only its options: {help}"
        );
        let export = command.find_subcommand_mut("export").unwrap();
        let help = export.render_long_help().to_string();
        assert!(
            !help.contains("[default: mlp]"),
            "export's --head is a switch, not the model's head: {help}"
        );
    }
}
