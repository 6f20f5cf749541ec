//! Linear evaluation: a linear classifier trained on frozen encoder features, the epoch chosen on
//! the validation split, test accuracy reported once.
//!
//! The features are computed once (BatchNorm in evaluation mode) and cached, so the classifier
//! trains in seconds. They are standardised with the training split's per-dimension mean and
//! standard deviation (a BatchNorm without affine parameters in front of the classifier, as in
//! MAE's linear probing), which makes the classifier's learning rate independent of the
//! encoder's feature scale. Unlike the reference's `main_linear.py`, the images are not
//! augmented in this stage; the optimiser is the same (SGD, momentum 0.9, cosine schedule, no
//! weight decay).

use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use supcon_data::shuffled_indices;
use supcon_head::{LinearClassifier, LinearClassifierConfig};
use supcon_loss::cross_entropy::CrossEntropyLossConfig;

use crate::TrainError;
use crate::config::OptimizerKind;
use crate::features::FeatureSet;
use crate::optim::Optimizer;
use crate::schedule::{LearningRateSchedule, ScheduleKind};

/// Batch size of the linear stage.
pub const LINEAR_BATCH: usize = 256;

/// The result of a linear evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearOutcome {
    /// The epoch with the best validation accuracy (1-based).
    pub best_epoch: usize,
    /// Its validation accuracy.
    pub val_accuracy: f64,
    /// Its test accuracy, measured once.
    pub test_accuracy: f64,
    /// Validation accuracy of every epoch.
    pub val_curve: Vec<f64>,
    /// The test split class by class.
    #[serde(flatten)]
    pub per_class: PerClassResults,
}

/// Trains the classifier for `epochs` at base rate `learning_rate` on `train`, selects on
/// `validation`, and measures `test` once.
pub fn linear_evaluation(
    train: &FeatureSet,
    validation: &FeatureSet,
    test: &FeatureSet,
    epochs: usize,
    learning_rate: f64,
    seed: u64,
    device: &Device,
) -> Result<LinearOutcome, TrainError> {
    if epochs == 0 {
        return Err(TrainError::Config("linear_epochs must be positive".into()));
    }
    let train_device = device.clone().autodiff();
    let [n, width] = train.features.dims();
    let (train, validation, test) = standardise(train, validation, test);
    let (train, validation, test) = (&train, &validation, &test);
    // The classifier's initialisation depends on the seed only, not on what drew from the
    // device's generator before (so a resumed run evaluates exactly as an uninterrupted one).
    train_device.seed(seed);
    let mut classifier = LinearClassifierConfig::new(width, train.num_classes).init(&train_device);
    let mut optim = Optimizer::new(OptimizerKind::Sgd, 0.9, 0.0, false);
    let schedule = LearningRateSchedule {
        base: learning_rate,
        epochs,
        kind: ScheduleKind::ReferenceCosine,
        decay_epochs: Vec::new(),
        decay_rate: 0.1,
        warm: false,
    };
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let features = train.features.clone().autodiff();
    let labels = train.labels.clone().autodiff();
    let mut best: Option<(usize, f64, LinearClassifier)> = None;
    let mut val_curve = Vec::with_capacity(epochs);
    for epoch in 1..=epochs {
        let order = shuffled_indices(n, seed.wrapping_add(epoch as u64));
        let order: Vec<i64> = order.into_iter().map(|i| i as i64).collect();
        let order = Tensor::<1, Int>::from_ints(order.as_slice(), &train_device);
        let lr = schedule.epoch_rate(epoch);
        for start in (0..n).step_by(LINEAR_BATCH) {
            let end = (start + LINEAR_BATCH).min(n);
            let index = order.clone().slice(start..end);
            let x = features.clone().select(0, index.clone());
            let y = labels.clone().select(0, index);
            let loss = loss_fn.forward(classifier.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &classifier);
            classifier = optim.step(lr, classifier, grads);
        }
        let accuracy = accuracy(&classifier.valid(), validation);
        val_curve.push(accuracy);
        if best.as_ref().is_none_or(|(_, a, _)| accuracy > *a) {
            best = Some((epoch, accuracy, classifier.valid()));
        }
    }
    let (best_epoch, val_accuracy, chosen) = best.expect("at least one epoch");
    let breakdown = ClassBreakdown::of(&chosen, test)?;
    Ok(LinearOutcome {
        best_epoch,
        val_accuracy,
        test_accuracy: accuracy(&chosen, test),
        val_curve,
        per_class: breakdown.results(Vec::new()),
    })
}

/// A classifier's results on the test split class by class, as an evaluation's JSON holds them
/// (the linear evaluation's and the cross-entropy baseline's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerClassResults {
    /// Class names, indexed by label (empty where the caller did not name them).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Accuracy of each class (`None` for a class without test images).
    #[serde(default)]
    pub per_class_accuracy: Vec<Option<f64>>,
    /// Confusion matrix: `confusion[true][predicted]` images.
    #[serde(default)]
    pub confusion: Vec<Vec<u64>>,
    /// Top-5 accuracy, when there are more than 10 classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top5_accuracy: Option<f64>,
}

/// A classifier's results on a labelled set, class by class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassBreakdown {
    /// `confusion[true][predicted]` samples.
    pub confusion: Vec<Vec<u64>>,
    /// Fraction of the samples whose class is among the 5 highest scores (all of them for 5
    /// classes or fewer).
    pub top5_accuracy: f64,
}

impl ClassBreakdown {
    /// The breakdown of `classifier` on `data`.
    pub fn of(classifier: &LinearClassifier, data: &FeatureSet) -> Result<Self, TrainError> {
        let k = data.num_classes;
        let scores = classifier.forward(data.features.clone());
        let (scores, labels) = crate::features::rows_to_host(scores, data.labels.clone())?;
        Ok(Self::from_scores(&scores, &labels, k))
    }

    /// The breakdown of row-major scores `[N, k]` against `labels` `[N]`; a predicted class is
    /// the first highest score (as `argmax`).
    pub fn from_scores(scores: &[f32], labels: &[i64], k: usize) -> Self {
        let mut confusion = vec![vec![0u64; k]; k];
        let mut top5 = 0usize;
        for (row, &label) in scores.chunks_exact(k).zip(labels) {
            let predicted = row
                .iter()
                .enumerate()
                .fold(0, |best, (i, &s)| if s > row[best] { i } else { best });
            let label = label as usize;
            confusion[label][predicted] += 1;
            // Rank of the true class: classes scoring higher, and equal ones before it.
            let truth = row[label];
            let ahead = row
                .iter()
                .enumerate()
                .filter(|&(i, &s)| s > truth || (s == truth && i < label))
                .count();
            top5 += usize::from(ahead < 5);
        }
        ClassBreakdown {
            confusion,
            top5_accuracy: top5 as f64 / labels.len().max(1) as f64,
        }
    }

    /// The results as saved, with the class names `classes`; top-5 only beyond 10 classes.
    pub fn results(self, classes: Vec<String>) -> PerClassResults {
        let per_class_accuracy = self.per_class_accuracy();
        PerClassResults {
            classes,
            per_class_accuracy,
            top5_accuracy: (self.confusion.len() > 10).then_some(self.top5_accuracy),
            confusion: self.confusion,
        }
    }

    /// Fraction of all samples classified correctly (the confusion matrix's trace).
    pub fn accuracy(&self) -> f64 {
        let total: u64 = self.confusion.iter().flatten().sum();
        let correct: u64 = (0..self.confusion.len())
            .map(|k| self.confusion[k][k])
            .sum();
        correct as f64 / total.max(1) as f64
    }

    /// Accuracy of each true class (`None` for a class without samples).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let total: u64 = row.iter().sum();
                (total > 0).then(|| row[c] as f64 / total as f64)
            })
            .collect()
    }
}

/// The three sets with every feature dimension shifted and scaled by the training set's mean and
/// standard deviation (floored at 1e-6 for constant dimensions).
fn standardise(
    train: &FeatureSet,
    validation: &FeatureSet,
    test: &FeatureSet,
) -> (FeatureSet, FeatureSet, FeatureSet) {
    let mean = train.features.clone().mean_dim(0);
    let std = (train.features.clone() - mean.clone())
        .square()
        .mean_dim(0)
        .sqrt()
        .clamp_min(1e-6);
    let apply = |set: &FeatureSet| FeatureSet {
        features: (set.features.clone() - mean.clone()) / std.clone(),
        labels: set.labels.clone(),
        num_classes: set.num_classes,
    };
    (apply(train), apply(validation), apply(test))
}

/// Fraction of `data` that `classifier` labels correctly.
pub fn accuracy(classifier: &LinearClassifier, data: &FeatureSet) -> f64 {
    let n = data.features.dims()[0];
    let predicted = classifier
        .forward(data.features.clone())
        .argmax(1)
        .reshape([n]);
    let correct = predicted
        .equal(data.labels.clone())
        .int()
        .sum()
        .into_scalar::<i64>();
    correct as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breakdown_counts_by_hand() {
        // Three classes; rows: truth 0 predicted 0, truth 0 predicted 2, truth 1 predicted 1,
        // truth 1 with a tie between 0 and 1 (argmax takes the first: 0).
        let scores = [
            0.9, 0.1, 0.0, //
            0.2, 0.3, 0.5, //
            0.1, 0.8, 0.1, //
            0.5, 0.5, 0.0,
        ];
        let b = ClassBreakdown::from_scores(&scores, &[0, 0, 1, 1], 3);
        assert_eq!(b.confusion, [[1, 0, 1], [1, 1, 0], [0, 0, 0]]);
        assert_eq!(b.per_class_accuracy(), [Some(0.5), Some(0.5), None]);
        assert_eq!(b.top5_accuracy, 1.0, "three classes: always in the top 5");
        // Seven classes: the true class ranks 6th in the first row, 1st in the second.
        let scores = [
            0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, //
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9,
        ];
        let b = ClassBreakdown::from_scores(&scores, &[5, 6], 7);
        assert_eq!(b.top5_accuracy, 0.5);
    }
}
