//! Run configuration: the options a user can give (command line or TOML file, the command line
//! winning), and the complete configuration they resolve to, saved as `config.toml` in each run
//! folder.
//!
//! Option names follow the PyTorch reference (`main_supcon.py`, `main_ce.py`,
//! `main_linear.py`) wherever it has them, with the same meaning.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use supcon_encoder::Architecture;
use supcon_head::HeadKind;

use crate::TrainError;

/// The pre-training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Supervised contrastive: every view with the same label is a positive.
    #[cfg_attr(feature = "cli", value(name = "supcon"))]
    SupCon,
    /// Self-supervised: only the other views of the same image are positives.
    #[cfg_attr(feature = "cli", value(name = "simclr"))]
    SimClr,
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum and weight decay, PyTorch's semantics (no dampening).
    Sgd,
    /// LARS (You et al. 2017): SGD whose per-tensor step is scaled by a trust ratio
    /// `0.001 * |w| / (|g + wd w|)`, for large batches; biases and BatchNorm are not adapted.
    Lars,
}

/// The most views per image a run may ask for.
pub const MAX_VIEWS: usize = 64;
/// The largest projection dimension a run may ask for.
pub const MAX_FEAT_DIM: usize = 65_536;
/// The largest colour-jitter strength (the hue shift is a quarter of it, at most half a turn).
pub const MAX_JITTER: f64 = 2.0;

/// Options as given: everything optional, so that a TOML file and the command line can be
/// layered. See [`RunConfig`] for meanings and defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Read options from this TOML file (command-line options override it).
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
    /// Cosine learning-rate schedule instead of steps.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub cosine: Option<bool>,
    /// Linear warm-up from 0.01 over the first 10 epochs (on anyway when batch_size > 256).
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub warm: Option<bool>,
    /// Pre-training method.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub method: Option<Method>,
    /// Encoder: resnet18, resnet34, resnet50, resnet101 or small.
    #[cfg_attr(feature = "cli", arg(long))]
    pub model: Option<String>,
    /// mnist (embedded), idx:DIR, cifar10:DIR, cifar100:DIR or folder:DIR.
    #[cfg_attr(feature = "cli", arg(long))]
    pub dataset: Option<String>,
    /// Side of the (square) training crops; image folders are also resized to it.
    #[cfg_attr(feature = "cli", arg(long))]
    pub size: Option<usize>,
    /// Per-channel normalisation mean (comma list; default: measured on the training split).
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ','))]
    pub mean: Option<Vec<f64>>,
    /// Per-channel normalisation standard deviation (comma list; default: measured).
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
    pub head: Option<String>,
    /// Projection dimension.
    #[cfg_attr(feature = "cli", arg(long = "feat_dim", alias = "feat-dim"))]
    pub feat_dim: Option<usize>,
    /// Device: flex, ndarray, wgpu, vulkan or cuda (those compiled in).
    #[cfg_attr(feature = "cli", arg(long))]
    pub device: Option<String>,
    /// Folder under which the run folder is created.
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: Option<PathBuf>,
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
    /// Probability of a horizontal flip (the reference: 0.5; use 0 for digits).
    #[cfg_attr(feature = "cli", arg(long))]
    pub flip: Option<f64>,
    /// Fraction of the training set held out for validation (model selection, kNN monitor).
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
    /// Epochs of the linear classifier (on the frozen encoder).
    #[cfg_attr(feature = "cli", arg(long = "linear_epochs", alias = "linear-epochs"))]
    pub linear_epochs: Option<usize>,
    /// Learning rate of the linear classifier.
    #[cfg_attr(
        feature = "cli",
        arg(long = "linear_learning_rate", alias = "linear-learning-rate")
    )]
    pub linear_learning_rate: Option<f64>,
}

macro_rules! layer {
    ($top:ident, $bottom:ident; $($field:ident),* $(,)?) => {
        Options { config: $top.config.or($bottom.config), $($field: $top.$field.or($bottom.$field)),* }
    };
}

impl Options {
    /// These options, with `fallback`'s where these have none.
    pub fn or(self, fallback: Options) -> Options {
        let (top, bottom) = (self, fallback);
        layer!(top, bottom; batch_size, learning_rate, lr_decay_epochs, lr_decay_rate,
            weight_decay, momentum, epochs, temp, cosine, warm, method, model, dataset, size,
            mean, std, seed, views, head, feat_dim, device, out, optimizer, decay_norm_and_bias,
            crop_min_scale, jitter, flip, val_fraction, save_freq, knn_freq, knn_k, linear_epochs,
            linear_learning_rate)
    }

    /// Reads a TOML options file.
    pub fn from_toml_file(path: &Path) -> Result<Options, TrainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        Options::from_toml_str(&text)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML options (unknown keys are errors).
    pub fn from_toml_str(text: &str) -> Result<Options, TrainError> {
        toml::from_str(text).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// The command-line options layered over the `--config` file, if any.
    pub fn with_config_file(self) -> Result<Options, TrainError> {
        match &self.config {
            Some(path) => {
                let file = Options::from_toml_file(path)?;
                Ok(self.or(file))
            }
            None => Ok(self),
        }
    }
}

/// A complete, validated configuration. Defaults are the demo's recipe (small CNN on the
/// embedded MNIST); `recipes/` holds others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub learning_rate: f64,
    /// Step-schedule milestones (epochs, 1-based: the rate drops after these).
    pub lr_decay_epochs: Vec<usize>,
    /// Step decay factor; the cosine schedule's floor is `learning_rate * lr_decay_rate^3`.
    pub lr_decay_rate: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Epochs.
    pub epochs: usize,
    /// Loss temperature (SupCon/SimCLR). The base temperature is the reference's fixed 0.07
    /// (`pretrain::BASE_TEMPERATURE`), so the loss is scaled by `temp / 0.07`, as in
    /// `main_supcon.py`.
    pub temp: f64,
    /// Cosine schedule.
    pub cosine: bool,
    /// Warm-up (forced on for batches over 256, as the reference does).
    pub warm: bool,
    /// Pre-training method.
    pub method: Method,
    /// Encoder architecture name.
    pub model: String,
    /// Dataset specification.
    pub dataset: String,
    /// Crop size; `None` keeps the images' own size.
    pub size: Option<usize>,
    /// Normalisation mean; empty means "measured on the training split".
    pub mean: Vec<f64>,
    /// Normalisation standard deviation; empty means "measured".
    pub std: Vec<f64>,
    /// Seed.
    pub seed: u64,
    /// Views per image.
    pub views: usize,
    /// Projection head kind: `mlp` or `linear`.
    pub head: String,
    /// Projection dimension.
    pub feat_dim: usize,
    /// Device name.
    pub device: String,
    /// Parent folder of run folders.
    pub out: PathBuf,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Whether biases and BatchNorm parameters are decayed.
    pub decay_norm_and_bias: bool,
    /// Smallest crop area fraction.
    pub crop_min_scale: f64,
    /// Colour-jitter strength (0: off).
    pub jitter: f64,
    /// Horizontal-flip probability.
    pub flip: f64,
    /// Validation fraction of the training data.
    pub val_fraction: f64,
    /// Checkpoint period in epochs.
    pub save_freq: usize,
    /// kNN monitor period in epochs (0: off).
    pub knn_freq: usize,
    /// kNN neighbours.
    pub knn_k: usize,
    /// Linear-classifier epochs.
    pub linear_epochs: usize,
    /// Linear-classifier learning rate.
    pub linear_learning_rate: f64,
}

impl RunConfig {
    /// Fills what `options` leaves open with the defaults and checks the result.
    pub fn resolve(options: Options) -> Result<RunConfig, TrainError> {
        let o = options;
        let config = RunConfig {
            batch_size: o.batch_size.unwrap_or(128),
            learning_rate: o.learning_rate.unwrap_or(0.1),
            lr_decay_epochs: o.lr_decay_epochs.unwrap_or_default(),
            lr_decay_rate: o.lr_decay_rate.unwrap_or(0.1),
            weight_decay: o.weight_decay.unwrap_or(1e-4),
            momentum: o.momentum.unwrap_or(0.9),
            epochs: o.epochs.unwrap_or(8),
            temp: o.temp.unwrap_or(0.1),
            cosine: o.cosine.unwrap_or(true),
            warm: o.warm.unwrap_or(false),
            method: o.method.unwrap_or(Method::SupCon),
            model: o.model.unwrap_or_else(|| "small".into()),
            dataset: o.dataset.unwrap_or_else(|| "mnist".into()),
            size: o.size,
            mean: o.mean.unwrap_or_default(),
            std: o.std.unwrap_or_default(),
            seed: o.seed.unwrap_or(0),
            views: o.views.unwrap_or(2),
            head: o.head.unwrap_or_else(|| "mlp".into()),
            feat_dim: o.feat_dim.unwrap_or(128),
            device: o
                .device
                .unwrap_or_else(|| crate::device::DEFAULT_DEVICE.into()),
            out: o.out.unwrap_or_else(|| PathBuf::from("runs")),
            optimizer: o.optimizer.unwrap_or(OptimizerKind::Sgd),
            decay_norm_and_bias: o.decay_norm_and_bias.unwrap_or(true),
            crop_min_scale: o.crop_min_scale.unwrap_or(0.5),
            jitter: o.jitter.unwrap_or(0.4),
            flip: o.flip.unwrap_or(0.5),
            val_fraction: o.val_fraction.unwrap_or(0.125),
            save_freq: o.save_freq.unwrap_or(1),
            knn_freq: o.knn_freq.unwrap_or(2),
            knn_k: o.knn_k.unwrap_or(200),
            linear_epochs: o.linear_epochs.unwrap_or(30),
            linear_learning_rate: o.linear_learning_rate.unwrap_or(0.1),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that can be checked without touching data or devices.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        for (name, value) in [
            ("learning_rate", self.learning_rate),
            ("temp", self.temp),
            ("linear_learning_rate", self.linear_learning_rate),
            ("lr_decay_rate", self.lr_decay_rate),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return bad(format!("{name} must be a positive number, got {value}"));
            }
        }
        for (name, value) in [
            ("weight_decay", self.weight_decay),
            ("momentum", self.momentum),
            ("jitter", self.jitter),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(format!("{name} must be zero or positive, got {value}"));
            }
        }
        if self.momentum >= 1.0 {
            return bad(format!("momentum must be below 1, got {}", self.momentum));
        }
        if self.epochs == 0 {
            return bad("epochs must be positive".into());
        }
        if self.views == 0 {
            return bad("views must be positive".into());
        }
        if self.views > MAX_VIEWS {
            return bad(format!(
                "views must be at most {MAX_VIEWS} (every view of every image goes through the \
                 encoder at once), got {}",
                self.views
            ));
        }
        if self.method == Method::SimClr && self.views < 2 {
            return bad(
                "--method simclr needs at least two views per image (the other views of an \
                 image are its only positives): use --views 2 or more"
                    .into(),
            );
        }
        if self.feat_dim == 0 {
            return bad("feat_dim must be positive".into());
        }
        if self.feat_dim > MAX_FEAT_DIM {
            return bad(format!(
                "feat_dim must be at most {MAX_FEAT_DIM}, got {} (the projection head alone \
                 would not fit in memory)",
                self.feat_dim
            ));
        }
        if self.jitter > MAX_JITTER {
            return bad(format!(
                "jitter must be at most {MAX_JITTER} (its hue shift, jitter / 4, must stay \
                 within half a turn), got {}",
                self.jitter
            ));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return bad(format!("mean values must be finite numbers, got {m}"));
        }
        if self.size == Some(0) {
            return bad("size must be positive".into());
        }
        if self.save_freq == 0 {
            return bad("save_freq must be positive".into());
        }
        if self.knn_k == 0 {
            return bad("knn_k must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.flip) {
            return bad(format!("flip must be a probability, got {}", self.flip));
        }
        if !(self.crop_min_scale > 0.0 && self.crop_min_scale <= 1.0) {
            return bad(format!(
                "crop_min_scale must be in (0, 1], got {}",
                self.crop_min_scale
            ));
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return bad(format!(
                "val_fraction must be in (0, 1), got {}",
                self.val_fraction
            ));
        }
        if self.mean.len() != self.std.len() {
            return bad(format!(
                "mean has {} values and std {}",
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return bad(format!("std values must be positive, got {s}"));
        }
        self.architecture()?;
        self.head_kind()?;
        crate::dataset::DatasetSpec::parse(&self.dataset)?;
        crate::device::DeviceChoice::parse(&self.device)?;
        Ok(())
    }

    /// What pre-training needs beyond [`validate`](Self::validate): a batch of at least two
    /// images (with one, no anchor has a negative, the loss is exactly 0 and nothing is learnt).
    pub fn validate_pretraining(&self) -> Result<(), TrainError> {
        if self.batch_size < 2 {
            return Err(TrainError::Config(
                "batch_size 1 cannot pre-train: an image alone in its batch has no negatives, \
                 so the contrastive loss is exactly 0 and nothing is learnt; use 2 or more"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The encoder architecture.
    pub fn architecture(&self) -> Result<Architecture, TrainError> {
        self.model
            .parse::<Architecture>()
            .map_err(|e| TrainError::Config(e.to_string()))
    }

    /// The projection head kind.
    pub fn head_kind(&self) -> Result<HeadKind, TrainError> {
        match self.head.as_str() {
            "mlp" => Ok(HeadKind::Mlp),
            "linear" => Ok(HeadKind::Linear),
            other => Err(TrainError::Config(format!(
                "unknown head `{other}`: use mlp or linear"
            ))),
        }
    }

    /// Whether the learning rate warms up: `--warm`, or batches over 256 (the reference).
    pub fn warm_up(&self) -> bool {
        self.warm || self.batch_size > 256
    }

    /// Writes the configuration as TOML.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| TrainError::Config(format!("cannot serialise the configuration: {e}")))?;
        crate::atomic::write_atomically(path, text.as_bytes())
    }

    /// Reads a configuration saved by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<RunConfig, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let config: RunConfig =
            toml::from_str(&text).map_err(|e| TrainError::run(path, e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}
