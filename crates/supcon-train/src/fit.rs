//! The epoch loop shared by pre-training and the cross-entropy baseline: seeded shuffles,
//! augmentation on the device, one forward pass for all views, the scheduled optimiser step,
//! monitoring, atomic checkpoints, and resumption.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::store::ModuleRecord;
use supcon_augment::{ViewPipeline, ViewPipelineConfig, mix_seed};
use supcon_data::{Splits, shuffled_indices};

use crate::TrainError;
use crate::checkpoint::{Checkpoint, PartialEpoch, TrainingState};
use crate::config::RunConfig;
use crate::metrics::{EpochMetrics, write_jsonl};
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::run::Prepared;
use crate::schedule::LearningRateSchedule;

/// File name of a run's checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";
/// File name of a run's per-epoch metrics.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// What is trained and how its loss and monitor are computed.
pub trait Task {
    /// The trained module.
    type Model: Module;
    /// Short name for progress output.
    fn name(&self) -> &'static str;
    /// Augmented views per image.
    fn views(&self) -> usize;
    /// The loss value of a batch and the gradients of the model's parameters: `views` is
    /// `[V * B, C, H, W]` view by view, `labels` `[B]`, both on the autodiff device. Returns the
    /// model (a task may update its running statistics). When the value is not finite the
    /// gradients are not used. [`backward`] does this for a loss tensor.
    fn gradients(
        &mut self,
        model: Self::Model,
        views: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<(Self::Model, f32, GradientsParams), TrainError>;
    /// Called after each optimiser step with the updated model (a momentum encoder's update,
    /// a queue's).
    fn after_step(&mut self, _model: &Self::Model) -> Result<(), TrainError> {
        Ok(())
    }
    /// State besides the model and the optimiser that a checkpoint keeps (a momentum encoder,
    /// a queue); empty for none.
    fn state(&self) -> Result<Vec<u8>, TrainError> {
        Ok(Vec::new())
    }
    /// Restores what [`state`](Self::state) saved; `checkpoint` names the file for messages.
    fn load_state(&mut self, _bytes: &[u8], _checkpoint: &Path) -> Result<(), TrainError> {
        Ok(())
    }
    /// Validation figures at the end of `epoch` (kNN accuracy, classification accuracy);
    /// `history` holds the earlier epochs' metrics.
    fn monitor(
        &self,
        model: &Self::Model,
        epoch: usize,
        last: bool,
        history: &[EpochMetrics],
    ) -> Result<(Option<f64>, Option<f64>), TrainError>;
}

/// The value of `loss` and the gradients of `model`'s parameters it back-propagates.
pub fn backward<M: Module>(model: M, loss: Tensor<1>) -> (M, f32, GradientsParams) {
    let value = loss.clone().into_scalar::<f32>();
    if !value.is_finite() {
        return (model, value, GradientsParams::new());
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (model, value, grads)
}

/// Everything a training loop needs besides the task and the model.
pub struct Fit<'a> {
    /// The data.
    pub splits: &'a Splits,
    /// Training device (autodiff).
    pub device: Device,
    /// Augmentation; each batch's views are drawn with [`batch_seed`] of the run's seed, the
    /// epoch and the step, so a resumed run needs no saved generator.
    pub pipeline: ViewPipeline,
    /// Optimiser.
    pub optimizer: Optimizer,
    /// Learning-rate schedule.
    pub schedule: LearningRateSchedule,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Where progress is reported.
    pub progress: &'a dyn Progress,
    /// The run's configuration (batch size, seed, checkpoint period), recorded in each
    /// checkpoint and compared on resumption.
    pub config: RunConfig,
    /// Stop after this many epochs of this session (tests of resumption), `None`: run to the end.
    pub stop_after: Option<usize>,
}

/// The model after training, and the metrics of every epoch.
pub struct Fitted<M> {
    /// The trained model.
    pub model: M,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// Seconds of training over all sessions.
    pub seconds: f64,
}

impl<'a> Fit<'a> {
    /// The loop a prepared configuration describes, drawing views from `views` (checked against
    /// the data's channels), in `run_dir`; `stop_after` ends the session early after that many
    /// epochs (tests of resumption).
    pub fn new(
        prepared: &'a Prepared,
        views: ViewPipelineConfig,
        run_dir: &Path,
        progress: &'a dyn Progress,
        stop_after: Option<usize>,
    ) -> Result<Fit<'a>, TrainError> {
        views.validate(prepared.channels())?;
        let c = &prepared.config;
        let images = prepared.splits.train.len();
        if c.data.batch_size > images {
            progress.message(&format!(
                "note: batch_size {} is more than the {images} training images: every step \
                 trains on all of them, one batch of {images} an epoch",
                c.data.batch_size
            ));
        }
        let (optimizer, schedule) = optimisation(c);
        Ok(Fit {
            splits: &prepared.splits,
            device: prepared.device.clone().autodiff(),
            pipeline: ViewPipeline::new(views),
            optimizer,
            schedule,
            run_dir: run_dir.to_path_buf(),
            progress,
            config: c.clone(),
            stop_after,
        })
    }

    /// Trains `model` for the schedule's epochs, resuming from the run's checkpoint if
    /// `resume` and the run has one (a run stopped during its first epoch has none: it starts
    /// from epoch 1). The caller holds the run folder's [`RunLock`](crate::run::RunLock) (as
    /// `pretrain` and `cross_entropy` do).
    pub fn run<T: Task>(
        mut self,
        task: &mut T,
        mut model: T::Model,
        resume: bool,
    ) -> Result<Fitted<T::Model>, TrainError> {
        let checkpoint_path = self.run_dir.join(CHECKPOINT_FILE);
        let metrics_path = self.run_dir.join(METRICS_FILE);
        let mut history = Vec::new();
        let mut seconds = 0.0;
        let mut first_epoch = 1;
        let mut partial: Option<PartialEpoch> = None;
        let (batch_size, seed) = (self.config.data.batch_size, self.config.seed);
        let train = &self.splits.train;
        let steps = train.len().div_ceil(batch_size);
        if resume && checkpoint_path.is_file() {
            let checkpoint = Checkpoint::load(&checkpoint_path)?;
            check_same_run(&checkpoint.state.config, &self.config, &checkpoint_path)?;
            model = restore_model(model, checkpoint.model, &checkpoint_path)?;
            self.optimizer = self
                .optimizer
                .load_bytes(checkpoint.optimizer)
                .map_err(|e| TrainError::run(&checkpoint_path, e))?;
            task.load_state(&checkpoint.task, &checkpoint_path)?;
            history = checkpoint.state.history;
            seconds = checkpoint.state.seconds;
            first_epoch = checkpoint.state.epoch + 1;
            partial = checkpoint.state.partial;
            write_jsonl(&metrics_path, &history)?;
            let scalars = crate::tensorboard::history_scalars(task.name(), &history);
            crate::tensorboard::write_events(&self.run_dir, &scalars)?;
            let place = match partial {
                Some(p) if p.steps >= steps => {
                    return Err(TrainError::run(
                        &checkpoint_path,
                        format!(
                            "records {} steps of epoch {first_epoch}, but an epoch has {steps}",
                            p.steps
                        ),
                    ));
                }
                Some(p) => format!("in epoch {first_epoch}, after step {} of {steps}", p.steps),
                None => format!("after epoch {}", checkpoint.state.epoch),
            };
            self.progress
                .message(&format!("resuming {} {place}", self.run_dir.display()));
        }
        let epochs = self.schedule.epochs;
        // Batches and views are made on the plain device, outside the autodiff graph.
        let plain = self.device.clone().inner();
        for (session_epochs, epoch) in (first_epoch..=epochs).enumerate() {
            if self.stop_after.is_some_and(|s| session_epochs >= s) {
                break;
            }
            let started = Instant::now();
            // A resumed run interrupted during this epoch takes its remaining steps.
            let (skip, mut loss_sum, earlier_seconds) = partial
                .take()
                .map_or((0, 0.0f64, 0.0), |p| (p.steps, p.loss_sum, p.seconds));
            let order = shuffled_indices(train.len(), epoch_seed(seed, epoch));
            self.progress
                .epoch_started(task.name(), epoch, epochs, steps - skip);
            let mut lr = 0.0;
            for (step, indices) in order.chunks(batch_size).enumerate().skip(skip) {
                lr = self.schedule.rate(epoch, step, steps);
                let batch = train.batch(indices, &plain)?;
                let seed = batch_seed(seed, epoch, step);
                let views = self.pipeline.views(batch.images, task.views(), seed)?;
                let (stepped, value, grads) =
                    task.gradients(model, views.autodiff(), batch.labels.autodiff())?;
                model = stepped;
                if !value.is_finite() && epoch == 1 && step == 0 {
                    // Nothing was learnt yet: the inputs or the initial model are at fault.
                    return Err(TrainError::NonFiniteAtStart { value });
                }
                if !value.is_finite() {
                    return Err(TrainError::Diverged {
                        value,
                        epoch,
                        step: step + 1,
                    });
                }
                model = self.optimizer.step(lr, model, grads);
                task.after_step(&model)?;
                loss_sum += value as f64;
                let rate =
                    ((step + 1 - skip) * batch_size) as f64 / started.elapsed().as_secs_f64();
                self.progress
                    .step_done(loss_sum / (step + 1) as f64, lr, rate);
                if step + 1 < steps && self.progress.stop_requested() {
                    self.progress.epoch_finished();
                    // As at an epoch's end: weights that are not finite are never saved.
                    if !all_finite(&model) {
                        return Err(TrainError::NonFiniteWeights { epoch });
                    }
                    let session = started.elapsed().as_secs_f64();
                    let partial = PartialEpoch {
                        steps: step + 1,
                        loss_sum,
                        seconds: earlier_seconds + session,
                    };
                    let seconds = seconds + session;
                    self.save_checkpoint(
                        task,
                        &model,
                        epoch - 1,
                        &history,
                        seconds,
                        Some(partial),
                    )?;
                    return Err(TrainError::Interrupted(format!(
                        "during epoch {epoch}, after step {} of {steps}: the run is saved there; {}",
                        step + 1,
                        resume_hint(&self.run_dir, "continues it exactly")
                    )));
                }
            }
            self.progress.epoch_finished();
            // The loss is checked every step; the weights at the end of each epoch, before
            // anything (a monitor, a checkpoint) uses them.
            if !all_finite(&model) {
                return Err(TrainError::NonFiniteWeights { epoch });
            }
            let epoch_seconds = earlier_seconds + started.elapsed().as_secs_f64();
            let (knn_accuracy, val_accuracy) =
                task.monitor(&model, epoch, epoch == epochs, &history)?;
            let metrics = EpochMetrics {
                epoch,
                loss: loss_sum / steps as f64,
                learning_rate: lr,
                images_per_second: train.len() as f64 / epoch_seconds,
                seconds: epoch_seconds,
                knn_accuracy,
                val_accuracy,
                unix_time: crate::metrics::unix_time(),
            };
            self.progress
                .message(&describe(task.name(), epochs, &metrics));
            history.push(metrics);
            seconds += started.elapsed().as_secs_f64();
            write_jsonl(&metrics_path, &history)?;
            let scalars = crate::tensorboard::history_scalars(task.name(), &history);
            crate::tensorboard::write_events(&self.run_dir, &scalars)?;
            let stop = epoch < epochs && self.progress.stop_requested();
            if epoch % self.config.save_freq == 0 || epoch == epochs || stop {
                self.save_checkpoint(task, &model, epoch, &history, seconds, None)?;
            }
            if stop {
                return Err(TrainError::Interrupted(format!(
                    "after epoch {epoch} of {epochs}: the run is saved there; {}",
                    resume_hint(&self.run_dir, "continues it exactly")
                )));
            }
        }
        Ok(Fitted {
            model,
            history,
            seconds,
        })
    }
}

impl Fit<'_> {
    /// Saves the run's checkpoint after `epoch` completed epochs (their metrics `history`,
    /// `seconds` of training so far) and `partial`, the steps of the next one already taken.
    fn save_checkpoint<T: Task>(
        &self,
        task: &T,
        model: &T::Model,
        epoch: usize,
        history: &[EpochMetrics],
        seconds: f64,
        partial: Option<PartialEpoch>,
    ) -> Result<(), TrainError> {
        let path = self.run_dir.join(CHECKPOINT_FILE);
        // `valid()`, not `clone()`: Burn keeps the last update of each running statistic
        // (BatchNorm's) pending until it is read again, and a record of the module as it
        // stands holds the value before it, so a resumed run's statistics lagged one step
        // behind the uninterrupted run's. `valid()` settles them first.
        let model = model
            .valid()
            .into_record()
            .into_bytes()
            .map_err(|e| TrainError::run(&path, format!("cannot serialise the model: {e}")))?;
        let state = TrainingState {
            epoch,
            history: history.to_vec(),
            seconds,
            config: self.config.clone(),
            partial,
        };
        Checkpoint {
            state,
            model,
            optimizer: self.optimizer.to_bytes()?,
            task: task.state()?,
        }
        .save(&path)
    }
}

/// [`TrainError::Interrupted`] if `progress` asks to stop once training has ended and before
/// its `evaluation` (`linear`, `test`): the run's last checkpoint holds the trained model, and
/// `--resume` runs the evaluation.
pub(crate) fn stop_before_evaluation(
    progress: &dyn Progress,
    run_dir: &Path,
    evaluation: &str,
) -> Result<(), TrainError> {
    if !progress.stop_requested() {
        return Ok(());
    }
    Err(TrainError::Interrupted(format!(
        "after the last epoch, before the {evaluation} evaluation: the run is saved there; {}",
        resume_hint(run_dir, "runs the evaluation")
    )))
}

/// The command that resumes the run in `run_dir`, and what it then `does`.
fn resume_hint(run_dir: &Path, does: &str) -> String {
    let command = match crate::run::RunKind::of(run_dir) {
        Ok(Some(crate::run::RunKind::CrossEntropy)) => "ce",
        _ => "pretrain",
    };
    format!(
        "`supcon-train {command} --resume {}` {does}",
        run_dir.display()
    )
}

/// The optimiser and schedule a configuration describes.
pub fn optimisation(config: &RunConfig) -> (Optimizer, LearningRateSchedule) {
    let (optim, schedule) = (&config.optim, &config.schedule);
    let optimizer = Optimizer::new(
        optim.optimizer,
        optim.momentum,
        optim.weight_decay,
        optim.decay_norm_and_bias,
    );
    let schedule = LearningRateSchedule {
        base: optim.learning_rate,
        epochs: schedule.epochs,
        kind: schedule.kind,
        decay_epochs: schedule.lr_decay_epochs.clone(),
        decay_rate: schedule.lr_decay_rate,
        warm: config.warm_up(),
    };
    (optimizer, schedule)
}

/// The augmentation seed of step `step` (0-based) of epoch `epoch`: a function of the run's
/// seed, the epoch and the step only, so that a resumed run (or any order of computing batches)
/// draws the views the uninterrupted run does.
pub fn batch_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    mix_seed(seed, &[epoch as u64, step as u64])
}

/// The shuffle seed of an epoch: a function of the run's seed and the epoch only, so that a
/// resumed run shuffles as the uninterrupted one does.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64)
}

fn describe(stage: &str, epochs: usize, m: &EpochMetrics) -> String {
    let mut line = format!(
        "{stage} epoch {}/{epochs}: loss {:.4}, lr {:.4}, {:.0} img/s, {:.1} s",
        m.epoch, m.loss, m.learning_rate, m.images_per_second, m.seconds
    );
    if let Some(a) = m.knn_accuracy {
        line.push_str(&format!(", kNN val {:.2}%", 100.0 * a));
    }
    if let Some(a) = m.val_accuracy {
        line.push_str(&format!(", val {:.2}%", 100.0 * a));
    }
    line
}

/// Refuses to resume a checkpoint trained under another configuration than `now` (the run's
/// `config.toml` edited since): only the settings a reopened run may change
/// ([`REOPEN_SETTINGS`](crate::runs::REOPEN_SETTINGS)) may differ, and the epochs may grow
/// (an extended run).
pub fn check_same_run(
    trained: &RunConfig,
    now: &RunConfig,
    checkpoint: &Path,
) -> Result<(), TrainError> {
    let (mut before, mut after) = (settings(trained), settings(now));
    if extended(trained, now) {
        before.remove(crate::runs::EXTEND_SETTING);
        after.remove(crate::runs::EXTEND_SETTING);
    }
    let changed: Vec<String> = before
        .iter()
        .filter(|(path, value)| after.get(*path) != Some(value))
        .map(|(path, value)| {
            let now = after.get(path).map_or("unset", String::as_str);
            format!("{path} was {value}, is now {now}")
        })
        .chain(
            after
                .iter()
                .filter(|(path, _)| !before.contains_key(*path))
                .map(|(path, value)| format!("{path} was unset, is now {value}")),
        )
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(TrainError::run(
        checkpoint,
        format!(
            "was trained under another configuration than the run's config.toml ({}): \
             resuming would not continue the same run; restore config.toml or start a new run",
            changed.join(", ")
        ),
    ))
}

/// The settings that decide training, as `path -> value` (TOML text).
fn settings(config: &RunConfig) -> std::collections::BTreeMap<String, String> {
    fn flatten(
        prefix: &str,
        table: toml::Table,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => flatten(&path, inner, out),
                value => {
                    out.insert(path, value.to_string());
                }
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    flatten(
        "",
        toml::Table::try_from(config).unwrap_or_default(),
        &mut out,
    );
    for path in crate::runs::REOPEN_SETTINGS {
        out.remove(path);
    }
    out
}

/// Whether `now` extends `trained` (more epochs, [`EXTEND_SETTING`](crate::runs::EXTEND_SETTING))
/// rather than changing it.
fn extended(trained: &RunConfig, now: &RunConfig) -> bool {
    now.schedule.epochs > trained.schedule.epochs
}

/// Whether every float parameter of `model` is finite (no NaN, no infinity).
pub fn all_finite<M: Module>(model: &M) -> bool {
    struct Finite(bool);
    impl ModuleVisitor for Finite {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.0 {
                let finite = param.val().is_finite().all().int().into_scalar::<i64>() == 1;
                self.0 = finite;
            }
        }
    }
    let mut visitor = Finite(true);
    model.visit(&mut visitor);
    visitor.0
}

/// Loads a model record (from a checkpoint) into `model`, which must have the same structure,
/// in the float type of `model`'s device (a checkpoint keeps the type it was saved in).
pub fn restore_model<M: Module>(
    model: M,
    bytes: burn::tensor::Bytes,
    path: &Path,
) -> Result<M, TrainError> {
    let record = ModuleRecord::from_bytes(bytes)
        .map_err(|e| TrainError::run(path, format!("unreadable model record: {e}")))?;
    let model = model.try_load_record(record).map_err(|e| {
        TrainError::run(
            path,
            format!("the checkpoint does not fit this model (another architecture?): {e}"),
        )
    })?;
    Ok(supcon_head::weights::to_device_float_type(model))
}
