//! Which pairs of samples a contrastive loss treats as positives.

use burn::prelude::*;

/// Which samples of a batch are positives for each other.
///
/// Every view of the same sample is always a positive of the other views of that sample
/// (except under [`Positives::Mask`], where the mask's diagonal decides); the anchor itself never
/// is.
#[derive(Debug, Clone)]
pub enum Positives {
    /// Supervised: samples with equal labels are positives. Shape `[batch]`, any integer values.
    Labels(Tensor<1, Int>),
    /// Self-supervised (SimCLR): only the other views of the same sample are positives.
    SameImage,
    /// Explicit: `mask[i, j]` is the weight (usually 0 or 1) with which sample `j` is a positive
    /// of anchor `i`. Shape `[batch, batch]`; it may be asymmetric. As in the reference, the
    /// entries of views of other samples are tiled from it, so `mask[i, i]` decides whether the
    /// other views of sample `i` are positives.
    Mask(Tensor<2>),
}

impl Positives {
    /// The `[batch, batch]` float mask these positives stand for, checked against the batch.
    pub(crate) fn to_mask(
        &self,
        batch: usize,
        device: &Device,
    ) -> Result<Tensor<2>, crate::LossError> {
        self.check(batch)?;
        match self {
            Positives::Labels(labels) => {
                let column = labels.clone().reshape([batch, 1]).expand([batch, batch]);
                let row = labels.clone().reshape([1, batch]).expand([batch, batch]);
                Ok(column.equal(row).cast(crate::LOSS_DTYPE))
            }
            Positives::SameImage => Ok(Tensor::<2>::eye(batch, device).cast(crate::LOSS_DTYPE)),
            Positives::Mask(mask) => Ok(mask.clone().cast(crate::LOSS_DTYPE)),
        }
    }

    /// Whether these positives fit a batch of `batch` samples.
    pub(crate) fn check(&self, batch: usize) -> Result<(), crate::LossError> {
        match self {
            Positives::Labels(labels) => {
                let [got] = labels.dims();
                if got != batch {
                    return Err(crate::LossError::LabelsLength { batch, got });
                }
            }
            Positives::SameImage => {}
            Positives::Mask(mask) => {
                let got = mask.dims();
                if got != [batch, batch] {
                    return Err(crate::LossError::MaskShape { batch, got });
                }
            }
        }
        Ok(())
    }
}
