//! SupCon / SimCLR pre-training (the reference's `main_supcon.py`), followed by linear
//! evaluation of the encoder.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use supcon_encoder::{Encoder, EncoderConfig};
use supcon_head::{SupConModel, SupConModelConfig};
use supcon_loss::{Positives, SupConLoss, SupConLossConfig, by_image};

use crate::TrainError;
use crate::config::{Method, RunConfig};
use crate::features::{FeatureSet, extract, knn_accuracy};
use crate::fit::{Fit, Task};
use crate::linear::{LinearOutcome, linear_evaluation};
use crate::metrics::EpochMetrics;
use crate::progress::Progress;
use crate::run::{Prepared, pretrain_view_config};

/// The reference's `base_temperature` (its `SupConLoss` default, which `main_supcon.py` keeps).
pub const BASE_TEMPERATURE: f64 = 0.07;
/// Temperature of the kNN monitor's vote weights.
pub const KNN_TEMPERATURE: f64 = 0.1;

/// What a pre-training run produced.
pub struct PretrainOutcome {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// Training seconds.
    pub seconds: f64,
    /// The linear evaluation, when `linear_epochs > 0`.
    pub linear: Option<LinearOutcome>,
    /// The frozen encoder's features of the test split, once the run is finished (for an
    /// embedding map, say).
    pub test_features: Option<FeatureSet>,
    /// The class names, indexed by label.
    pub classes: Vec<String>,
}

/// Pre-training as a [`Task`]: all views through the model at once, SupCon or SimCLR loss.
pub struct ContrastiveTask<'a> {
    prepared: &'a Prepared,
    loss: SupConLoss,
    method: Method,
    views: usize,
}

impl Task for ContrastiveTask<'_> {
    type Model = SupConModel;

    fn name(&self) -> &'static str {
        match self.method {
            Method::SupCon => "supcon",
            Method::SimClr => "simclr",
        }
    }

    fn views(&self) -> usize {
        self.views
    }

    fn loss(
        &self,
        model: &SupConModel,
        views: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<Tensor<1>, TrainError> {
        let features = by_image(model.forward(views), self.views);
        let positives = match self.method {
            Method::SupCon => Positives::Labels(labels),
            Method::SimClr => Positives::SameImage,
        };
        Ok(self.loss.try_forward(features, positives)?)
    }

    fn monitor(
        &self,
        model: &SupConModel,
        epoch: usize,
        last: bool,
        _history: &[EpochMetrics],
    ) -> Result<(Option<f64>, Option<f64>), TrainError> {
        let c = &self.prepared.config;
        if c.knn_freq == 0 || !(last || epoch.is_multiple_of(c.knn_freq)) {
            return Ok((None, None));
        }
        let encoder = model.valid().encoder;
        let p = self.prepared;
        let train = extract(&encoder, &p.splits.train, c, &p.device)?;
        let validation = extract(&encoder, &p.splits.validation, c, &p.device)?;
        let accuracy = knn_accuracy(&train, &validation, c.knn_k, KNN_TEMPERATURE)?;
        Ok((Some(accuracy), None))
    }
}

/// The model a configuration describes, on `device`.
pub fn supcon_model(
    config: &RunConfig,
    channels: usize,
    device: &Device,
) -> Result<SupConModel, TrainError> {
    let encoder = EncoderConfig::new(config.architecture()?).with_in_channels(channels);
    Ok(SupConModelConfig::new(encoder)
        .with_head(config.head_kind()?)
        .with_feat_dim(config.feat_dim)
        .init(device))
}

/// Pre-trains in `run_dir` (resuming its checkpoint if `resume`), then evaluates linearly.
/// `stop_after` ends the session early after that many epochs (for tests of resumption).
pub fn pretrain(
    prepared: &Prepared,
    run_dir: &Path,
    resume: bool,
    progress: &dyn Progress,
    stop_after: Option<usize>,
) -> Result<PretrainOutcome, TrainError> {
    let _lock = crate::run::RunLock::acquire(run_dir)?;
    let c = &prepared.config;
    let train_device = prepared.device.clone().autodiff();
    let model = supcon_model(c, prepared.channels(), &train_device)?;
    let views = pretrain_view_config(c, prepared.channels());
    let task = ContrastiveTask {
        prepared,
        loss: SupConLossConfig::new()
            .with_temperature(c.temp)
            .with_base_temperature(BASE_TEMPERATURE)
            .try_init()?,
        method: c.method,
        views: c.views,
    };
    let fitted =
        Fit::new(prepared, views, run_dir, progress, stop_after)?.run(&task, model, resume)?;
    let finished = fitted.history.last().is_some_and(|m| m.epoch == c.epochs);
    let (mut linear, mut test_features) = (None, None);
    if finished {
        // The frozen features serve both the linear evaluation and the embedding map.
        let [train, validation, test] = split_features(prepared, &fitted.model.valid().encoder)?;
        if c.linear_epochs > 0 {
            let features = [train, validation, test];
            let outcome = evaluate_linear(prepared, &features, progress)?;
            crate::report::save_linear(run_dir, &outcome)?;
            linear = Some(outcome);
            let [_, _, test] = features;
            test_features = Some(test);
        } else {
            test_features = Some(test);
        }
    }
    Ok(PretrainOutcome {
        run_dir: run_dir.to_path_buf(),
        history: fitted.history,
        seconds: fitted.seconds,
        linear,
        test_features,
        classes: prepared.splits.test.classes().to_vec(),
    })
}

/// Features of the three splits under `encoder` (evaluation mode).
pub fn split_features(
    prepared: &Prepared,
    encoder: &Encoder,
) -> Result<[FeatureSet; 3], TrainError> {
    let c = &prepared.config;
    let s = &prepared.splits;
    let d = &prepared.device;
    Ok([
        extract(encoder, &s.train, c, d)?,
        extract(encoder, &s.validation, c, d)?,
        extract(encoder, &s.test, c, d)?,
    ])
}

/// Linear evaluation, with the configuration's linear settings, on the frozen features of the
/// three splits ([`split_features`]).
pub fn evaluate_linear(
    prepared: &Prepared,
    features: &[FeatureSet; 3],
    progress: &dyn Progress,
) -> Result<LinearOutcome, TrainError> {
    let c = &prepared.config;
    let started = std::time::Instant::now();
    let [train, validation, test] = features;
    let outcome = linear_evaluation(
        train,
        validation,
        test,
        c.linear_epochs,
        c.linear_learning_rate,
        c.seed,
        &prepared.device,
    )?;
    progress.message(&format!(
        "linear evaluation: best validation {:.2}% at epoch {}/{}, test {:.2}% ({:.1} s)",
        100.0 * outcome.val_accuracy,
        outcome.best_epoch,
        c.linear_epochs,
        100.0 * outcome.test_accuracy,
        started.elapsed().as_secs_f64()
    ));
    Ok(outcome)
}
