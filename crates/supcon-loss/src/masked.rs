//! Numerically stable reductions over masked rows, shared by the contrastive losses.
//!
//! Entries outside a mask are replaced by a large negative number before `exp`, never multiplied
//! by zero after it, so an excluded entry that would overflow (the anchor's own similarity with
//! unnormalised features, say) can produce neither infinity nor NaN, in the value or the gradient.

use burn::prelude::*;

/// Stands in for minus infinity: far below any logit, yet finite on every backend.
pub(crate) const NEG_LARGE: f32 = -1.0e30;

/// Floor for sums that are about to go through `log`: keeps empty rows finite.
const TINY: f32 = 1.0e-30;

/// `log(sum_j w[i, j] * exp(x[i, j]))` for every row `i`, as `[rows, 1]`, with weights `w >= 0`.
///
/// The row maximum over the entries with positive weight is subtracted first (and detached: the
/// result does not depend on it). A row without any positive weight gives a value near
/// [`NEG_LARGE`], finite, which the caller must mask out.
pub(crate) fn masked_logsumexp(x: Tensor<2>, weights: Tensor<2>) -> Tensor<2> {
    let excluded = weights.clone().lower_equal_elem(0.0);
    let filled = x.mask_fill(excluded, NEG_LARGE);
    let row_max = filled.clone().max_dim(1).detach();
    let sum = (filled - row_max.clone()).exp().mul(weights).sum_dim(1);
    row_max + sum.clamp_min(TINY).log()
}

/// `log(exp(x) + exp(y))` elementwise, stable for any magnitudes (`y` broadcasts).
pub(crate) fn logaddexp(x: Tensor<2>, y: Tensor<2>) -> Tensor<2> {
    let y = y.expand(x.dims());
    let max = x.clone().max_pair(y.clone()).detach();
    max.clone() + ((x - max.clone()).exp() + (y - max).exp()).log()
}
