//! Learning-rate schedules exactly as the reference's `util.py`: step decay or cosine per epoch,
//! and a linear warm-up per iteration over the first epochs. [`ScheduledRate`] runs one as a
//! Burn [`LrScheduler`], for any Burn loop and burn-train's `Learner`.

use std::f64::consts::PI;

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};

/// Epochs of warm-up (the reference's `warm_epochs`).
pub const WARM_EPOCHS: usize = 10;
/// Rate at the start of warm-up (the reference's `warmup_from`).
pub const WARMUP_FROM: f64 = 0.01;

/// The schedule of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningRateSchedule {
    /// Base rate.
    pub base: f64,
    /// Total epochs.
    pub epochs: usize,
    /// Cosine (else step) decay.
    pub cosine: bool,
    /// Step milestones.
    pub decay_epochs: Vec<usize>,
    /// Step factor; cosine floor is `base * rate^3`.
    pub decay_rate: f64,
    /// Linear warm-up from [`WARMUP_FROM`] over [`WARM_EPOCHS`] epochs.
    pub warm: bool,
}

impl LearningRateSchedule {
    /// `adjust_learning_rate(args, optimizer, epoch)`: the rate for a whole epoch (1-based).
    pub fn epoch_rate(&self, epoch: usize) -> f64 {
        if self.cosine {
            let eta_min = self.base * self.decay_rate.powi(3);
            eta_min
                + (self.base - eta_min) * (1.0 + (PI * epoch as f64 / self.epochs as f64).cos())
                    / 2.0
        } else {
            let passed = self.decay_epochs.iter().filter(|&&m| epoch > m).count();
            self.base * self.decay_rate.powi(passed as i32)
        }
    }

    /// The rate for iteration `batch` (0-based) of `batches` in epoch `epoch` (1-based): the
    /// epoch's rate, or during warm-up (`warmup_learning_rate`) the line from [`WARMUP_FROM`]
    /// to the rate the schedule has at epoch [`WARM_EPOCHS`].
    pub fn rate(&self, epoch: usize, batch: usize, batches: usize) -> f64 {
        if self.warm && epoch <= WARM_EPOCHS {
            let target = if self.cosine {
                let eta_min = self.base * self.decay_rate.powi(3);
                eta_min
                    + (self.base - eta_min)
                        * (1.0 + (PI * WARM_EPOCHS as f64 / self.epochs as f64).cos())
                        / 2.0
            } else {
                self.base
            };
            let progress =
                (batch + (epoch - 1) * batches) as f64 / (WARM_EPOCHS * batches.max(1)) as f64;
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
/// use supcon_train::schedule::{LearningRateSchedule, ScheduledRate};
///
/// let schedule = LearningRateSchedule {
///     base: 0.5, epochs: 100, cosine: true, decay_epochs: vec![], decay_rate: 0.1, warm: true,
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
            cosine,
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
}
