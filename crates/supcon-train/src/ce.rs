//! The cross-entropy baseline (the reference's `main_ce.py`): the same encoder with a linear
//! classifier, trained end to end on one augmented view, the epoch chosen on the validation
//! split, test accuracy measured once.

use std::path::{Path, PathBuf};

use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use supcon_data::ImageDataset;
use supcon_encoder::EncoderConfig;
use supcon_head::{CrossEntropyNet, CrossEntropyNetConfig};
use supcon_loss::cross_entropy::{CrossEntropyLoss, CrossEntropyLossConfig};

use crate::TrainError;
use crate::config::RunConfig;
use crate::features::evaluation_views;
use crate::fit::{Fit, Task, backward, restore_model};
use crate::linear::{ClassBreakdown, PerClassResults};
use crate::metrics::EpochMetrics;
use crate::progress::Progress;
use crate::run::{Prepared, crop_view_config};

/// File holding the best-validation model of a cross-entropy run.
pub const BEST_MODEL_FILE: &str = "best-model.bpk";

/// What a cross-entropy run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossEntropyOutcome {
    /// Epoch with the best validation accuracy.
    pub best_epoch: usize,
    /// Its validation accuracy.
    pub val_accuracy: f64,
    /// Its test accuracy, measured once.
    pub test_accuracy: f64,
    /// The test split class by class.
    #[serde(flatten)]
    pub per_class: PerClassResults,
    /// The file the outcome was saved in (`ce.json`, or `ce-<n>.json` after earlier ones).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

struct CrossEntropyTask<'a> {
    prepared: &'a Prepared,
    loss: CrossEntropyLoss,
    best_path: PathBuf,
}

impl Task for CrossEntropyTask<'_> {
    type Model = CrossEntropyNet;

    fn name(&self) -> &'static str {
        "ce"
    }

    fn views(&self) -> usize {
        1
    }

    fn gradients(
        &mut self,
        model: CrossEntropyNet,
        views: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<(CrossEntropyNet, f32, GradientsParams), TrainError> {
        let loss = self.loss.forward(model.forward(views), labels);
        Ok(backward(model, loss))
    }

    fn monitor(
        &self,
        model: &CrossEntropyNet,
        _epoch: usize,
        _last: bool,
        history: &[EpochMetrics],
    ) -> Result<(Option<f64>, Option<f64>), TrainError> {
        let p = self.prepared;
        let model = model.valid();
        let accuracy = classify(&model, &p.splits.validation, &p.config, &p.device)?;
        let best = history
            .iter()
            .filter_map(|m| m.val_accuracy)
            .fold(-1.0, f64::max);
        if accuracy > best {
            // Recording the run's settings, as `export` does (so that `linear --encoder
            // best-model.bpk` evaluates it as the run was trained); Burn writes it atomically.
            let settings = crate::exported::settings_metadata(&p.config)?;
            supcon_head::weights::save_burnpack_with_metadata(&model, &self.best_path, &settings)?;
        }
        Ok((None, Some(accuracy)))
    }
}

/// The network of the best validation epoch that the cross-entropy run in `run` saved
/// ([`BEST_MODEL_FILE`]), in evaluation mode, of the run's configuration (its `channels`, as
/// many classes as the file's classifier has).
pub fn load_best_model(
    run: &Path,
    config: &RunConfig,
    channels: usize,
    device: &Device,
) -> Result<CrossEntropyNet, TrainError> {
    let path = run.join(BEST_MODEL_FILE);
    if !path.is_file() {
        return Err(TrainError::run(
            run,
            format!(
                "no {BEST_MODEL_FILE} in the run folder: the run stopped during its first epoch; \
                 continue it with `supcon-train ce --resume {}`",
                run.display()
            ),
        ));
    }
    let encoder = EncoderConfig::new(config.model.architecture)
        .with_in_channels(channels)
        .init(device);
    let net = supcon_head::weights::load_cross_entropy_net(encoder, &path, device)?;
    Ok(net.valid())
}

/// The results of `model` (evaluation mode) on `data`, class by class.
pub fn classify_by_class(
    model: &CrossEntropyNet,
    data: &ImageDataset,
    config: &RunConfig,
    device: &Device,
) -> Result<ClassBreakdown, TrainError> {
    let views = evaluation_views(config);
    let indices: Vec<usize> = (0..data.len()).collect();
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    let batch =
        crate::footprint::extraction_batch(config, crate::features::evaluated_shape(config, data))?;
    for chunk in indices.chunks(batch) {
        let batch = data.batch(chunk, device)?;
        let logits = model.forward(views.views(batch.images, 1, 0)?);
        let (s, l) = crate::features::rows_to_host(logits, batch.labels)?;
        scores.extend(s);
        labels.extend(l);
    }
    Ok(ClassBreakdown::from_scores(
        &scores,
        &labels,
        data.num_classes(),
    ))
}

/// Fraction of `data` that `model` (evaluation mode) classifies correctly.
pub fn classify(
    model: &CrossEntropyNet,
    data: &ImageDataset,
    config: &RunConfig,
    device: &Device,
) -> Result<f64, TrainError> {
    Ok(classify_by_class(model, data, config, device)?.accuracy())
}

/// Trains the baseline in `run_dir` (resuming if asked) and tests the best-validation epoch.
pub fn cross_entropy(
    prepared: &Prepared,
    run_dir: &Path,
    resume: bool,
    progress: &dyn Progress,
    stop_after: Option<usize>,
) -> Result<(Vec<EpochMetrics>, Option<CrossEntropyOutcome>), TrainError> {
    let _lock = crate::run::RunLock::acquire(run_dir)?;
    let c = &prepared.config;
    let train_device = prepared.device.clone().autodiff();
    let encoder = EncoderConfig::new(c.model.architecture).with_in_channels(prepared.channels());
    let model = CrossEntropyNetConfig::new(encoder, prepared.splits.train.num_classes())
        .init(&train_device);
    let views = crop_view_config(c);
    let mut task = CrossEntropyTask {
        prepared,
        loss: CrossEntropyLossConfig::new().init(&train_device),
        best_path: run_dir.join(BEST_MODEL_FILE),
    };
    let fitted =
        Fit::new(prepared, views, run_dir, progress, stop_after)?.run(&mut task, model, resume)?;
    if fitted
        .history
        .last()
        .is_none_or(|m| m.epoch < c.schedule.epochs)
    {
        return Ok((fitted.history, None));
    }
    crate::fit::stop_before_evaluation(progress, run_dir, "test")?;
    let (best_epoch, val_accuracy) = fitted
        .history
        .iter()
        .filter_map(|m| m.val_accuracy.map(|a| (m.epoch, a)))
        .fold((0, -1.0), |best, x| if x.1 > best.1 { x } else { best });
    let bytes = std::fs::read(&task.best_path).map_err(|e| TrainError::io(&task.best_path, e))?;
    let best = restore_model(
        fitted.model.valid(),
        burn::tensor::Bytes::from_bytes_vec(bytes),
        &task.best_path,
    )?;
    let test = &prepared.splits.test;
    let breakdown = classify_by_class(&best, test, c, &prepared.device)?;
    let test_accuracy = breakdown.accuracy();
    let per_class = breakdown.results(test.classes().to_vec());
    let top5_accuracy = per_class.top5_accuracy;
    let top5 = top5_accuracy.map_or(String::new(), |a| format!(", top-5 {:.2}%", 100.0 * a));
    progress.message(&format!(
        "cross-entropy: best validation {:.2}% at epoch {best_epoch}, test {:.2}%{top5}",
        100.0 * val_accuracy,
        100.0 * test_accuracy
    ));
    let mut outcome = CrossEntropyOutcome {
        best_epoch,
        val_accuracy,
        test_accuracy,
        per_class,
        file: None,
    };
    let settings = [
        ("epochs", c.schedule.epochs.to_string()),
        ("seed", c.seed.to_string()),
        ("device", c.device.to_string()),
        ("precision", c.precision.to_string()),
    ];
    outcome.file = Some(crate::report::save_evaluation(
        run_dir,
        &crate::report::EvaluationRecord {
            evaluation: "ce".into(),
            settings: settings.map(|(k, v)| (k.to_string(), v)).into(),
            outcome: outcome.clone(),
        },
    )?);
    Ok((fitted.history, Some(outcome)))
}
