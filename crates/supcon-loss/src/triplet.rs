//! The triplet loss (Schroff et al., CVPR 2015, "FaceNet"), over every valid triplet of a batch: [`TripletLoss`].

use burn::prelude::*;

use crate::{LossError, Positives};

/// Squared distances below this are clamped before the square root (its gradient is infinite
/// at 0).
const SQRT_EPS: f64 = 1e-12;

/// The distance a [`TripletLoss`] compares.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum TripletDistance {
    /// `|x - y|^2` (FaceNet's choice, the default).
    Squared,
    /// `|x - y|`.
    Euclidean,
}

/// Configuration of [`TripletLoss`].
#[derive(Config, Debug)]
pub struct TripletLossConfig {
    /// The margin (>= 0) by which negatives must be farther than positives.
    #[config(default = 0.2)]
    pub margin: f64,
    /// Squared or plain Euclidean distance.
    #[config(default = "TripletDistance::Squared")]
    pub distance: TripletDistance,
}

impl TripletLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    ///
    /// If the margin is negative or not finite; see [`try_init`](Self::try_init).
    pub fn init(&self) -> TripletLoss {
        crate::supcon::expect(self.try_init())
    }

    /// Builds the loss, or says why the margin is out of range.
    pub fn try_init(&self) -> Result<TripletLoss, LossError> {
        LossError::check_non_negative("margin", self.margin)?;
        Ok(TripletLoss {
            margin: self.margin,
            distance: self.distance,
        })
    }
}

/// The triplet loss (Schroff et al., CVPR 2015, "FaceNet"), over every valid triplet of a batch.
///
/// Features `[batch, views, dim]` are flattened to `N = views * batch` vectors. A triplet
/// `(a, p, n)` is valid when `p != a` is a positive of `a` and `n` a negative of `a` (by
/// [`Positives`], as for [`SupConLoss`](crate::SupConLoss)); its loss is
///
/// ```text
/// l(a, p, n) = max(0, d(a, p) - d(a, n) + margin)
/// ```
///
/// with `d` the squared or the plain Euclidean distance, and the loss is the mean over all valid
/// triplets ("batch all"; 0 when there is none). It builds an `[N, N, N]` tensor, so it is meant
/// for the moderate batches of the paper's comparison, not for batches of thousands.
///
/// On unit vectors `|a - p|^2 = 2 - 2 a.p`, so with squared distances and margin `2T`,
/// `l / (2T) = 1 + (a.n - a.p) / T`: the first-order expansion of the SupCon loss with one
/// positive and one negative, `log(1 + exp((a.n - a.p) / T))`, when the positive is much closer
/// than the negative (the paper's supplementary, section 9). The tests check both sides.
///
/// A Burn [`Module`] without parameters (its settings are constants), so it can be a field of
/// a model's `#[derive(Module)]` struct.
#[derive(Module, Debug)]
pub struct TripletLoss {
    margin: f64,
    #[module(skip)]
    distance: TripletDistance,
}

impl TripletLoss {
    /// The mean over valid triplets, shape `[1]`, of features `[batch, views, dim]`.
    ///
    /// # Panics
    ///
    /// On input [`try_forward`](Self::try_forward) refuses.
    pub fn forward(&self, features: Tensor<3>, positives: Positives) -> Tensor<1> {
        crate::supcon::expect(self.try_forward(features, positives))
    }

    /// [`forward`](Self::forward), returning a [`LossError`] for an empty dimension or labels or
    /// a mask that do not match the batch.
    pub fn try_forward(
        &self,
        features: Tensor<3>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        let shape = features.dims();
        LossError::check_not_empty(&shape)?;
        let [batch, views, dim] = shape;
        let features = features.cast(crate::LOSS_DTYPE);
        let device = features.device();
        let same = positives.to_mask(batch, &device)?.repeat(&[views, views]);
        let n = views * batch;
        let x = features.swap_dims(0, 1).reshape([n, dim]);

        let not_self = Tensor::<2, Bool>::diag_mask([n, n], 0, &device).cast(crate::LOSS_DTYPE);
        let positive = same.clone().greater_elem(0.0).cast(crate::LOSS_DTYPE) * not_self.clone();
        let negative = same.lower_equal_elem(0.0).cast(crate::LOSS_DTYPE) * not_self;

        let distance = self.distances(x); // [n, n]
        let hinge = distance.clone().reshape([n, n, 1]) - distance.reshape([n, 1, n]);
        let hinge = hinge.add_scalar(self.margin).clamp_min(0.0);
        let valid = positive.reshape([n, n, 1]) * negative.reshape([n, 1, n]);
        let count = valid.clone().sum();
        Ok((hinge * valid).sum() / count.clamp_min(1.0))
    }

    /// Pairwise distances `[n, n]` between the rows of `x`.
    fn distances(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, _] = x.dims();
        let norms = x.clone().square().sum_dim(1); // [n, 1]
        let gram = x.clone().matmul(x.transpose());
        let squared = (norms.clone() + norms.reshape([1, n]) - gram.mul_scalar(2.0)).clamp_min(0.0);
        match self.distance {
            TripletDistance::Squared => squared,
            TripletDistance::Euclidean => squared.clamp_min(SQRT_EPS).sqrt(),
        }
    }
}
