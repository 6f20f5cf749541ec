//! The supervised contrastive loss (SupCon), Khosla et al., NeurIPS 2020.
//!
//! For `B` samples with `V` views each, features `z` are arranged view by view into `N = V * B`
//! contrast vectors. For every anchor `i` (all `N` of them, or only the `B` first views), with
//! `P(i)` its positives (same label, other than `i` itself) and `A(i)` everything but `i`:
//!
//! ```text
//! L_out(i) = -(T / T_base) * 1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / T) / sum_{a in A(i)} exp(z_i.z_a / T) )   (Eq. 2)
//! L_in(i)  = -(T / T_base) * log( 1/|P(i)| * sum_{p in P(i)} exp(z_i.z_p / T) / sum_{a in A(i)} exp(z_i.z_a / T) )  (Eq. 3)
//! ```
//!
//! and the loss is the mean over anchors. This is exactly HobbitLong/SupContrast `losses.py`
//! (contrast mode `all`/`one`, `temperature`, `base_temperature`, labels or an asymmetric
//! mask; an anchor without any positive contributes 0 and still counts in the mean, as the
//! reference does since its fix for NaN losses), plus the google-research options: the
//! summation inside the log ([`SummationLocation::Inside`]) and the denominator modes
//! ([`DenominatorMode`]). The google code's scaling by `temperature` is `base_temperature = 1`.
//!
//! Numerics: the log-sum-exp subtracts the row maximum over the entries it sums (not over the
//! anchor's own similarity, which it excludes), so finite inputs give a finite loss and finite
//! gradients at any temperature, unnormalised features included.

use burn::prelude::*;

use crate::masked::{logaddexp, masked_logsumexp};
use crate::{LossError, Positives};

/// Which views serve as anchors.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ContrastMode {
    /// Every view of every sample is an anchor (the reference's `'all'`, the default).
    All,
    /// Only the first view (index 0) of each sample is an anchor (`'one'`).
    One,
}

/// Where the sum over positives sits relative to the log (google-research
/// `LossSummationLocation`).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum SummationLocation {
    /// Outside the log: `L_out`, Eq. 2 of the paper (the default, and the better one).
    Outside,
    /// Inside the log: `L_in`, Eq. 3 of the paper.
    Inside,
}

/// Which entries the softmax denominator sums over (google-research `LossDenominatorMode`).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum DenominatorMode {
    /// All entries but the anchor itself: positives and negatives (the paper's `A(i)`, default).
    All,
    /// All negatives and only the one positive in the numerator. Without negatives the term is
    /// `log 1 = 0`.
    OnePositive,
    /// Only the negatives. An anchor without any negative has an empty denominator; it
    /// contributes 0 (like an anchor without positives) instead of infinity.
    OnlyNegatives,
}

/// Configuration of [`SupConLoss`]; the defaults are the reference's.
#[derive(Config, Debug)]
pub struct SupConLossConfig {
    /// Softmax temperature `T` (> 0).
    #[config(default = 0.07)]
    pub temperature: f64,
    /// The loss is multiplied by `temperature / base_temperature` (> 0).
    #[config(default = 0.07)]
    pub base_temperature: f64,
    /// Which views are anchors.
    #[config(default = "ContrastMode::All")]
    pub contrast_mode: ContrastMode,
    /// `L_out` (Eq. 2) or `L_in` (Eq. 3).
    #[config(default = "SummationLocation::Outside")]
    pub summation: SummationLocation,
    /// What the denominator sums over.
    #[config(default = "DenominatorMode::All")]
    pub denominator: DenominatorMode,
}

impl SupConLossConfig {
    /// Builds the loss. Parameters are checked when the loss is applied, so that a bad value
    /// is reported as a [`LossError`] rather than a panic.
    pub fn init(&self) -> SupConLoss {
        SupConLoss {
            temperature: self.temperature,
            base_temperature: self.base_temperature,
            contrast_mode: self.contrast_mode,
            summation: self.summation,
            denominator: self.denominator,
        }
    }
}

/// The supervised contrastive loss; see the [module documentation](self) for the formula.
#[derive(Debug, Clone)]
pub struct SupConLoss {
    temperature: f64,
    base_temperature: f64,
    contrast_mode: ContrastMode,
    summation: SummationLocation,
    denominator: DenominatorMode,
}

impl SupConLoss {
    /// The mean loss over all anchors, shape `[1]`.
    ///
    /// `features` is `[batch, views, dim]`, used as given (not normalised). Returns an error for
    /// an empty dimension, labels or a mask that do not match the batch, a non-positive
    /// temperature, or [`Positives::SameImage`] with a single view.
    pub fn forward(
        &self,
        features: Tensor<3>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        Ok(self.forward_per_sample(features, positives)?.mean())
    }

    /// The loss of each sample, shape `[batch]`: the mean over that sample's anchor views (as
    /// google-research `contrastive_loss` returns it). Its mean is [`forward`](Self::forward).
    pub fn forward_per_sample(
        &self,
        features: Tensor<3>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        let [batch, views, dim] = features.dims();
        self.check(&features.dims(), &positives)?;
        let device = features.device();
        let sample_mask = positives.to_mask(batch, &device)?;

        let anchor_views = match self.contrast_mode {
            ContrastMode::All => views,
            ContrastMode::One => 1,
        };
        let (anchors, contrasts) = (anchor_views * batch, views * batch);
        // View-major order, as torch.cat(torch.unbind(features, 1)): [v0 of all samples, v1, ...].
        let contrast = features.swap_dims(0, 1).reshape([contrasts, dim]);
        // The anchors are the first `anchors` rows of `contrast` in both modes, so anchor `r`'s
        // own entry is column `r`.
        let anchor = contrast.clone().narrow(0, 0, anchors);
        let logits = anchor
            .matmul(contrast.transpose())
            .div_scalar(self.temperature);

        let not_self = Tensor::<2, Bool>::diag_mask([anchors, contrasts], 0, &device).float();
        let same = sample_mask.repeat(&[anchor_views, views]);
        let positive = same.clone() * not_self.clone();
        let positive_count = positive.clone().sum_dim(1);
        let mut no_term = positive_count.clone().lower_elem(1e-6);

        let log_denominator = match self.denominator {
            DenominatorMode::All => masked_logsumexp(logits.clone(), not_self),
            DenominatorMode::OnePositive => {
                let negative = same.neg().add_scalar(1.0) * not_self;
                logaddexp(logits.clone(), masked_logsumexp(logits.clone(), negative))
            }
            DenominatorMode::OnlyNegatives => {
                let negative = same.neg().add_scalar(1.0) * not_self;
                let no_negative = negative.clone().sum_dim(1).lower_elem(1e-6);
                no_term = no_term.bool_or(no_negative);
                masked_logsumexp(logits.clone(), negative)
            }
        };
        let log_prob = logits - log_denominator;

        // Anchors without positives divide by 1 (and are zeroed below), as the reference does.
        let safe_count = positive_count.mask_fill(no_term.clone(), 1.0);
        let mean_log_prob = match self.summation {
            SummationLocation::Outside => (positive * log_prob).sum_dim(1) / safe_count,
            SummationLocation::Inside => masked_logsumexp(log_prob, positive) - safe_count.log(),
        };
        let scale = self.temperature / self.base_temperature;
        let per_anchor = mean_log_prob.mul_scalar(-scale).mask_fill(no_term, 0.0);
        Ok(per_anchor
            .reshape([anchor_views, batch])
            .mean_dim(0)
            .reshape([batch]))
    }

    /// Like [`forward`](Self::forward) for features of any rank `>= 3`, `[batch, views, ...]`,
    /// flattened to `[batch, views, prod(...)]` as the reference does for convolutional features.
    /// Rank 1 or 2 is a [`LossError::WrongRank`].
    pub fn forward_nd<const D: usize>(
        &self,
        features: Tensor<D>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        let shape = features.dims().to_vec();
        if D < 3 {
            return Err(LossError::WrongRank { shape });
        }
        let flat: usize = shape[2..].iter().product();
        self.forward(features.reshape([shape[0], shape[1], flat]), positives)
    }

    fn check(&self, shape: &[usize; 3], positives: &Positives) -> Result<(), LossError> {
        for (name, value) in [
            ("temperature", self.temperature),
            ("base_temperature", self.base_temperature),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(LossError::NonPositive { name, value });
            }
        }
        LossError::check_not_empty(shape)?;
        if shape[1] == 1 && matches!(positives, Positives::SameImage) {
            return Err(LossError::SingleViewWithoutPositives);
        }
        Ok(())
    }
}
