//! The command-line options: the reference's flat option names (`--batch_size`, `--temp`, ...),
//! each overriding one setting of a [`RunConfig`](super::RunConfig). A TOML file may use the
//! same flat names or the sections of `config.toml`.

use std::path::PathBuf;

use serde::Serialize;
use supcon_encoder::Architecture;
use supcon_head::HeadKind;

use super::{Method, OptimizerKind};
use crate::dataset::DatasetSpec;
use crate::device::{DeviceChoice, Precision};
use crate::schedule::ScheduleKind;

/// Options as given on the command line: each `Some` overrides one setting (see
/// [`RunConfig`](super::RunConfig) for meanings and defaults, and [`FLAG_PATHS`](super::FLAG_PATHS)
/// for where each lands).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct Options {
    /// Read settings from this TOML file (`config.toml`'s sections or these options' names;
    /// the command line overrides it; its relative paths are from its own folder).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Images per batch (each gives `views` views).
    #[cfg_attr(feature = "cli", arg(long = "batch_size", alias = "batch-size"))]
    pub batch_size: Option<usize>,
    /// Base learning rate.
    #[cfg_attr(feature = "cli", arg(long = "learning_rate", alias = "learning-rate"))]
    pub learning_rate: Option<f64>,
    /// Epochs after which the step schedule multiplies the rate by `lr_decay_rate` (comma list).
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "lr_decay_epochs",
            alias = "lr-decay-epochs",
            value_delimiter = ','
        )
    )]
    pub lr_decay_epochs: Option<Vec<usize>>,
    /// Decay factor of the step schedule; the cosine schedule ends at `lr * rate^3`.
    #[cfg_attr(feature = "cli", arg(long = "lr_decay_rate", alias = "lr-decay-rate"))]
    pub lr_decay_rate: Option<f64>,
    /// L2 weight decay.
    #[cfg_attr(feature = "cli", arg(long = "weight_decay", alias = "weight-decay"))]
    pub weight_decay: Option<f64>,
    /// SGD momentum.
    #[cfg_attr(feature = "cli", arg(long))]
    pub momentum: Option<f64>,
    /// Training epochs.
    #[cfg_attr(feature = "cli", arg(long))]
    pub epochs: Option<usize>,
    /// Loss temperature.
    #[cfg_attr(feature = "cli", arg(long))]
    pub temp: Option<f64>,
    /// Base temperature of the SupCon/SimCLR loss: the loss is scaled by `temp / base_temp`.
    #[cfg_attr(feature = "cli", arg(long = "base_temp", alias = "base-temp"))]
    pub base_temp: Option<f64>,
    /// Learning-rate schedule: cosine (per iteration, after a warm-up of 10 epochs or a tenth
    /// of the run; no epoch at the floor), step (the reference's default), reference-cosine
    /// (the reference's per-epoch cosine, whose last epoch runs at the floor).
    #[cfg_attr(feature = "cli", arg(long, value_enum, conflicts_with = "cosine"))]
    pub schedule: Option<ScheduleKind>,
    /// The reference's flag: `--cosine` is `--schedule reference-cosine`, `--cosine false`
    /// is `--schedule step`.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub cosine: Option<bool>,
    /// Linear warm-up from 0.01 over the first 10 epochs for the step and reference-cosine
    /// schedules (on anyway when batch_size > 256, as in the reference).
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub warm: Option<bool>,
    /// Pre-training method.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub method: Option<Method>,
    /// Encoder: resnet18, resnet34, resnet50, resnet101 or small.
    #[cfg_attr(feature = "cli", arg(long))]
    pub model: Option<Architecture>,
    /// mnist (embedded), idx:DIR, cifar10:DIR, cifar100:DIR or folder:DIR.
    #[cfg_attr(feature = "cli", arg(long))]
    pub dataset: Option<DatasetSpec>,
    /// Side of the (square) training crops; image folders are also resized to it.
    #[cfg_attr(feature = "cli", arg(long))]
    pub size: Option<usize>,
    /// Per-channel normalisation mean, on the [0, 1] pixel scale (comma list; default: measured
    /// on the training split).
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ','))]
    pub mean: Option<Vec<f64>>,
    /// Per-channel normalisation standard deviation, on the [0, 1] pixel scale (comma list;
    /// default: measured).
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ','))]
    pub std: Option<Vec<f64>>,
    /// Seed of initialisation, splits, shuffles and augmentation.
    #[cfg_attr(feature = "cli", arg(long))]
    pub seed: Option<u64>,
    /// Augmented views per image in pre-training.
    #[cfg_attr(feature = "cli", arg(long))]
    pub views: Option<usize>,
    /// Projection head: mlp or linear.
    #[cfg_attr(feature = "cli", arg(long))]
    pub head: Option<HeadKind>,
    /// Projection dimension.
    #[cfg_attr(feature = "cli", arg(long = "feat_dim", alias = "feat-dim"))]
    pub feat_dim: Option<usize>,
    /// Device: flex, ndarray, wgpu, vulkan or cuda (those compiled in).
    #[cfg_attr(feature = "cli", arg(long))]
    pub device: Option<DeviceChoice>,
    /// Float type of the model, activations and gradients: f32, f16, bf16 or flex32 (GPU
    /// devices); the losses compute in f32 whatever it is. Burn has no autocast: the whole
    /// model runs in it.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub precision: Option<Precision>,
    /// Folder under which the run folder is created.
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: Option<PathBuf>,
    /// Name of the run folder (default: `<method>-<model>-<n>`, the first free number); an
    /// existing folder is refused.
    #[cfg_attr(feature = "cli", arg(long))]
    pub name: Option<String>,
    /// Optimiser: sgd or lars.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub optimizer: Option<OptimizerKind>,
    /// Apply weight decay to biases and BatchNorm parameters too (the reference does).
    #[cfg_attr(feature = "cli", arg(long = "decay_norm_and_bias", alias = "decay-norm-and-bias", num_args = 0..=1, default_missing_value = "true"))]
    pub decay_norm_and_bias: Option<bool>,
    /// Smallest crop area fraction of the random resized crop (the reference: 0.2).
    #[cfg_attr(
        feature = "cli",
        arg(long = "crop_min_scale", alias = "crop-min-scale")
    )]
    pub crop_min_scale: Option<f64>,
    /// Colour-jitter strength s: brightness, contrast, saturation s, hue s/4, applied with
    /// probability 0.8 (the reference: 0.4); 0 turns it off.
    #[cfg_attr(feature = "cli", arg(long))]
    pub jitter: Option<f64>,
    /// Probability of a horizontal flip (the reference: 0.5); the embedded MNIST digits default
    /// to 0.
    #[cfg_attr(feature = "cli", arg(long))]
    pub flip: Option<f64>,
    /// Keys of a momentum encoder kept as extra contrast vectors (0: off), MoCo's queue with
    /// labels: queued keys of the anchor's class are positives.
    #[cfg_attr(feature = "cli", arg(long))]
    pub queue: Option<usize>,
    /// Momentum of the key model (the queue's encoder).
    #[cfg_attr(
        feature = "cli",
        arg(long = "queue_momentum", alias = "queue-momentum")
    )]
    pub queue_momentum: Option<f64>,
    /// Gradient caching: run each step in chunks of this many images, with the loss of the
    /// whole batch (0: off); must divide batch_size.
    #[cfg_attr(feature = "cli", arg(long))]
    pub chunk: Option<usize>,
    /// Train on a class-stratified subset of the training split: a count of images (1000) or a
    /// fraction (0.1).
    #[cfg_attr(feature = "cli", arg(long))]
    pub limit: Option<f64>,
    /// Fraction of the training set held out for validation (model selection, kNN monitor;
    /// default 0.125: the embedded digits' 1,001 of 8,000).
    #[cfg_attr(feature = "cli", arg(long = "val_fraction", alias = "val-fraction"))]
    pub val_fraction: Option<f64>,
    /// Save a checkpoint every this many epochs (and always at the end).
    #[cfg_attr(feature = "cli", arg(long = "save_freq", alias = "save-freq"))]
    pub save_freq: Option<usize>,
    /// Measure kNN accuracy on the validation split every this many epochs (0: never).
    #[cfg_attr(feature = "cli", arg(long = "knn_freq", alias = "knn-freq"))]
    pub knn_freq: Option<usize>,
    /// Neighbours of the kNN monitor.
    #[cfg_attr(feature = "cli", arg(long = "knn_k", alias = "knn-k"))]
    pub knn_k: Option<usize>,
    /// Epochs of the linear classifier (on the frozen encoder); 0 skips the linear evaluation
    /// after pre-training (`supcon-train linear --encoder RUN` makes it later).
    #[cfg_attr(feature = "cli", arg(long = "linear_epochs", alias = "linear-epochs"))]
    pub linear_epochs: Option<usize>,
    /// Learning rate of the linear classifier.
    #[cfg_attr(
        feature = "cli",
        arg(long = "linear_learning_rate", alias = "linear-learning-rate")
    )]
    pub linear_learning_rate: Option<f64>,
}

impl Options {
    /// The options given here (by their command-line names) that the cross-entropy baseline
    /// does not use: it trains the encoder and a linear classifier together on one view of each
    /// image, and selects its epoch on validation accuracy, so SupCon's loss, views, projection
    /// head and queue, the kNN monitor and the linear evaluation have no effect on it.
    pub fn unused_by_cross_entropy(&self) -> Vec<&'static str> {
        let given = [
            ("method", self.method.is_some()),
            ("temp", self.temp.is_some()),
            ("base_temp", self.base_temp.is_some()),
            ("views", self.views.is_some()),
            ("head", self.head.is_some()),
            ("feat_dim", self.feat_dim.is_some()),
            ("queue", self.queue.is_some()),
            ("queue_momentum", self.queue_momentum.is_some()),
            ("chunk", self.chunk.is_some()),
            ("knn_freq", self.knn_freq.is_some()),
            ("knn_k", self.knn_k.is_some()),
            ("linear_epochs", self.linear_epochs.is_some()),
            ("linear_learning_rate", self.linear_learning_rate.is_some()),
        ];
        given
            .into_iter()
            .filter_map(|(name, is_given)| is_given.then_some(name))
            .collect()
    }
}
