//! Learning-rate schedules: the default per-iteration warm-up and cosine (as solo-learn and
//! lightly run it), and the reference's `util.py` schedules exactly (step decay or cosine per
//! epoch, with its optional linear warm-up per iteration over the first epochs).
//! [`ScheduledRate`] runs one as a Burn [`LrScheduler`], for any Burn loop and burn-train's
//! `Learner`.

use std::f64::consts::PI;

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use serde::{Deserialize, Serialize};

/// Epochs of warm-up (the reference's `warm_epochs`; for [`ScheduleKind::Cosine`], at most a
/// tenth of the run).
pub const WARM_EPOCHS: usize = 10;
/// Rate at the start of the reference's warm-up (its `warmup_from`).
pub const WARMUP_FROM: f64 = 0.01;

/// Which schedule (`--schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// Per iteration: a linear warm-up over [`WARM_EPOCHS`] epochs or a tenth of the run,
    /// whichever is shorter, then a cosine to `base * decay_rate^3` that reaches it only after
    /// the last iteration. No epoch runs at the floor, so short runs train at useful rates.
    Cosine,
    /// The reference's step decay: the rate times `decay_rate` after each milestone epoch.
    Step,
    /// The reference's cosine (`--cosine`): one rate per epoch,
    /// `floor + (base - floor)(1 + cos(pi epoch / epochs)) / 2`, so the last epoch runs at the
    /// floor (a whole one-epoch run does).
    ReferenceCosine,
}

/// The schedule of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningRateSchedule {
    /// Base rate.
    pub base: f64,
    /// Total epochs.
    pub epochs: usize,
    /// Which schedule.
    pub kind: ScheduleKind,
    /// Step milestones.
    pub decay_epochs: Vec<usize>,
    /// Step factor; the cosine floor is `base * rate^3`.
    pub decay_rate: f64,
    /// The reference's linear warm-up from [`WARMUP_FROM`] over [`WARM_EPOCHS`] epochs, for
    /// [`ScheduleKind::Step`] and [`ScheduleKind::ReferenceCosine`] ([`ScheduleKind::Cosine`]
    /// always warms up).
    pub warm: bool,
}

impl LearningRateSchedule {
    /// The floor of the cosine schedules.
    fn floor(&self) -> f64 {
        self.base * self.decay_rate.powi(3)
    }

    /// The reference's `adjust_learning_rate(args, optimizer, epoch)`: the rate of a whole
    /// epoch (1-based) for [`ScheduleKind::Step`] and [`ScheduleKind::ReferenceCosine`];
    /// for [`ScheduleKind::Cosine`], which changes every iteration, the rate at the epoch's end.
    pub fn epoch_rate(&self, epoch: usize) -> f64 {
        match self.kind {
            ScheduleKind::Step => {
                let passed = self.decay_epochs.iter().filter(|&&m| epoch > m).count();
                self.base * self.decay_rate.powi(passed as i32)
            }
            ScheduleKind::ReferenceCosine | ScheduleKind::Cosine => {
                let floor = self.floor();
                floor
                    + (self.base - floor) * (1.0 + (PI * epoch as f64 / self.epochs as f64).cos())
                        / 2.0
            }
        }
    }

    /// The rate for iteration `batch` (0-based) of `batches` in epoch `epoch` (1-based).
    ///
    /// [`ScheduleKind::Cosine`]: with `T` iterations in all and `W` of warm-up, iteration `t`
    /// runs at `base (t + 1) / W` while `t < W`, then at
    /// `floor + (base - floor)(1 + cos(pi (t - W) / (T - W))) / 2`.
    /// The reference's schedules: the epoch's rate, or during warm-up (`warmup_learning_rate`)
    /// the line from [`WARMUP_FROM`] to the rate the schedule has at epoch [`WARM_EPOCHS`].
    pub fn rate(&self, epoch: usize, batch: usize, batches: usize) -> f64 {
        let batches = batches.max(1);
        if self.kind == ScheduleKind::Cosine {
            let total = self.epochs * batches;
            let warm = (WARM_EPOCHS * batches).min(total / 10).max(1);
            let t = (epoch - 1) * batches + batch;
            if t < warm {
                return self.base * (t + 1) as f64 / warm as f64;
            }
            let floor = self.floor();
            let progress = (t - warm) as f64 / (total - warm).max(1) as f64;
            return floor + (self.base - floor) * (1.0 + (PI * progress).cos()) / 2.0;
        }
        if self.warm && epoch <= WARM_EPOCHS {
            let target = match self.kind {
                ScheduleKind::Step => self.base,
                _ => self.epoch_rate(WARM_EPOCHS),
            };
            let progress = (batch + (epoch - 1) * batches) as f64 / (WARM_EPOCHS * batches) as f64;
            WARMUP_FROM + progress * (target - WARMUP_FROM)
        } else {
            self.epoch_rate(epoch)
        }
    }
}

/// A [`LearningRateSchedule`] as a Burn [`LrScheduler`]: each `step()` is one iteration, and
/// returns the rate of that iteration (the first call, iteration 0 of epoch 1). Its record is
/// the number of iterations taken.
///
/// ```
/// use burn::optim::lr_scheduler::LrScheduler;
/// use supcon_train::schedule::{LearningRateSchedule, ScheduleKind, ScheduledRate};
///
/// let schedule = LearningRateSchedule {
///     base: 0.5, epochs: 100, kind: ScheduleKind::Cosine, decay_epochs: vec![], decay_rate: 0.1,
///     warm: false,
/// };
/// let mut scheduler = ScheduledRate::new(schedule.clone(), 50); // 50 iterations an epoch
/// assert_eq!(scheduler.step(), schedule.rate(1, 0, 50));
/// assert_eq!(scheduler.step(), schedule.rate(1, 1, 50));
/// ```
#[derive(Debug, Clone)]
pub struct ScheduledRate {
    schedule: LearningRateSchedule,
    steps_per_epoch: usize,
    taken: u64,
}

impl ScheduledRate {
    /// Runs `schedule` with `steps_per_epoch` iterations an epoch (at least 1).
    pub fn new(schedule: LearningRateSchedule, steps_per_epoch: usize) -> Self {
        Self {
            schedule,
            steps_per_epoch: steps_per_epoch.max(1),
            taken: 0,
        }
    }
}

const TAKEN_KEY: &str = "taken";

impl LrScheduler for ScheduledRate {
    fn step(&mut self) -> LearningRate {
        let steps = self.steps_per_epoch as u64;
        let epoch = (self.taken / steps) as usize + 1;
        let batch = (self.taken % steps) as usize;
        self.taken += 1;
        self.schedule.rate(epoch, batch, self.steps_per_epoch)
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar(TAKEN_KEY, self.taken)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(taken) = record.scalar::<u64>(TAKEN_KEY) {
            self.taken = taken;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burn_scheduler_follows_the_schedule_and_resumes() {
        let s = schedule(true, true);
        let mut scheduler = ScheduledRate::new(s.clone(), 7);
        let mut rates = Vec::new();
        for _ in 0..30 {
            rates.push(scheduler.step());
        }
        for (i, rate) in rates.iter().enumerate() {
            assert_eq!(*rate, s.rate(i / 7 + 1, i % 7, 7), "iteration {i}");
        }
        // A scheduler restored from a record continues where the first left off.
        let mut resumed = ScheduledRate::new(s, 7);
        resumed.load_record(scheduler.to_record());
        assert_eq!(resumed.step(), scheduler.step());
    }

    fn schedule(cosine: bool, warm: bool) -> LearningRateSchedule {
        LearningRateSchedule {
            base: 0.5,
            epochs: 1000,
            kind: if cosine {
                ScheduleKind::ReferenceCosine
            } else {
                ScheduleKind::Step
            },
            decay_epochs: vec![700, 800, 900],
            decay_rate: 0.1,
            warm,
        }
    }

    #[test]
    fn step_decay_counts_passed_milestones() {
        let s = schedule(false, false);
        assert_eq!(s.epoch_rate(1), 0.5);
        assert_eq!(s.epoch_rate(700), 0.5);
        assert!((s.epoch_rate(701) - 0.05).abs() < 1e-15);
        assert!((s.epoch_rate(1000) - 0.0005).abs() < 1e-15);
    }

    #[test]
    fn cosine_runs_from_base_to_the_floor() {
        let s = schedule(true, false);
        // epoch / epochs = 0.5: halfway between base and eta_min = 0.5e-3.
        assert!((s.epoch_rate(500) - (0.0005 + 0.4995 / 2.0)).abs() < 1e-12);
        assert!((s.epoch_rate(1000) - 0.0005).abs() < 1e-12);
    }

    #[test]
    fn warm_up_is_linear_per_iteration_then_hands_over() {
        let s = schedule(true, true);
        assert!((s.rate(1, 0, 100) - WARMUP_FROM).abs() < 1e-15);
        let target = s.epoch_rate(WARM_EPOCHS);
        let mid = s.rate(5, 50, 100); // 450 of 1000 warm-up iterations
        assert!((mid - (WARMUP_FROM + 0.45 * (target - WARMUP_FROM))).abs() < 1e-12);
        assert_eq!(s.rate(11, 0, 100), s.epoch_rate(11));
    }

    fn cosine(epochs: usize) -> LearningRateSchedule {
        LearningRateSchedule {
            base: 0.5,
            epochs,
            kind: ScheduleKind::Cosine,
            decay_epochs: vec![],
            decay_rate: 0.1,
            warm: false,
        }
    }

    #[test]
    fn a_one_epoch_run_trains_at_useful_rates() {
        let s = cosine(1);
        let rates: Vec<f64> = (0..100).map(|b| s.rate(1, b, 100)).collect();
        // Ten warm-up iterations up to the base rate, then a cosine down to the floor.
        assert!((rates[0] - 0.05).abs() < 1e-12);
        assert!((rates[9] - 0.5).abs() < 1e-12);
        assert!((rates[10] - 0.5).abs() < 1e-12);
        assert!(rates[99] > s.floor() && rates[99] < 0.01);
        let mean = rates.iter().sum::<f64>() / 100.0;
        assert!(mean > 0.22, "mean rate {mean}");
        // The reference's cosine runs this whole epoch at its floor.
        let reference = LearningRateSchedule {
            kind: ScheduleKind::ReferenceCosine,
            ..s
        };
        assert!((reference.rate(1, 50, 100) - 0.0005).abs() < 1e-15);
    }

    #[test]
    fn no_epoch_of_the_default_schedule_runs_at_the_floor() {
        let s = cosine(6);
        let last: Vec<f64> = (0..50).map(|b| s.rate(6, b, 50)).collect();
        let mean = last.iter().sum::<f64>() / 50.0;
        assert!(mean > 20.0 * s.floor(), "last epoch's mean rate {mean}");
        // Warm-up: a tenth of the 300 iterations.
        assert!((s.rate(1, 29, 50) - 0.5).abs() < 1e-12);
        assert!(s.rate(1, 28, 50) < 0.5);
        // Long runs warm up over WARM_EPOCHS epochs.
        let long = cosine(200);
        assert!(long.rate(10, 99, 100) > long.rate(10, 98, 100));
        assert!(long.rate(11, 1, 100) < long.rate(11, 0, 100));
    }
}
