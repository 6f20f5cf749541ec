//! Runs as a library: start, resume and reopen a run folder, and evaluate the encoder a run
//! saved (linear evaluation, kNN, embeddings). The `supcon-train` binary is a thin layer over
//! these functions; they report through a [`Progress`] and never print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use supcon_encoder::{Encoder, EncoderConfig};
use supcon_head::{ProjectionHead, SupConModel};

use crate::TrainError;
use crate::atomic::write_atomically;
use crate::checkpoint::Checkpoint;
use crate::config::{Layer, Method, Options, RunConfig};
use crate::features::{FeatureSet, extract, knn_accuracy};
use crate::fit::{CHECKPOINT_FILE, restore_model};
use crate::linear::LinearOutcome;
use crate::pretrain::{
    KNN_TEMPERATURE, PretrainOutcome, evaluate_linear, linear_record, pretrain, split_features,
    supcon_model,
};
use crate::progress::Progress;
use crate::report::{EvaluationRecord, npy, save_evaluation};
use crate::run::{Prepared, RunKind, create_run_dir, load_run_config};

/// The demo's recipe (`recipes/demo.toml`).
pub const DEMO_RECIPE: &str = include_str!("../recipes/demo.toml");

/// A data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Split {
    /// Training split.
    Train,
    /// Validation split.
    Validation,
    /// Test split.
    Test,
}

/// The demo's configuration: its recipe under `options` (which win).
pub fn demo_config(options: Options) -> Result<RunConfig, TrainError> {
    let recipe = Layer::from_toml(DEMO_RECIPE, "the demo recipe", Path::new(""))?;
    RunConfig::resolve_over(&[recipe], options)
}

/// Pre-trains a new run for `config`.
pub fn start_pretrain(
    config: RunConfig,
    progress: &dyn Progress,
) -> Result<PretrainOutcome, TrainError> {
    config.validate_pretraining()?;
    crate::run::check_new_run(&config)?;
    let prepared = Prepared::new(config, progress)?;
    crate::footprint::check_training(&prepared, RunKind::Pretrain, progress)?;
    let c = &prepared.config;
    let method = match c.loss.method {
        Method::SupCon => "supcon",
        Method::SimClr => "simclr",
    };
    let run_dir = create_run_dir(
        c,
        &format!("{method}-{}", c.model.architecture),
        RunKind::Pretrain,
    )?;
    progress.message(&format!("run folder {}", run_dir.display()));
    progress.message(&format!("configuration (config.toml):\n{}", c.describe()));
    pretrain(&prepared, &run_dir, false, progress, None)
}

/// Continues the pre-training run in `run` (see [`resume`]).
pub fn resume_pretrain(
    run: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<PretrainOutcome, TrainError> {
    let prepared = resume(run, options, RunKind::Pretrain, progress)?;
    pretrain(&prepared, run, true, progress, None)
}

/// The settings a reopened run may change: they do not change what was trained.
pub const REOPEN_SETTINGS: [&str; 4] = [
    "device",
    "eval.linear_epochs",
    "eval.linear_learning_rate",
    "eval.knn_k",
];

/// The setting that extends a run when resuming it: more epochs than it was planned for.
pub const EXTEND_SETTING: &str = "schedule.epochs";

/// Reopens the interrupted training run in `run` (pre-training or cross-entropy, as `kind`
/// says: a run of the other kind is refused) to continue it. `--epochs N` with more epochs than
/// the run's extends it, finished or not: the learning-rate schedule is recomputed over the new
/// total from the next epoch on, and `config.toml` is updated. A finished run without
/// `--epochs` is refused: it has nothing to resume (evaluate it with `linear`, `knn` or
/// `embed`), unless it stopped once training had ended, before the evaluation that follows
/// (pre-training's linear one, the cross-entropy baseline's test one): then it goes on with
/// that evaluation. A run stopped during its first epoch has no checkpoint: it trains from
/// epoch 1.
pub fn resume(
    run: &Path,
    options: &Options,
    kind: RunKind,
    progress: &dyn Progress,
) -> Result<Prepared, TrainError> {
    let saved = load_run_config(run)?;
    // The cross-entropy baseline has no kNN monitor or linear evaluation to set.
    let allowed: Vec<&str> = match kind {
        RunKind::CrossEntropy => vec!["device", EXTEND_SETTING],
        _ => REOPEN_SETTINGS
            .into_iter()
            .chain([EXTEND_SETTING])
            .collect(),
    };
    let layers = checked_layers(run, options, &allowed)?;
    let recorded = kind.check(run)?;
    let checkpoint = run.join(CHECKPOINT_FILE);
    // A run stopped during its first epoch has its configuration and no checkpoint: it starts
    // again from epoch 1, which gives what the uninterrupted run would have (batches and views
    // are functions of the seed, the epoch and the step).
    let done = if checkpoint.is_file() {
        Checkpoint::load(&checkpoint)?.state.epoch
    } else if recorded.is_none() {
        // Made before kinds were recorded: which command made it is unknown.
        return Err(TrainError::run(
            run,
            format!(
                "no {CHECKPOINT_FILE} in the run folder: the run stopped during its first epoch; \
                 start it again"
            ),
        ));
    } else {
        0
    };
    let planned = saved.schedule.epochs;
    let prepared = prepare(&saved, &layers, progress)?;
    let total = prepared.config.schedule.epochs;
    if total < planned {
        return Err(TrainError::Config(format!(
            "--epochs {total} is fewer than the {planned} epochs {} was planned for: resuming \
             can extend a run, not shorten it",
            run.display()
        )));
    }
    crate::footprint::check_training(&prepared, kind, progress)?;
    // The evaluation that follows training, unless its result is in the folder: a run stopped
    // once training had ended, before that evaluation, resumes into it.
    let evaluation = match kind {
        RunKind::Pretrain if prepared.config.eval.linear_epochs > 0 => Some(("linear", "linear")),
        RunKind::CrossEntropy => Some(("test", "ce")),
        _ => None,
    };
    let pending = evaluation
        .filter(|(_, file)| !crate::report::result_file(run, file).exists())
        .map(|(evaluation, _)| evaluation);
    if total == planned && done >= planned {
        let Some(evaluation) = pending else {
            return Err(TrainError::run(
                run,
                format!(
                    "the run is finished ({done} of {planned} epochs): nothing to resume; train \
                     it longer with --resume {} --epochs N (N > {planned}), or evaluate it with \
                     `supcon-train linear --encoder {}`",
                    run.display(),
                    run.display()
                ),
            ));
        };
        progress.message(&format!(
            "{}: training is finished ({done} of {planned} epochs) and its {evaluation} \
             evaluation was not made (the run stopped before it): making it",
            run.display()
        ));
    }
    if done == 0 {
        progress.message(&format!(
            "{} has no checkpoint (it stopped during its first epoch): training it from epoch 1 \
             with its saved configuration",
            run.display()
        ));
    }
    if total > planned {
        progress.message(&format!(
            "extending {} from {planned} to {total} epochs ({done} done): the learning-rate \
             schedule is recomputed over {total} epochs, so epochs {}..={total} follow it (the \
             first {done} followed the {planned}-epoch schedule)",
            run.display(),
            done + 1
        ));
        let mut updated = saved;
        updated.schedule.epochs = total;
        updated.save(&run.join(crate::run::CONFIG_FILE))?;
    }
    Ok(prepared)
}

/// The run's saved configuration, with the few settings that may change between sessions
/// ([`REOPEN_SETTINGS`]) taken from `options` (and its `--config` file).
pub fn reopen(
    run: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Prepared, TrainError> {
    let saved = load_run_config(run)?;
    let layers = checked_layers(run, options, &REOPEN_SETTINGS)?;
    let best = run.join(crate::ce::BEST_MODEL_FILE);
    if RunKind::of(run)? == Some(RunKind::CrossEntropy) && best.is_file() {
        return Err(TrainError::run(
            run,
            format!(
                "is {}: give its best network's file, --encoder {}",
                RunKind::CrossEntropy.description(),
                best.display()
            ),
        ));
    }
    RunKind::Pretrain.check(run)?;
    if !run.join(CHECKPOINT_FILE).is_file() {
        return Err(TrainError::run(
            run,
            format!(
                "no {CHECKPOINT_FILE} in the run folder: the run stopped during its first epoch; \
                 continue it with `supcon-train pretrain --resume {}`",
                run.display()
            ),
        ));
    }
    prepare(&saved, &layers, progress)
}

/// The layers of settings `options` (and its `--config` file) give a reopened run, refused if
/// they set anything but the `allowed` settings.
fn checked_layers(
    run: &Path,
    options: &Options,
    allowed: &[&str],
) -> Result<Vec<Layer>, TrainError> {
    let mut layers = Vec::new();
    if let Some(path) = &options.config {
        layers.push(Layer::from_file(path)?);
    }
    layers.push(Layer::from_options(options)?);
    for layer in &layers {
        if let Some(path) = layer.paths().find(|p| !allowed.contains(&p.as_str())) {
            let names: Vec<String> = allowed
                .iter()
                .map(|&setting| {
                    let name = setting.rsplit('.').next().unwrap_or(setting);
                    if setting == EXTEND_SETTING {
                        format!("--{name} (to extend it)")
                    } else {
                        format!("--{name}")
                    }
                })
                .collect();
            let list = match names.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => "nothing".into(),
            };
            return Err(TrainError::Config(format!(
                "{} has its configuration in {}, so `{path}` cannot be given with it; only \
                 {list} can",
                run.display(),
                crate::run::CONFIG_FILE
            )));
        }
    }
    Ok(layers)
}

/// The saved configuration under `layers`, checked, with its data loaded.
fn prepare(
    saved: &RunConfig,
    layers: &[Layer],
    progress: &dyn Progress,
) -> Result<Prepared, TrainError> {
    let config = crate::config::layers::build(saved, layers)?;
    config.validate()?;
    Prepared::new(config, progress)
}

/// The model (encoder and head) of the pre-training run in `run`, in evaluation mode on
/// `device`, for images of `channels` channels.
pub fn load_model(
    run: &Path,
    config: &RunConfig,
    channels: usize,
    device: &Device,
) -> Result<SupConModel, TrainError> {
    let path = run.join(CHECKPOINT_FILE);
    let checkpoint = Checkpoint::load(&path)?;
    let model = supcon_model(config, channels, device)?;
    Ok(restore_model(model, checkpoint.model, &path)?.valid())
}

/// An encoder ready for evaluation: the data and device, and the folder its results go to.
pub struct OpenedEncoder {
    /// The configuration, data and device.
    pub prepared: Prepared,
    /// The encoder, in evaluation mode.
    pub encoder: Encoder,
    /// The projection head, in evaluation mode: always for a run folder, for a checkpoint file
    /// when asked for.
    pub head: Option<ProjectionHead>,
    /// Where results are saved: the run folder, or the evaluation folder made for a checkpoint
    /// file.
    pub dir: PathBuf,
    /// The checkpoint file, when the encoder came from one rather than a run folder.
    pub file: Option<PathBuf>,
}

impl OpenedEncoder {
    /// `result`, after removing the evaluation folder made for a checkpoint file when the
    /// evaluation failed before saving anything there (an image that does not decode, a
    /// diverging classifier), so that a failed attempt leaves no `eval-<model>-<n>` behind; a
    /// run folder is never touched ([`remove_unused_run_dir`](crate::run::remove_unused_run_dir)).
    /// `progress` hears of the removal, having heard of the folder when it was made.
    fn removing_folder_on_error<T>(
        &self,
        result: Result<T, TrainError>,
        progress: &dyn Progress,
    ) -> Result<T, TrainError> {
        if result.is_err() && self.file.is_some() && crate::run::remove_unused_run_dir(&self.dir) {
            progress.message(&format!(
                "evaluation folder {} removed: nothing was saved in it",
                self.dir.display()
            ));
        }
        result
    }

    /// `record` with the encoder's checkpoint file added to its settings, if any.
    fn tagged<T>(&self, mut record: EvaluationRecord<T>) -> EvaluationRecord<T> {
        if let Some(file) = &self.file {
            record
                .settings
                .insert("encoder".into(), file.display().to_string());
        }
        record
    }
}

/// Opens the encoder of `source` for evaluation: a run folder (its configuration and checkpoint;
/// `options` may change only [`REOPEN_SETTINGS`]), or a checkpoint file: the PyTorch
/// reference's (`.pth`, `.pt` or `.safetensors`) or one [`export`] wrote (`.safetensors`,
/// `.bpk`; a cross-entropy run's `best-model.bpk` too); only its `encoder.*` entries are read,
/// or those of an encoder saved alone ([`supcon_head::weights::load_encoder`]). For a
/// file, `options` describe the data (the dataset options, as for `pretrain`) and the
/// architecture (`--model`, required), and a new evaluation folder (`eval-<model>-<n>` under
/// `--out`, or `--name`) receives the configuration and the results.
///
/// `with_head`: also read a checkpoint file's projection head (`head.*`, of the configuration's
/// `--head` and `--feat_dim`).
pub fn open_encoder(
    source: &Path,
    options: &Options,
    with_head: bool,
    progress: &dyn Progress,
) -> Result<OpenedEncoder, TrainError> {
    if source.is_dir() {
        let prepared = reopen(source, options, progress)?;
        let model = load_model(
            source,
            &prepared.config,
            prepared.channels(),
            &prepared.device,
        )?;
        return Ok(OpenedEncoder {
            prepared,
            encoder: model.encoder,
            head: Some(model.head),
            dir: source.to_path_buf(),
            file: None,
        });
    }
    if !source.is_file() {
        return Err(TrainError::run(
            source,
            "no such run folder or checkpoint file",
        ));
    }
    if Checkpoint::is_checkpoint(source) {
        let run = source.parent().unwrap_or(Path::new("."));
        return Err(TrainError::run(
            source,
            format!(
                "is a run's training checkpoint, read with its configuration: give the run \
                 folder, --encoder {}",
                run.display()
            ),
        ));
    }
    let recorded = crate::exported::recorded_settings(source, options.dataset.as_ref())?;
    if recorded.is_none() && options.model.is_none() {
        return Err(TrainError::Config(format!(
            "{} is a checkpoint file: give the architecture it was trained with, --model \
             resnet18|resnet34|resnet50|resnet101|small (and the dataset options)",
            source.display()
        )));
    }
    let config = RunConfig::resolve_over(recorded.as_slice(), options.clone())?;
    if recorded.is_some() {
        progress.message(&format!(
            "{} records the settings of its run: they are the defaults here (model {}, \
             dataset {}, mean {:?}, std {:?}; the evaluation folder's config.toml has them all)",
            source.display(),
            config.model.architecture,
            config.data.dataset,
            config.data.mean,
            config.data.std
        ));
    }
    if let Some(dir) = config.data.dataset.dir().filter(|d| !d.exists())
        && recorded.is_some()
        && options.dataset.is_none()
    {
        return Err(TrainError::run(
            source,
            format!(
                "records the dataset of its run, {}, which is not here ({} does not exist): \
                 give --dataset",
                config.data.dataset,
                dir.display()
            ),
        ));
    }
    let architecture = config.model.architecture;
    crate::run::check_new_run(&config)?;
    let prepared = Prepared::new(config, progress)?;
    // Images too large to compute features of are refused before the evaluation folder exists.
    let shape = crate::features::evaluated_shape(&prepared.config, &prepared.splits.train);
    crate::footprint::extraction_batch(&prepared.config, shape)?;
    let (encoder, head) = if with_head {
        let model = supcon_model(&prepared.config, prepared.channels(), &prepared.device)?;
        let model = match supcon_head::weights::load_checkpoint(model, source) {
            Ok(model) => model.valid(),
            Err(error) => {
                // An encoder that loads alone: the file has no projection head to read (a
                // cross-entropy checkpoint, or an encoder saved alone).
                let encoder = EncoderConfig::new(architecture)
                    .with_in_channels(prepared.channels())
                    .init(&prepared.device);
                if supcon_head::weights::load_encoder(encoder, source).is_ok() {
                    return Err(TrainError::Config(format!(
                        "{}: its encoder loads, but it holds no projection head of the shape \
                         asked for ({}, {} outputs; `head.*`): give the head it holds with \
                         --head and --feat_dim (a SupCon checkpoint of the reference has one, \
                         as does `export --head` of a pre-training run; a cross-entropy one or an \
                         encoder saved alone has none); without --projection only the encoder is \
                         read",
                        source.display(),
                        prepared.config.model.head,
                        prepared.config.model.feat_dim
                    )));
                }
                return Err(error.into());
            }
        };
        (model.encoder, Some(model.head))
    } else {
        let encoder = EncoderConfig::new(architecture)
            .with_in_channels(prepared.channels())
            .init(&prepared.device);
        let encoder = supcon_head::weights::load_encoder(encoder, source)?.valid();
        (encoder, None)
    };
    let dir = create_run_dir(
        &prepared.config,
        &format!("eval-{architecture}"),
        RunKind::Evaluation,
    )?;
    progress.message(&format!(
        "evaluation folder {} (for {})",
        dir.display(),
        source.display()
    ));
    Ok(OpenedEncoder {
        prepared,
        encoder,
        head,
        dir,
        file: Some(source.to_path_buf()),
    })
}

/// Linear evaluation of the encoder of `source` (a run folder or a checkpoint file, see
/// [`open_encoder`]), saved in the next free `linear*.json` of its folder
/// ([`next_result_file`](crate::report::next_result_file)); returns it and the file.
pub fn linear(
    source: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<(LinearOutcome, PathBuf), TrainError> {
    let mut opened = open_encoder(source, options, false, progress)?;
    let eval = &mut opened.prepared.config.eval;
    if eval.linear_epochs == 0 && options.linear_epochs.is_none() {
        // Pre-trained with the linear evaluation skipped: this is it, at the default length.
        eval.linear_epochs = crate::config::EvalConfig::new().linear_epochs;
        progress.message(&format!(
            "the run was pre-trained with linear_epochs 0: the classifier trains for {} epochs \
             (--linear_epochs sets it)",
            eval.linear_epochs
        ));
    }
    let result = linear_of(&opened, progress);
    opened.removing_folder_on_error(result, progress)
}

/// [`linear`] on an opened encoder.
fn linear_of(
    opened: &OpenedEncoder,
    progress: &dyn Progress,
) -> Result<(LinearOutcome, PathBuf), TrainError> {
    let _lock = crate::run::RunLock::acquire(&opened.dir)?;
    let features = split_features(&opened.prepared, &opened.encoder)?;
    let outcome = evaluate_linear(&opened.prepared, &features, progress)?;
    let record = opened.tagged(linear_record(&opened.prepared.config, &outcome));
    let file = save_evaluation(&opened.dir, &record)?;
    Ok((outcome, file))
}

/// The result of a kNN evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KnnOutcome {
    /// Neighbours that voted.
    pub k: usize,
    /// Accuracy on the validation split.
    pub val_accuracy: f64,
    /// Accuracy on the test split.
    pub test_accuracy: f64,
}

/// kNN accuracy (training split as reference) on the validation and test splits of the encoder
/// of `source` ([`open_encoder`]), saved in the next free `knn*.json` of its folder; returns it
/// and the file.
pub fn knn(
    source: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<(KnnOutcome, PathBuf), TrainError> {
    let opened = open_encoder(source, options, false, progress)?;
    let result = knn_of(&opened, progress);
    opened.removing_folder_on_error(result, progress)
}

/// [`knn`] on an opened encoder.
fn knn_of(
    opened: &OpenedEncoder,
    progress: &dyn Progress,
) -> Result<(KnnOutcome, PathBuf), TrainError> {
    let _lock = crate::run::RunLock::acquire(&opened.dir)?;
    let (c, s, d) = (
        &opened.prepared.config,
        &opened.prepared.splits,
        &opened.prepared.device,
    );
    let features = |data| extract(&opened.encoder, data, c, d);
    let train: FeatureSet = features(&s.train)?;
    // Every training image votes where fewer than `knn_k` are there: the result is that of k
    // = their number, and is recorded so.
    let k = c.eval.knn_k.min(s.train.len());
    if k < c.eval.knn_k {
        progress.message(&format!(
            "knn_k {} is more than the {k} training images: all of them vote (k = {k})",
            c.eval.knn_k
        ));
    }
    let outcome = KnnOutcome {
        k,
        val_accuracy: knn_accuracy(&train, &features(&s.validation)?, k, KNN_TEMPERATURE)?,
        test_accuracy: knn_accuracy(&train, &features(&s.test)?, k, KNN_TEMPERATURE)?,
    };
    let settings = [
        ("knn_k", k.to_string()),
        ("temperature", KNN_TEMPERATURE.to_string()),
        ("device", c.device.to_string()),
        ("precision", c.precision.to_string()),
    ];
    let record = opened.tagged(EvaluationRecord {
        evaluation: "knn".into(),
        settings: settings.map(|(k, v)| (k.to_string(), v)).into(),
        outcome: outcome.clone(),
    });
    let file = save_evaluation(&opened.dir, &record)?;
    Ok((outcome, file))
}

/// What [`embed`] runs the encoder on.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    /// A split of the run's dataset (labels written too).
    Split(Split),
    /// Image files and folders (PNG, JPEG; folders with their sub-folders), resized to the
    /// run's image size; their paths are written in row order.
    Images(Vec<PathBuf>),
}

/// Runs the encoder of `source` ([`open_encoder`]) on `input` and writes, into `output` (default:
/// its folder), `<name>-embeddings.npy` (`[N, width]` f32), with `projection` also
/// `<name>-projections.npy` (`[N, feat_dim]` f32, the head's L2-normalised output), and
/// `<name>-labels.npy` (`[N]` i64) for a split or `<name>-files.txt` (one path per line) for
/// images. `<name>` is the split's name or `images`. Returns the files written.
pub fn embed(
    source: &Path,
    input: &EmbedInput,
    projection: bool,
    output: Option<&Path>,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>, TrainError> {
    if let Some(file) = output.and_then(file_in_the_way) {
        return Err(TrainError::run(
            file,
            "is a file: --output names the folder the .npy files go to",
        ));
    }
    let opened = open_encoder(source, options, projection, progress)?;
    let result = embed_of(&opened, input, projection, output, progress);
    opened.removing_folder_on_error(result, progress)
}

/// [`embed`] on an opened encoder.
fn embed_of(
    opened: &OpenedEncoder,
    input: &EmbedInput,
    projection: bool,
    output: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>, TrainError> {
    let prepared = &opened.prepared;
    let loaded;
    let (name, data, files) = match input {
        EmbedInput::Split(Split::Train) => ("train", &prepared.splits.train, None),
        EmbedInput::Split(Split::Validation) => ("validation", &prepared.splits.validation, None),
        EmbedInput::Split(Split::Test) => ("test", &prepared.splits.test, None),
        EmbedInput::Images(inputs) => {
            let [channels, side, _] = prepared.splits.train.image_shape();
            let side = prepared.config.data.size.unwrap_or(side);
            let (images, files) = supcon_data::folder::load_images(inputs, side, channels)?;
            progress.message(&format!(
                "{} images of {channels}x{side}x{side}",
                images.len()
            ));
            loaded = images;
            ("images", &loaded, Some(files))
        }
    };
    let set = extract(&opened.encoder, data, &prepared.config, &prepared.device)?;
    let dir = output.unwrap_or(&opened.dir);
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let [n, width] = set.features.dims();
    let mut written = Vec::new();
    let mut write = |file: String, bytes: Vec<u8>| -> Result<(), TrainError> {
        let path = dir.join(file);
        write_atomically(&path, &bytes)?;
        written.push(path);
        Ok(())
    };
    let (features, labels) = set.to_host()?;
    write(
        format!("{name}-embeddings.npy"),
        npy(&[n, width], &features),
    )?;
    if projection {
        let head = opened.head.as_ref().ok_or_else(|| {
            TrainError::Config("this encoder has no projection head to run".into())
        })?;
        let z = head.forward(set.features.clone());
        let dim = z.dims()[1];
        let z = z
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| TrainError::Config(format!("cannot read the projections: {e:?}")))?;
        write(format!("{name}-projections.npy"), npy(&[n, dim], &z))?;
    }
    match files {
        None => write(format!("{name}-labels.npy"), npy(&[n], &labels))?,
        Some(files) => {
            let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
            write(format!("{name}-files.txt"), list.into_bytes())?;
        }
    }
    Ok(written)
}

/// The first of `folder` and the folders above it that exists as something other than a
/// folder: what stops `folder` from being created.
fn file_in_the_way(folder: &Path) -> Option<&Path> {
    folder
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .filter(|a| !a.is_dir())
}

/// Writes `model` in `format` to `path` (its folder made if need be), `settings` in its
/// metadata.
fn save_as<M: burn::module::Module>(
    model: &M,
    format: ExportFormat,
    path: &Path,
    settings: &BTreeMap<String, String>,
) -> Result<(), TrainError> {
    use supcon_head::weights;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    }
    match format {
        ExportFormat::Pytorch => weights::save_pytorch_safetensors(model, path, settings),
        ExportFormat::Safetensors => weights::save_safetensors_with_metadata(model, path, settings),
        ExportFormat::Burnpack => weights::save_burnpack_with_metadata(model, path, settings),
    }?;
    Ok(())
}

/// The formats [`export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ExportFormat {
    /// safetensors (our parameter names; readable from Python).
    Safetensors,
    /// Burn's own burnpack.
    Burnpack,
    /// safetensors with PyTorch's names and layouts: the reference's `SupConResNet` state dict
    /// (`SupCEResNet`'s for a cross-entropy run), for
    /// `model.load_state_dict(safetensors.torch.load_file(path))` (written by
    /// `supcon_head::weights::save_pytorch_safetensors`).
    Pytorch,
}

/// Writes the encoder of the run in `run` (with `head`, the whole model: encoder and projection
/// head for a pre-training run; for a cross-entropy run, encoder and classifier, of its best
/// validation epoch, `best-model.bpk`) in `format` to `output` (default: `RUN/encoder.<ext>` or
/// `RUN/model.<ext>`, `ext` `safetensors`, `bpk` or `pytorch.safetensors`), recording the run's
/// settings in its metadata ([`crate::exported`]); returns the file. Load it back with
/// `supcon_head::weights::load_checkpoint`, `load_encoder` or `load_cross_entropy_net` into a
/// model of the run's configuration (`config.toml`), or evaluate it with [`linear`], [`knn`]
/// and [`embed`].
pub fn export(
    run: &Path,
    format: ExportFormat,
    head: bool,
    output: Option<&Path>,
) -> Result<PathBuf, TrainError> {
    if let Some(output) = output.filter(|o| o.is_dir()) {
        return Err(TrainError::run(
            output,
            "is a folder: --output names the file to write (default: in the run folder)",
        ));
    }
    if let Some(output) = output {
        // The readers know a safetensors file by its extension.
        let safetensors = output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let problem = match format {
            ExportFormat::Burnpack if safetensors => Some("a burnpack file"),
            ExportFormat::Safetensors | ExportFormat::Pytorch if !safetensors => {
                Some("a safetensors file, which is read by its .safetensors extension")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(TrainError::run(
                output,
                format!("is not a name for {problem}: name it to match --format"),
            ));
        }
    }
    if let Some(file) = output.and_then(Path::parent).and_then(file_in_the_way) {
        return Err(TrainError::run(
            file,
            "is a file, so --output cannot be written inside it",
        ));
    }
    let config = load_run_config(run)?;
    let cross_entropy = RunKind::of(run)? == Some(RunKind::CrossEntropy);
    if !cross_entropy {
        RunKind::Pretrain.check(run)?;
    }
    let channels = config.data.mean.len();
    if channels == 0 {
        return Err(TrainError::run(
            run,
            "its config.toml has no normalisation statistics (a run folder of an older version?)",
        ));
    }
    let device = config.device()?;
    let name = match format {
        ExportFormat::Safetensors => "safetensors",
        ExportFormat::Burnpack => "bpk",
        ExportFormat::Pytorch => "pytorch.safetensors",
    };
    let stem = if head { "model" } else { "encoder" };
    let path = output.map_or_else(|| run.join(format!("{stem}.{name}")), Path::to_path_buf);
    let settings = crate::exported::settings_metadata(&config)?;
    if cross_entropy {
        let net = crate::ce::load_best_model(run, &config, channels, &device)?;
        if head {
            save_as(&net, format, &path, &settings)?;
        } else {
            save_as(&net.encoder, format, &path, &settings)?;
        }
    } else {
        let model = load_model(run, &config, channels, &device)?;
        if head {
            save_as(&model, format, &path, &settings)?;
        } else {
            save_as(&model.encoder, format, &path, &settings)?;
        }
    }
    Ok(path)
}
