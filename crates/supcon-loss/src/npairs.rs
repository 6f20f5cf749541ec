//! The multi-class N-pairs loss, Sohn, NeurIPS 2016 ("Improved deep metric learning with: [`NPairsLoss`].

use burn::prelude::*;

use crate::masked::masked_logsumexp;
use crate::{LossError, Positives};

/// Configuration of [`NPairsLoss`].
#[derive(Config, Debug)]
pub struct NPairsLossConfig {
    /// Weight of the embedding-norm regulariser (Sohn uses 0.002 on unnormalised embeddings;
    /// 0 turns it off, the default for normalised features).
    #[config(default = 0.0)]
    pub l2_reg: f64,
}

impl NPairsLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    ///
    /// If `l2_reg` is negative or not finite; see [`try_init`](Self::try_init).
    pub fn init(&self) -> NPairsLoss {
        crate::supcon::expect(self.try_init())
    }

    /// Builds the loss, or says why `l2_reg` is out of range.
    pub fn try_init(&self) -> Result<NPairsLoss, LossError> {
        LossError::check_non_negative("l2_reg", self.l2_reg)?;
        Ok(NPairsLoss {
            l2_reg: self.l2_reg,
        })
    }
}

/// The multi-class N-pairs loss, Sohn, NeurIPS 2016 ("Improved deep metric learning with
/// multi-class N-pair loss objective").
///
/// Features are `[batch, 2, dim]`: view 0 of sample `i` is the anchor `a_i`, view 1 its positive
/// `p_i`. With `N(i)` the samples whose positives are negatives of anchor `i`:
///
/// ```text
/// L = 1/B * sum_i log( 1 + sum_{j in N(i)} exp(a_i.p_j - a_i.p_i) )
///   + l2_reg / B * sum_i (|a_i|^2 + |p_i|^2)
/// ```
///
/// [`Positives::SameImage`] makes every other sample a negative (Sohn's setting: one pair per
/// class); [`Positives::Labels`] excludes samples of the anchor's class from `N(i)`;
/// [`Positives::Mask`] excludes `j` where `mask[i, j] > 0`. With exactly one positive per anchor
/// this is the SupCon / InfoNCE form at temperature 1 restricted to the positives' side, which the
/// tests check.
///
/// A Burn [`Module`] without parameters (its settings are constants), so it can be a field of
/// a model's `#[derive(Module)]` struct.
#[derive(Module, Debug)]
pub struct NPairsLoss {
    l2_reg: f64,
}

impl NPairsLoss {
    /// The mean loss, shape `[1]`, of features `[batch, 2, dim]`.
    ///
    /// # Panics
    ///
    /// On input [`try_forward`](Self::try_forward) refuses.
    pub fn forward(&self, features: Tensor<3>, positives: Positives) -> Tensor<1> {
        crate::supcon::expect(self.try_forward(features, positives))
    }

    /// [`forward`](Self::forward), returning a [`LossError`] instead of panicking.
    pub fn try_forward(
        &self,
        features: Tensor<3>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        Ok(self.try_forward_per_sample(features, positives)?.mean())
    }

    /// The loss of each sample, shape `[batch]`: its log term plus
    /// `l2_reg * (|a_i|^2 + |p_i|^2)`. Their mean is [`forward`](Self::forward).
    ///
    /// # Panics
    ///
    /// On input [`try_forward_per_sample`](Self::try_forward_per_sample) refuses.
    pub fn forward_per_sample(&self, features: Tensor<3>, positives: Positives) -> Tensor<1> {
        crate::supcon::expect(self.try_forward_per_sample(features, positives))
    }

    /// [`forward_per_sample`](Self::forward_per_sample), returning a [`LossError`] for an empty
    /// dimension, a view count other than 2, or labels or a mask that do not match the batch.
    pub fn try_forward_per_sample(
        &self,
        features: Tensor<3>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        let shape = features.dims();
        LossError::check_not_empty(&shape)?;
        let [batch, views, dim] = shape;
        if views != 2 {
            return Err(LossError::ShapeMismatch {
                what: "N-pairs features must be [batch, 2, dim] (anchor, positive); features",
                left: shape.to_vec(),
                right: vec![batch, 2, dim],
            });
        }
        let features = features.cast(crate::LOSS_DTYPE);
        let device = features.device();
        let same = positives.to_mask(batch, &device)?;
        let anchor = features.clone().narrow(1, 0, 1).reshape([batch, dim]);
        let positive = features.narrow(1, 1, 1).reshape([batch, dim]);

        let similarity = anchor.clone().matmul(positive.clone().transpose()); // [B, B]
        let own = Tensor::<2, Bool>::diag_mask([batch, batch], 0, &device).bool_not();
        let own_similarity = (similarity.clone() * own.clone().cast(crate::LOSS_DTYPE)).sum_dim(1); // a_i.p_i
        // log(1 + sum_neg exp(s_ij - s_ii)) = logsumexp over {i itself} U N(i) of s_ij, minus s_ii.
        let negative = same.lower_equal_elem(0.0).cast(crate::LOSS_DTYPE);
        let terms = negative.mask_fill(own, 1.0);
        let log_loss = masked_logsumexp(similarity, terms) - own_similarity;

        let norms = anchor.square().sum_dim(1) + positive.square().sum_dim(1);
        Ok((log_loss + norms.mul_scalar(self.l2_reg)).reshape([batch]))
    }
}
