//! SupCon / SimCLR pre-training (the reference's `main_supcon.py`), followed by linear
//! evaluation of the encoder.

use std::path::{Path, PathBuf};

use burn::optim::GradientsParams;
use burn::prelude::*;
use supcon_encoder::{Encoder, EncoderConfig};
use supcon_head::{SupConModel, SupConModelConfig};
use supcon_loss::{Positives, SupConLoss, SupConLossConfig, by_image};

use crate::TrainError;
use crate::config::{Method, RunConfig};
use crate::features::{FeatureSet, extract, knn_accuracy};
use crate::fit::{Fit, Task, backward, restore_model};
use crate::linear::{LinearOutcome, linear_evaluation};
use crate::metrics::EpochMetrics;
use crate::momentum::{KeyQueue, ema_update};
use crate::progress::Progress;
use crate::run::{Prepared, pretrain_view_config};

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
    /// The file it was saved in (`linear.json`, or `linear-<n>.json` after earlier ones).
    pub linear_file: Option<PathBuf>,
    /// The frozen encoder's features of the test split, once the run is finished (for an
    /// embedding map, say).
    pub test_features: Option<FeatureSet>,
    /// The class names, indexed by label.
    pub classes: Vec<String>,
}

/// Pre-training as a [`Task`]: all views through the model at once (or in chunks of
/// `step.chunk` images, with gradient caching), SupCon or SimCLR loss, against the keys of a
/// momentum encoder and its queue when `step.queue > 0`.
pub struct ContrastiveTask<'a> {
    prepared: &'a Prepared,
    loss: SupConLoss,
    method: Method,
    views: usize,
    chunk: usize,
    momentum: Option<MomentumEncoder>,
}

/// A key model (the trained model's moving average, in evaluation mode on the plain device),
/// the queue of its earlier keys, and the keys of the current step waiting to be enqueued.
struct MomentumEncoder {
    key: SupConModel,
    queue: KeyQueue,
    momentum: f64,
    pending: Option<(Tensor<2>, Tensor<1, Int>)>,
}

impl MomentumEncoder {
    /// The key model's projections of `views` (`[V * B, C, H, W]`, autodiff device), computed
    /// `chunk` images at a time (all at once for 0).
    fn keys(&self, views: &Tensor<4>, view_count: usize, chunk: usize) -> Tensor<2> {
        let plain = views.clone().inner();
        let chunk = if chunk == 0 { plain.dims()[0] } else { chunk };
        crate::grad_cache::map_chunks(&plain, view_count, chunk, |x| self.key.forward(x))
    }
}

impl<'a> ContrastiveTask<'a> {
    /// The task a prepared configuration describes, its key model (if any) a copy of `model`.
    pub fn new(prepared: &'a Prepared, model: &SupConModel) -> Result<Self, TrainError> {
        let c = &prepared.config;
        let momentum = if c.step.queue > 0 {
            let fresh = supcon_model(c, prepared.channels(), &prepared.device)?;
            Some(MomentumEncoder {
                key: ema_update(fresh, model, 0.0).valid(),
                queue: KeyQueue::new(c.step.queue, c.model.feat_dim, &prepared.device),
                momentum: c.step.queue_momentum,
                pending: None,
            })
        } else {
            None
        };
        Ok(ContrastiveTask {
            prepared,
            loss: SupConLossConfig::new()
                .with_temperature(c.loss.temp)
                .with_base_temperature(c.loss.base_temp)
                .try_init()?,
            method: c.loss.method,
            views: c.augment.views,
            chunk: c.step.chunk,
            momentum,
        })
    }

    /// The loss of the projections `z` (`[V * B, D]`, view-major) of a batch with `labels`.
    fn loss_of(
        &self,
        z: Tensor<2>,
        labels: Tensor<1, Int>,
        memory: Option<(Tensor<2>, Tensor<1, Int>)>,
    ) -> Result<Tensor<1>, TrainError> {
        let features = by_image(z, self.views);
        Ok(match (memory, self.method) {
            (None, Method::SupCon) => self.loss.try_forward(features, Positives::Labels(labels))?,
            (None, Method::SimClr) => self.loss.try_forward(features, Positives::SameImage)?,
            (Some((rows, row_labels)), _) => self.loss.try_forward_with_memory(
                features,
                Positives::Labels(labels),
                rows,
                Some(row_labels),
            )?,
        })
    }
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

    fn gradients(
        &mut self,
        model: SupConModel,
        views: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<(SupConModel, f32, GradientsParams), TrainError> {
        let images = labels.dims()[0];
        let device = labels.device();
        // With a queue, SimCLR's positives are the image's own views and keys: labels are the
        // images' indices, and the queued keys (labelled -1) are all negatives.
        let labels = match self.method {
            Method::SupCon => labels,
            Method::SimClr => Tensor::arange(0..images as i64, &device),
        };
        let memory = match &mut self.momentum {
            Some(encoder) => {
                let keys = encoder.keys(&views, self.views, self.chunk);
                let key_labels = labels.clone().inner().repeat_dim(0, self.views);
                let (rows, row_labels) = if encoder.queue.is_empty() {
                    (keys.clone(), key_labels.clone())
                } else {
                    let (queued, queued_labels) = encoder.queue.contents();
                    (
                        Tensor::cat(vec![keys.clone(), queued], 0),
                        Tensor::cat(vec![key_labels.clone(), queued_labels], 0),
                    )
                };
                let (rows, row_labels) = (rows.autodiff(), row_labels.autodiff());
                let enqueued_labels = match self.method {
                    Method::SupCon => key_labels,
                    Method::SimClr => {
                        Tensor::full([key_labels.dims()[0]], -1, &key_labels.device())
                    }
                };
                encoder.pending = Some((keys, enqueued_labels));
                Some((rows, row_labels))
            }
            None => None,
        };
        let (view_count, chunk) = (self.views, self.chunk);
        if chunk == 0 || chunk >= images {
            let loss = self.loss_of(model.forward(views), labels, memory)?;
            return Ok(backward(model, loss));
        }
        let this = &*self;
        crate::grad_cache::cached_gradients(
            model,
            views,
            view_count,
            chunk,
            |m: &SupConModel, x| m.forward(x),
            |z| this.loss_of(z, labels, memory),
        )
    }

    fn after_step(&mut self, model: &SupConModel) -> Result<(), TrainError> {
        if let Some(encoder) = &mut self.momentum {
            // `valid()`: the model's BatchNorm statistics with this step's update settled
            // (Burn leaves it pending), which the key model copies.
            encoder.key = ema_update(encoder.key.clone(), &model.valid(), encoder.momentum);
            if let Some((keys, labels)) = encoder.pending.take() {
                encoder.queue.push(keys, labels)?;
            }
        }
        Ok(())
    }

    fn state(&self) -> Result<Vec<u8>, TrainError> {
        let Some(encoder) = &self.momentum else {
            return Ok(Vec::new());
        };
        let key = encoder
            .key
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| TrainError::Config(format!("cannot serialise the key model: {e}")))?;
        let mut bytes = (key.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&key);
        bytes.extend_from_slice(&encoder.queue.to_bytes()?);
        Ok(bytes)
    }

    fn load_state(&mut self, bytes: &[u8], checkpoint: &Path) -> Result<(), TrainError> {
        let Some(encoder) = &mut self.momentum else {
            return Ok(());
        };
        let bad = || TrainError::run(checkpoint, "its momentum encoder and queue are missing");
        let len = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .ok_or_else(bad)?;
        let key_bytes = bytes.get(8..8 + len).ok_or_else(bad)?;
        encoder.key = restore_model(
            encoder.key.clone(),
            burn::tensor::Bytes::from_bytes_vec(key_bytes.to_vec()),
            checkpoint,
        )?
        .valid();
        encoder.queue =
            KeyQueue::from_bytes(&bytes[8 + len..], &self.prepared.device).ok_or_else(bad)?;
        Ok(())
    }

    fn monitor(
        &self,
        model: &SupConModel,
        epoch: usize,
        last: bool,
        _history: &[EpochMetrics],
    ) -> Result<(Option<f64>, Option<f64>), TrainError> {
        let c = &self.prepared.config;
        let every = c.eval.knn_freq;
        if every == 0 || !(last || epoch.is_multiple_of(every)) {
            return Ok((None, None));
        }
        let encoder = model.valid().encoder;
        let p = self.prepared;
        let train = extract(&encoder, &p.splits.train, c, &p.device)?;
        let validation = extract(&encoder, &p.splits.validation, c, &p.device)?;
        let accuracy = knn_accuracy(&train, &validation, c.eval.knn_k, KNN_TEMPERATURE)?;
        Ok((Some(accuracy), None))
    }
}

/// The model a configuration describes, on `device`.
pub fn supcon_model(
    config: &RunConfig,
    channels: usize,
    device: &Device,
) -> Result<SupConModel, TrainError> {
    let model = &config.model;
    let encoder = EncoderConfig::new(model.architecture).with_in_channels(channels);
    Ok(SupConModelConfig::new(encoder)
        .with_head(model.head)
        .with_feat_dim(model.feat_dim)
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
    let mut task = ContrastiveTask::new(prepared, &model)?;
    let fitted =
        Fit::new(prepared, views, run_dir, progress, stop_after)?.run(&mut task, model, resume)?;
    let finished = fitted
        .history
        .last()
        .is_some_and(|m| m.epoch == c.schedule.epochs);
    let (mut linear, mut test_features, mut linear_file) = (None, None, None);
    if finished {
        // A stop asked for during the last epoch, or during the extraction of the features,
        // ends the run before the linear evaluation: the pre-training is saved whole, and
        // `--resume` makes the evaluation (`runs::resume`).
        let stop_point = || match c.eval.linear_epochs {
            0 => Ok(()),
            _ => crate::fit::stop_before_evaluation(progress, run_dir, "linear"),
        };
        stop_point()?;
        // The frozen features serve both the linear evaluation and the embedding map.
        let [train, validation, test] = split_features(prepared, &fitted.model.valid().encoder)?;
        stop_point()?;
        if c.eval.linear_epochs > 0 {
            let features = [train, validation, test];
            let outcome = evaluate_linear(prepared, &features, progress)?;
            linear_file = Some(crate::report::save_evaluation(
                run_dir,
                &linear_record(c, &outcome),
            )?);
            // The event file gains the evaluation, at the last epoch.
            let mut scalars = crate::tensorboard::history_scalars(task.name(), &fitted.history);
            let step = c.schedule.epochs as i64;
            let figures = [
                ("linear/val_accuracy", Some(outcome.val_accuracy)),
                ("linear/test_accuracy", Some(outcome.test_accuracy)),
                ("linear/top5_test_accuracy", outcome.per_class.top5_accuracy),
            ];
            for (tag, value) in figures {
                if let Some(value) = value {
                    scalars.push(crate::tensorboard::Scalar {
                        tag: tag.into(),
                        step,
                        value: value as f32,
                        wall_time: crate::metrics::unix_time(),
                    });
                }
            }
            crate::tensorboard::write_events(run_dir, &scalars)?;
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
        linear_file,
        test_features,
        classes: prepared.splits.test.classes().to_vec(),
    })
}

/// A linear evaluation as saved in the run folder, with the settings that decided it.
pub fn linear_record(
    config: &RunConfig,
    outcome: &LinearOutcome,
) -> crate::report::EvaluationRecord<LinearOutcome> {
    let settings = [
        ("linear_epochs", config.eval.linear_epochs.to_string()),
        (
            "linear_learning_rate",
            config.eval.linear_learning_rate.to_string(),
        ),
        ("seed", config.seed.to_string()),
        ("device", config.device.to_string()),
        ("precision", config.precision.to_string()),
    ];
    crate::report::EvaluationRecord {
        evaluation: "linear".into(),
        settings: settings.map(|(k, v)| (k.to_string(), v)).into(),
        outcome: outcome.clone(),
    }
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
    if c.eval.linear_epochs == 1 {
        progress.message(
            "note: with linear_epochs 1 the classifier's one epoch is the cosine schedule's last, \
             at its floor (linear_learning_rate x 0.001, as the reference's schedule gives it): \
             it barely moves from its initialisation; give 2 or more epochs",
        );
    }
    let mut outcome = linear_evaluation(
        train,
        validation,
        test,
        c.eval.linear_epochs,
        c.eval.linear_learning_rate,
        c.seed,
        &prepared.device,
    )?;
    outcome.per_class.classes = prepared.splits.test.classes().to_vec();
    let top5 = outcome
        .per_class
        .top5_accuracy
        .map_or(String::new(), |a| format!(", top-5 {:.2}%", 100.0 * a));
    progress.message(&format!(
        "linear evaluation: best validation {:.2}% at epoch {}/{}, test {:.2}%{top5} ({:.1} s)",
        100.0 * outcome.val_accuracy,
        outcome.best_epoch,
        c.eval.linear_epochs,
        100.0 * outcome.test_accuracy,
        started.elapsed().as_secs_f64()
    ));
    Ok(outcome)
}
