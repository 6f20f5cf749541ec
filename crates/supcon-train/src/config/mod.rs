//! Run configuration: [`RunConfig`], Burn `Config` sections (data, model, loss, optimiser,
//! schedule, augmentation, evaluation) holding the crates' own types, with every default
//! written once, in its `#[config(default)]`. It is saved as `config.toml` in each run folder
//! and read back unchanged.
//!
//! Settings come in layers ([`layers`]): the defaults, then a recipe or `--config` file
//! (`config.toml`'s sections, or the command line's flat names), then the command line
//! ([`Options`]), which only overrides. Option names follow the PyTorch reference
//! (`main_supcon.py`, `main_ce.py`, `main_linear.py`) wherever it has them, with the same
//! meaning.

pub mod layers;
mod options;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use supcon_encoder::Architecture;
use supcon_head::HeadKind;

pub use layers::Layer;
pub use options::Options;

use crate::TrainError;
use crate::dataset::DatasetSpec;
use crate::device::{DeviceChoice, Precision};
use crate::schedule::ScheduleKind;

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
/// The most keys a queue may hold.
pub const MAX_QUEUE: usize = 1 << 20;
/// The largest colour-jitter strength (the hue shift is a quarter of it, at most half a turn).
pub const MAX_JITTER: f64 = 2.0;

/// The command-line options whose setting has another name (all others have their own name in
/// exactly one section, or at the top level): `(option, path in config.toml)`.
pub const FLAG_PATHS: [(&str, &str); 2] = [
    ("model", "model.architecture"),
    ("schedule", "schedule.kind"),
];

/// The data: which dataset, how it is split, batched and normalised.
#[derive(Config, Debug, PartialEq)]
pub struct DataConfig {
    /// `mnist` (embedded), `idx:DIR`, `cifar10:DIR`, `cifar100:DIR` or `folder:DIR`.
    #[config(default = "DatasetSpec::EmbeddedMnist")]
    pub dataset: DatasetSpec,
    /// Images per batch (each gives `augment.views` views in pre-training).
    #[config(default = 128)]
    pub batch_size: usize,
    /// Side of the square training crops (image folders are resized to it); `None`: the
    /// images' own size, and 32 for image folders (whose images may differ in size).
    pub size: Option<usize>,
    /// Per-channel normalisation mean, on the [0, 1] pixel scale (so within it); empty: measured
    /// on the training split.
    #[config(default = "Vec::new()")]
    pub mean: Vec<f64>,
    /// Per-channel normalisation standard deviation, on the [0, 1] pixel scale (positive, at
    /// most 1); empty: measured.
    #[config(default = "Vec::new()")]
    pub std: Vec<f64>,
    /// Fraction of the training set held out for validation (model selection, kNN monitor).
    #[config(default = 0.125)]
    pub val_fraction: f64,
    /// Train on a class-stratified subset of the training split (after validation is held
    /// out): a count of images (a whole number, at least 1) or a fraction in `(0, 1)`; `None`:
    /// all of it. A limit that leaves a class of the split without an image is refused.
    pub limit: Option<f64>,
}

impl DataConfig {
    /// The number of training images [`limit`](Self::limit) keeps of `available`, `None` for
    /// all; an error for a count above `available` or a value that is neither a count nor a
    /// fraction.
    pub fn limited(&self, available: usize) -> Result<Option<usize>, TrainError> {
        let Some(limit) = self.limit else {
            return Ok(None);
        };
        let count = if limit > 0.0 && limit < 1.0 {
            ((limit * available as f64).round() as usize).max(1)
        } else if limit >= 1.0 && limit.fract() == 0.0 && limit.is_finite() {
            limit as usize
        } else {
            return Err(TrainError::Config(format!(
                "limit must be a count of images (a whole number, at least 1) or a fraction \
                 between 0 and 1, got {limit}"
            )));
        };
        if count > available {
            return Err(TrainError::Config(format!(
                "limit {count} is more than the {available} training images"
            )));
        }
        Ok(Some(count))
    }
}

/// The network: encoder and projection head.
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Encoder (`--model`): resnet18, resnet34, resnet50, resnet101 or small.
    #[config(default = "Architecture::Small")]
    pub architecture: Architecture,
    /// Projection head: mlp or linear.
    #[config(default = "HeadKind::Mlp")]
    pub head: HeadKind,
    /// Projection dimension.
    #[config(default = 128)]
    pub feat_dim: usize,
}

/// The contrastive loss.
#[derive(Config, Debug, PartialEq)]
pub struct LossConfig {
    /// Pre-training method: supcon or simclr.
    #[config(default = "Method::SupCon")]
    pub method: Method,
    /// Temperature of the logits.
    #[config(default = 0.1)]
    pub temp: f64,
    /// Base temperature: the loss is scaled by `temp / base_temp` (the reference's
    /// `SupConLoss` default, 0.07, which `main_supcon.py` keeps).
    #[config(default = 0.07)]
    pub base_temp: f64,
}

/// How a pre-training step builds its contrast set and its gradient: a queue of keys from a
/// momentum encoder (small batches), gradient caching in chunks (large batches in bounded
/// memory). Both off by default.
#[derive(Config, Debug, PartialEq)]
pub struct StepConfig {
    /// Keys kept from earlier steps (0: no momentum encoder, no queue). The keys of the current
    /// views and this queue are extra contrast vectors: with SupCon, those of the anchor's class
    /// are positives; with SimCLR, only the keys of the anchor's own image are.
    #[config(default = 0)]
    pub queue: usize,
    /// Momentum of the key model: after each step `key = m key + (1 - m) model`.
    #[config(default = 0.999)]
    pub queue_momentum: f64,
    /// Images per chunk of gradient caching (0: off): the step over `batch_size` images runs
    /// in chunks of this many, with the loss of the whole batch.
    #[config(default = 0)]
    pub chunk: usize,
}

/// The optimiser.
#[derive(Config, Debug, PartialEq)]
pub struct OptimConfig {
    /// sgd or lars.
    #[config(default = "OptimizerKind::Sgd")]
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    #[config(default = 0.1)]
    pub learning_rate: f64,
    /// SGD momentum.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// L2 weight decay.
    #[config(default = 1e-4)]
    pub weight_decay: f64,
    /// Whether biases and BatchNorm parameters are decayed too (the reference does).
    #[config(default = true)]
    pub decay_norm_and_bias: bool,
}

/// The training length and learning-rate schedule.
#[derive(Config, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// Epochs.
    #[config(default = 8)]
    pub epochs: usize,
    /// `cosine` (per iteration: warm-up, then cosine; never an epoch at the floor), `step` or
    /// `reference-cosine` (the reference's per-epoch cosine, `--cosine`).
    #[config(default = "ScheduleKind::Cosine")]
    pub kind: ScheduleKind,
    /// For `step` and `reference-cosine`: the reference's linear warm-up from 0.01 over the
    /// first 10 epochs (forced on for batches over 256, as the reference does).
    #[config(default = false)]
    pub warm: bool,
    /// Step-schedule milestones (epochs, 1-based: the rate drops after these).
    #[config(default = "Vec::new()")]
    pub lr_decay_epochs: Vec<usize>,
    /// Step decay factor; the cosine schedules' floor is `learning_rate * lr_decay_rate^3`.
    #[config(default = 0.1)]
    pub lr_decay_rate: f64,
}

/// The augmentation of pre-training (and of the cross-entropy baseline's crops and flips).
#[derive(Config, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Augmented views per image in pre-training.
    #[config(default = 2)]
    pub views: usize,
    /// Smallest crop area fraction of the random resized crop (the reference: 0.2).
    #[config(default = 0.5)]
    pub crop_min_scale: f64,
    /// Colour-jitter strength s: brightness, contrast, saturation s, hue s/4, applied with
    /// probability 0.8 (the reference: 0.4); 0 turns it off.
    #[config(default = 0.4)]
    pub jitter: f64,
    /// Probability of a horizontal flip (the reference: 0.5); when the dataset is the embedded
    /// MNIST and no value is given, 0 ([`RunConfig::resolve_over`]).
    #[config(default = 0.5)]
    pub flip: f64,
}

/// Evaluation: the kNN monitor and the linear classifier.
#[derive(Config, Debug, PartialEq)]
pub struct EvalConfig {
    /// kNN accuracy on the validation split every this many epochs (0: never).
    #[config(default = 2)]
    pub knn_freq: usize,
    /// Neighbours of the kNN monitor.
    #[config(default = 200)]
    pub knn_k: usize,
    /// Epochs of the linear classifier (on the frozen encoder).
    #[config(default = 30)]
    pub linear_epochs: usize,
    /// Learning rate of the linear classifier.
    #[config(default = 0.1)]
    pub linear_learning_rate: f64,
}

/// A complete configuration, saved as a run's `config.toml`. `RunConfig::new()` holds the
/// defaults; `recipes/` holds tuned ones (`recipes/demo.toml` is the demo's).
#[derive(Config, Debug, PartialEq)]
pub struct RunConfig {
    /// Seed of initialisation, splits, shuffles and augmentation.
    #[config(default = 0)]
    pub seed: u64,
    /// Device.
    #[config(default = "DeviceChoice::default()")]
    pub device: DeviceChoice,
    /// The float type the device computes in (the losses compute in float32 whatever it is).
    #[config(default = "Precision::F32")]
    pub precision: Precision,
    /// Folder under which run folders are created.
    #[config(default = "PathBuf::from(\"runs\")")]
    pub out: PathBuf,
    /// The run folder's name under `out`; `None`: `<method>-<model>-<n>`, the first free `n`.
    pub name: Option<String>,
    /// Save a checkpoint every this many epochs (and always at the end).
    #[config(default = 1)]
    pub save_freq: usize,
    /// The data.
    #[config(default = "DataConfig::new()")]
    pub data: DataConfig,
    /// The network.
    #[config(default = "ModelConfig::new()")]
    pub model: ModelConfig,
    /// The loss.
    #[config(default = "LossConfig::new()")]
    pub loss: LossConfig,
    /// The step: queue and momentum encoder, gradient caching.
    #[config(default = "StepConfig::new()")]
    pub step: StepConfig,
    /// The optimiser.
    #[config(default = "OptimConfig::new()")]
    pub optim: OptimConfig,
    /// The schedule.
    #[config(default = "ScheduleConfig::new()")]
    pub schedule: ScheduleConfig,
    /// The augmentation.
    #[config(default = "AugmentConfig::new()")]
    pub augment: AugmentConfig,
    /// The evaluation.
    #[config(default = "EvalConfig::new()")]
    pub eval: EvalConfig,
}

impl RunConfig {
    /// The device this configuration names, computing in its precision (see
    /// [`DeviceChoice::device_with`]): the one way the commands bring a device up.
    pub fn device(&self) -> Result<Device, TrainError> {
        self.device.device_with(self.precision)
    }

    /// The defaults, then `options`' `--config` file if any, then `options`; checked.
    pub fn resolve(options: Options) -> Result<RunConfig, TrainError> {
        RunConfig::resolve_over(&[], options)
    }

    /// The defaults, then `recipe` layers (a recipe's TOML, say), then `options`' `--config`
    /// file, then `options`; checked. Relative dataset folders given on the command line are
    /// made absolute, so that `config.toml` names the data wherever it is read from. The
    /// embedded MNIST digits are not flipped unless a flip probability is given (a mirrored
    /// digit is another symbol or none).
    pub fn resolve_over(recipe: &[Layer], options: Options) -> Result<RunConfig, TrainError> {
        let mut layers = recipe.to_vec();
        if let Some(path) = &options.config {
            layers.push(Layer::from_file(path)?);
        }
        layers.push(Layer::from_options(&options)?);
        let mut config = layers::build(&RunConfig::new(), &layers)?;
        let flip_given = layers
            .iter()
            .any(|l| l.paths().any(|p| p == "augment.flip"));
        if config.data.dataset == DatasetSpec::EmbeddedMnist && !flip_given {
            config.augment.flip = 0.0;
        }
        config.data.dataset = config.data.dataset.absolute()?;
        config.validate()?;
        Ok(config)
    }

    /// A configuration from TOML text (`config.toml`'s sections or the flat option names) over
    /// the defaults; relative dataset folders are taken from `base_dir`. Checked.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<RunConfig, TrainError> {
        let layer = Layer::from_toml(text, "TOML", base_dir)?;
        let config = layers::build(&RunConfig::new(), &[layer])?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that can be checked without touching data or devices.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        let (data, model, loss, optim) = (&self.data, &self.model, &self.loss, &self.optim);
        let (schedule, augment, eval) = (&self.schedule, &self.augment, &self.eval);
        if data.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        for (name, value) in [
            ("learning_rate", optim.learning_rate),
            ("temp", loss.temp),
            ("base_temp", loss.base_temp),
            ("linear_learning_rate", eval.linear_learning_rate),
            ("lr_decay_rate", schedule.lr_decay_rate),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return bad(format!("{name} must be a positive number, got {value}"));
            }
        }
        // What float32 can compute with (the loss's own check, with our option names).
        if let Err(error) = supcon_loss::SupConLossConfig::new()
            .with_temperature(loss.temp)
            .with_base_temperature(loss.base_temp)
            .try_init()
        {
            // The loss's message, in our option names.
            return bad(match error {
                supcon_loss::LossError::OutOfRange { name, value, why } => {
                    let option = if name == "temperature" {
                        "temp"
                    } else {
                        "base_temp"
                    };
                    format!("{option} = {value:?} is out of range: {why}")
                }
                other => other.to_string(),
            });
        }
        for (name, value) in [
            ("weight_decay", optim.weight_decay),
            ("momentum", optim.momentum),
            ("jitter", augment.jitter),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(format!("{name} must be zero or positive, got {value}"));
            }
        }
        if optim.momentum >= 1.0 {
            return bad(format!("momentum must be below 1, got {}", optim.momentum));
        }
        if schedule.epochs == 0 {
            return bad("epochs must be positive".into());
        }
        if augment.views == 0 {
            return bad("views must be positive".into());
        }
        if augment.views > MAX_VIEWS {
            return bad(format!(
                "views must be at most {MAX_VIEWS} (every view of every image goes through the \
                 encoder at once), got {}",
                augment.views
            ));
        }
        if loss.method == Method::SimClr && augment.views < 2 {
            return bad(
                "--method simclr needs at least two views per image (the other views of an \
                 image are its only positives): use --views 2 or more"
                    .into(),
            );
        }
        if model.feat_dim == 0 {
            return bad("feat_dim must be positive".into());
        }
        if model.feat_dim > MAX_FEAT_DIM {
            return bad(format!(
                "feat_dim must be at most {MAX_FEAT_DIM}, got {} (the projection head alone \
                 would not fit in memory)",
                model.feat_dim
            ));
        }
        if augment.jitter > MAX_JITTER {
            return bad(format!(
                "jitter must be at most {MAX_JITTER} (its hue shift, jitter / 4, must stay \
                 within half a turn), got {}",
                augment.jitter
            ));
        }
        if let Some(name) = &self.name
            && (name.is_empty()
                || name == "."
                || name == ".."
                || name.contains(['/', '\\'])
                || name.starts_with('.'))
        {
            return bad(format!(
                "name must be a folder name (no separator, not hidden), got `{name}`"
            ));
        }
        let step = &self.step;
        if !(0.0..1.0).contains(&step.queue_momentum) {
            return bad(format!(
                "queue_momentum must be in [0, 1), got {}",
                step.queue_momentum
            ));
        }
        let keys = augment.views * data.batch_size;
        if step.queue > 0 && step.queue < keys {
            return bad(format!(
                "queue must hold at least a batch's keys ({} views x {} images = {keys}), got {}",
                augment.views, data.batch_size, step.queue
            ));
        }
        if step.queue > MAX_QUEUE {
            return bad(format!(
                "queue must be at most {MAX_QUEUE}, got {}",
                step.queue
            ));
        }
        if step.chunk > data.batch_size
            || (step.chunk > 0 && !data.batch_size.is_multiple_of(step.chunk))
        {
            return bad(format!(
                "chunk must divide batch_size ({}) and be at most it, got {}",
                data.batch_size, step.chunk
            ));
        }
        if let Some(m) = data.mean.iter().find(|m| !m.is_finite()) {
            return bad(format!("mean values must be finite numbers, got {m}"));
        }
        if data.size == Some(0) {
            return bad("size must be positive".into());
        }
        data.limited(usize::MAX)?;
        if self.save_freq == 0 {
            return bad("save_freq must be positive".into());
        }
        if eval.knn_k == 0 {
            return bad("knn_k must be positive".into());
        }
        if !(0.0..=1.0).contains(&augment.flip) {
            return bad(format!("flip must be a probability, got {}", augment.flip));
        }
        if !(augment.crop_min_scale > 0.0 && augment.crop_min_scale <= 1.0) {
            return bad(format!(
                "crop_min_scale must be in (0, 1], got {}",
                augment.crop_min_scale
            ));
        }
        if !(data.val_fraction > 0.0 && data.val_fraction < 1.0) {
            return bad(format!(
                "val_fraction must be in (0, 1), got {}",
                data.val_fraction
            ));
        }
        match (data.mean.len(), data.std.len()) {
            (m, s) if m == s => {}
            (m, s) if m == 0 || s == 0 => {
                let (given, missing) = if m == 0 {
                    ("std", "mean")
                } else {
                    ("mean", "std")
                };
                return bad(format!(
                    "{given} is given without {missing}: give both, or neither (then both are \
                     measured on the training split)"
                ));
            }
            (m, s) => {
                return bad(format!(
                    "mean has {m} values and std {s}: give one of each per channel"
                ));
            }
        }
        if let Some(s) = data.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return bad(format!("std values must be positive, got {s}"));
        }
        // Pixels are normalised on the [0, 1] scale (after PyTorch's `ToTensor`): a mean
        // outside it, or a deviation above 1 (0.5 is the most [0, 1] values can have), is
        // statistics of 0-255 pixels, which would silently blow the inputs up.
        let scale_hint = "mean and std are on the [0, 1] scale of the pixels (the reference's \
                          CIFAR-10: --mean 0.4914,0.4822,0.4465 --std 0.2023,0.1994,0.2010); \
                          divide 0-255 statistics by 255";
        if let Some(m) = data.mean.iter().find(|m| !(0.0..=1.0).contains(*m)) {
            return bad(format!("mean {m} is outside [0, 1]: {scale_hint}"));
        }
        if let Some(s) = data.std.iter().find(|s| **s > 1.0) {
            return bad(format!("std {s} is above 1: {scale_hint}"));
        }
        self.device.check()?;
        Ok(())
    }

    /// What pre-training needs beyond [`validate`](Self::validate): a batch of at least two
    /// images (with one, no anchor has a negative, the loss is exactly 0 and nothing is learnt).
    pub fn validate_pretraining(&self) -> Result<(), TrainError> {
        if self.data.batch_size < 2 {
            return Err(TrainError::Config(
                "batch_size 1 cannot pre-train: an image alone in its batch has no negatives, \
                 so the contrastive loss is exactly 0 and nothing is learnt; use 2 or more"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether the learning rate warms up: `--warm`, or batches over 256 (the reference).
    pub fn warm_up(&self) -> bool {
        self.schedule.warm || self.data.batch_size > 256
    }

    /// Writes the configuration as TOML.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| TrainError::Config(format!("cannot serialise the configuration: {e}")))?;
        crate::atomic::write_atomically(path, text.as_bytes())
    }

    /// The settings as a run prints them before training: one line per section, `key = value`
    /// as in `config.toml`, and a note for each default that depends on the dataset.
    pub fn describe(&self) -> String {
        let table = toml::Table::try_from(self).unwrap_or_default();
        let mut top = Vec::new();
        let mut lines = Vec::new();
        for (key, value) in &table {
            match value {
                toml::Value::Table(section) => {
                    let settings: Vec<String> =
                        section.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    lines.push(format!("  [{key}] {}", settings.join(", ")));
                }
                other => top.push(format!("{key} = {other}")),
            }
        }
        lines.insert(0, format!("  {}", top.join(", ")));
        if self.data.dataset == DatasetSpec::EmbeddedMnist && self.augment.flip == 0.0 {
            lines.push(
                "  note: flip = 0 is the embedded digits' default (a mirrored digit is another \
                 symbol or none); --flip overrides it"
                    .into(),
            );
        }
        lines.join("\n")
    }

    /// Reads a configuration saved by [`save`](Self::save) (settings it lacks, as from an
    /// earlier version, take their defaults).
    pub fn load(path: &Path) -> Result<RunConfig, TrainError> {
        if !path.is_file() {
            return Err(TrainError::run(path, "no such file"));
        }
        let config = layers::build(&RunConfig::new(), &[Layer::from_file(path)?])?;
        config.validate()?;
        Ok(config)
    }
}
