//! Runs as a library: start, resume and reopen a run folder, and evaluate the encoder a run
//! saved (linear evaluation, kNN, embeddings). The `supcon-train` binary is a thin layer over
//! these functions; they report through a [`Progress`] and never print.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use supcon_encoder::Encoder;

use crate::TrainError;
use crate::atomic::write_atomically;
use crate::checkpoint::Checkpoint;
use crate::config::{Layer, Method, Options, RunConfig};
use crate::features::{FeatureSet, extract, knn_accuracy};
use crate::fit::{CHECKPOINT_FILE, restore_model};
use crate::linear::LinearOutcome;
use crate::pretrain::{
    KNN_TEMPERATURE, PretrainOutcome, evaluate_linear, pretrain, split_features, supcon_model,
};
use crate::progress::Progress;
use crate::report::{npy, save_linear};
use crate::run::{Prepared, create_run_dir, load_run_config};

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
    let c = &prepared.config;
    let method = match c.loss.method {
        Method::SupCon => "supcon",
        Method::SimClr => "simclr",
    };
    let run_dir = create_run_dir(c, &format!("{method}-{}", c.model.architecture))?;
    progress.message(&format!("run folder {}", run_dir.display()));
    pretrain(&prepared, &run_dir, false, progress, None)
}

/// Continues the pre-training run in `run`.
pub fn resume_pretrain(
    run: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<PretrainOutcome, TrainError> {
    let prepared = reopen(run, options, progress)?;
    pretrain(&prepared, run, true, progress, None)
}

/// The settings a reopened run may change: they do not change what was trained.
pub const REOPEN_SETTINGS: [&str; 4] = [
    "device",
    "eval.linear_epochs",
    "eval.linear_learning_rate",
    "eval.knn_k",
];

/// The run's saved configuration, with the few settings that may change between sessions
/// ([`REOPEN_SETTINGS`]) taken from `options` (and its `--config` file).
pub fn reopen(
    run: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Prepared, TrainError> {
    let saved = load_run_config(run)?;
    let mut layers = Vec::new();
    if let Some(path) = &options.config {
        layers.push(Layer::from_file(path)?);
    }
    layers.push(Layer::from_options(options)?);
    for layer in &layers {
        if let Some(path) = layer
            .paths()
            .find(|p| !REOPEN_SETTINGS.contains(&p.as_str()))
        {
            return Err(TrainError::Config(format!(
                "{} has its configuration in {}, so `{path}` cannot be given with it; only \
                 --device, --linear_epochs, --linear_learning_rate and --knn_k can",
                run.display(),
                crate::run::CONFIG_FILE
            )));
        }
    }
    let config = crate::config::layers::build(&saved, &layers)?;
    config.validate()?;
    if !run.join(CHECKPOINT_FILE).is_file() {
        return Err(TrainError::run(
            run,
            format!("no {CHECKPOINT_FILE} in the run folder"),
        ));
    }
    Prepared::new(config, progress)
}

/// The encoder of the pre-training run in `run`, in evaluation mode on `prepared`'s device.
pub fn load_encoder(run: &Path, prepared: &Prepared) -> Result<Encoder, TrainError> {
    let path = run.join(CHECKPOINT_FILE);
    let checkpoint = Checkpoint::load(&path)?;
    let model = supcon_model(&prepared.config, prepared.channels(), &prepared.device)?;
    Ok(restore_model(model, checkpoint.model, &path)?
        .valid()
        .encoder)
}

/// Linear evaluation of the encoder of `run`; the result is saved there as `linear.json`.
pub fn linear(
    run: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<LinearOutcome, TrainError> {
    let prepared = reopen(run, options, progress)?;
    let _lock = crate::run::RunLock::acquire(run)?;
    let encoder = load_encoder(run, &prepared)?;
    let features = split_features(&prepared, &encoder)?;
    let outcome = evaluate_linear(&prepared, &features, progress)?;
    save_linear(run, &outcome)?;
    Ok(outcome)
}

/// kNN accuracy (training split as reference) on the validation and test splits.
pub fn knn(
    run: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<(f64, f64), TrainError> {
    let prepared = reopen(run, options, progress)?;
    let encoder = load_encoder(run, &prepared)?;
    let c = &prepared.config;
    let s = &prepared.splits;
    let features = |data| extract(&encoder, data, c, &prepared.device);
    let train: FeatureSet = features(&s.train)?;
    let k = c.eval.knn_k;
    let val = knn_accuracy(&train, &features(&s.validation)?, k, KNN_TEMPERATURE)?;
    let test = knn_accuracy(&train, &features(&s.test)?, k, KNN_TEMPERATURE)?;
    Ok((val, test))
}

/// Writes `<split>-embeddings.npy` (`[N, width]` f32) and `<split>-labels.npy` (`[N]` i64).
pub fn embed(
    run: &Path,
    split: Split,
    output: Option<&Path>,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>, TrainError> {
    let prepared = reopen(run, options, progress)?;
    let encoder = load_encoder(run, &prepared)?;
    let (name, data) = match split {
        Split::Train => ("train", &prepared.splits.train),
        Split::Validation => ("validation", &prepared.splits.validation),
        Split::Test => ("test", &prepared.splits.test),
    };
    let c = &prepared.config;
    let set = extract(&encoder, data, c, &prepared.device)?;
    let dir = output.unwrap_or(run);
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let [n, width] = set.features.dims();
    let host = |e: burn::tensor::DataError| TrainError::run(run, format!("{e:?}"));
    let features = set
        .features
        .into_data()
        .try_into_vec::<f32>()
        .map_err(host)?;
    let labels = set
        .labels
        .into_data()
        .try_into_vec_as::<i64>()
        .map_err(host)?;
    let embeddings_path = dir.join(format!("{name}-embeddings.npy"));
    let labels_path = dir.join(format!("{name}-labels.npy"));
    write_atomically(&embeddings_path, &npy(&[n, width], &features))?;
    write_atomically(&labels_path, &npy(&[n], &labels))?;
    Ok(vec![embeddings_path, labels_path])
}
