//! The supervised contrastive loss (SupCon), Khosla et al., NeurIPS 2020: [`SupConLoss`].

use burn::prelude::*;

use crate::masked::{logaddexp, masked_logsumexp};
use crate::{LOSS_DTYPE, LossError, Positives, row_blocks};

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

/// The temperatures (and base temperatures) [`SupConLossConfig::try_init`] accepts. Below:
/// logits of unit features would exceed 1e20, within ten orders of magnitude of the -1e30 that
/// stands in for minus infinity in the masked reductions (the loss reaches its hard-maximum limit
/// far earlier: by 1e-6 in the tests). Above: `1 / T` would not be a normal float32 number.
const TEMPERATURES: std::ops::RangeInclusive<f64> = 1e-20..=8e37;

/// The scales `T / T_base` it accepts: the loss, about `T / T_base` times `ln N` plus logit
/// differences, stays a finite, normal float32 number.
const SCALES: std::ops::RangeInclusive<f64> = 1e-30..=1e30;

impl SupConLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    ///
    /// If a temperature is not a positive finite number, or outside what float32 computes with
    /// (a temperature or base temperature below 1e-20 or above 8e37, or a `temperature /
    /// base_temperature` outside 1e-30 to 1e30; the message names it); use
    /// [`try_init`](Self::try_init) to get a [`LossError`] instead.
    pub fn init(&self) -> SupConLoss {
        self.try_init()
            .unwrap_or_else(|error| panic!("invalid SupConLossConfig: {error}"))
    }

    /// Builds the loss, or says which parameter is out of range.
    pub fn try_init(&self) -> Result<SupConLoss, LossError> {
        LossError::check_positive("temperature", self.temperature)?;
        LossError::check_positive("base_temperature", self.base_temperature)?;
        for (name, value) in [
            ("temperature", self.temperature),
            ("base_temperature", self.base_temperature),
        ] {
            if !TEMPERATURES.contains(&value) {
                return Err(LossError::OutOfRange {
                    name,
                    value,
                    why: "the loss computes in float32, where temperatures from 1e-20 to 8e37 \
                          keep its logits and their scale finite",
                });
            }
        }
        if !SCALES.contains(&(self.temperature / self.base_temperature)) {
            return Err(LossError::OutOfRange {
                name: "base_temperature",
                value: self.base_temperature,
                why: "the loss computes in float32, where temperature / base_temperature must \
                      be from 1e-30 to 1e30",
            });
        }
        Ok(SupConLoss {
            temperature: self.temperature,
            base_temperature: self.base_temperature,
            contrast_mode: self.contrast_mode,
            summation: self.summation,
            denominator: self.denominator,
        })
    }
}

/// The supervised contrastive loss (SupCon), Khosla et al., NeurIPS 2020.
///
/// For `B` samples with `V` views each, features `z` are arranged view by view into `N = V * B`
/// contrast vectors. For every anchor `i` (all `N` of them, or only the `B` first views), with
/// `P(i)` its positives (same label, other than `i` itself) and `A(i)` everything but `i`:
///
/// ```text
/// L_out(i) = -(T / T_base) * 1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / T) / sum_{a in A(i)} exp(z_i.z_a / T) )   (Eq. 2)
/// L_in(i)  = -(T / T_base) * log( 1/|P(i)| * sum_{p in P(i)} exp(z_i.z_p / T) / sum_{a in A(i)} exp(z_i.z_a / T) )  (Eq. 3)
/// ```
///
/// and the loss is the mean over anchors. This is exactly HobbitLong/SupContrast `losses.py`
/// (contrast mode `all`/`one`, `temperature`, `base_temperature`, labels or an asymmetric
/// mask; an anchor without any positive contributes 0 and still counts in the mean, as the
/// reference does since its fix for NaN losses), plus the google-research options: the
/// summation inside the log ([`SummationLocation::Inside`]) and the denominator modes
/// ([`DenominatorMode`]). The google code's scaling by `temperature` is `base_temperature = 1`.
///
/// Numerics: the log-sum-exp subtracts the row maximum over the entries it sums (not over the
/// anchor's own similarity, which it excludes), so finite inputs give a finite loss and finite
/// gradients at any temperature accepted (1e-20 to 8e37, with `T / T_base` from 1e-30 to 1e30;
/// tested at the corners and at 1e-20, where the loss is its hard-maximum limit), unnormalised
/// features included.
/// The mean ([`forward`](Self::forward), [`forward_with_memory`](Self::forward_with_memory))
/// of the default formula (`L_out`, [`DenominatorMode::All`]) is computed block of anchors by
/// block with its gradient written out (memory bounded by a block of about a million logits on
/// the CPU backends, 16 million on GPUs, not `[N, N]`; on the CPU backends a vectorised pass
/// over each row); its gradient is then
/// first-order only. The other formulas and the per-sample loss record the whole computation.
/// The loss computes in float32 ([`LOSS_DTYPE`](crate::LOSS_DTYPE)) whatever the features'
/// float type (f16 or bf16 on a device configured for them): its value is float32, the
/// features' gradient comes back in their own type.
///
/// A Burn [`Module`] without parameters (its settings are constants), so it can be a field of
/// a model's `#[derive(Module)]` struct. Features come as `[batch, views, dim]`: turn the
/// `[views * batch, dim]` output of an encoder run on the views of
/// `supcon_augment::ViewPipeline` into that layout with [`by_image`](crate::by_image), never
/// with a plain `reshape` (which pairs the wrong rows).
#[derive(Module, Debug)]
pub struct SupConLoss {
    temperature: f64,
    base_temperature: f64,
    #[module(skip)]
    contrast_mode: ContrastMode,
    #[module(skip)]
    summation: SummationLocation,
    #[module(skip)]
    denominator: DenominatorMode,
}

impl SupConLoss {
    /// The softmax temperature `T`.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// The base temperature `T_base` (the loss is scaled by `T / T_base`).
    pub fn base_temperature(&self) -> f64 {
        self.base_temperature
    }

    /// Which views are anchors.
    pub fn contrast_mode(&self) -> ContrastMode {
        self.contrast_mode
    }

    /// The mean loss over all anchors, shape `[1]`.
    ///
    /// # Shapes
    ///
    /// - `features`: `[batch, views, dim]`, used as given (not normalised);
    /// - `positives`: labels `[batch]`, a mask `[batch, batch]`, or [`Positives::SameImage`];
    /// - output: `[1]`.
    ///
    /// # Panics
    ///
    /// On input [`try_forward`](Self::try_forward) refuses: an empty dimension, labels or a
    /// mask that do not match the batch, or [`Positives::SameImage`] with a single view.
    pub fn forward(&self, features: Tensor<3>, positives: Positives) -> Tensor<1> {
        expect(self.try_forward(features, positives))
    }

    /// [`forward`](Self::forward), returning a [`LossError`] instead of panicking.
    pub fn try_forward(
        &self,
        features: Tensor<3>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        self.mean(features, positives, None, Default::default())
    }

    /// The loss of each sample, shape `[batch]`: the mean over that sample's anchor views (as
    /// google-research `contrastive_loss` returns it). Its mean is [`forward`](Self::forward).
    ///
    /// # Panics
    ///
    /// As [`forward`](Self::forward).
    pub fn forward_per_sample(&self, features: Tensor<3>, positives: Positives) -> Tensor<1> {
        expect(self.try_forward_per_sample(features, positives))
    }

    /// [`forward_per_sample`](Self::forward_per_sample), returning a [`LossError`] instead of
    /// panicking.
    pub fn try_forward_per_sample(
        &self,
        features: Tensor<3>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        self.per_sample(features, positives, None)
    }

    /// The mean loss, shape `[1]`, with a memory of `K` extra contrast vectors (a queue of keys
    /// from earlier batches, say).
    ///
    /// The anchors are the batch's, as in [`forward`](Self::forward); the contrast set is the
    /// batch's views followed by the rows of `memory`. With [`Positives::Labels`], a memory row
    /// whose label (in `memory_labels`) equals the anchor's is a positive, any other a negative;
    /// with [`Positives::SameImage`] and [`Positives::Mask`] every memory row is a negative
    /// (`memory_labels` is ignored): SimCLR with a bank of negatives. No gradient flows into
    /// `memory`. With `K = 0` this is [`forward`](Self::forward).
    ///
    /// # Shapes
    ///
    /// - `features`: `[batch, views, dim]`; `memory`: `[K, dim]`;
    /// - `memory_labels`: `[K]`, required with [`Positives::Labels`] when `K > 0`;
    /// - output: `[1]`.
    ///
    /// ```
    /// use burn::prelude::*;
    /// use supcon_loss::{Positives, SupConLossConfig};
    ///
    /// let device = Device::flex();
    /// let features = Tensor::<3>::from_floats([[[1.0, 0.0]], [[0.0, 1.0]]], &device); // [2, 1, 2]
    /// let labels = Tensor::<1, Int>::from_ints([0, 1], &device);
    /// // One queued key per class: with a single view, every positive is in the memory.
    /// let memory = Tensor::<2>::from_floats([[0.8, 0.6], [0.6, 0.8]], &device);
    /// let memory_labels = Tensor::<1, Int>::from_ints([0, 1], &device);
    /// let loss = SupConLossConfig::new().init();
    /// let value = loss.forward_with_memory(features, Positives::Labels(labels), memory, Some(memory_labels));
    /// assert!(value.into_scalar::<f32>() > 0.0);
    /// ```
    ///
    /// # Panics
    ///
    /// On input [`try_forward_with_memory`](Self::try_forward_with_memory) refuses.
    pub fn forward_with_memory(
        &self,
        features: Tensor<3>,
        positives: Positives,
        memory: Tensor<2>,
        memory_labels: Option<Tensor<1, Int>>,
    ) -> Tensor<1> {
        expect(self.try_forward_with_memory(features, positives, memory, memory_labels))
    }

    /// [`forward_with_memory`](Self::forward_with_memory), returning a [`LossError`] for what
    /// [`try_forward`](Self::try_forward) refuses, a memory whose dimension differs from the
    /// features', and memory labels missing or of the wrong length.
    pub fn try_forward_with_memory(
        &self,
        features: Tensor<3>,
        positives: Positives,
        memory: Tensor<2>,
        memory_labels: Option<Tensor<1, Int>>,
    ) -> Result<Tensor<1>, LossError> {
        let memory = Memory {
            rows: memory,
            labels: memory_labels,
        };
        self.mean(features, positives, Some(memory), Default::default())
    }

    /// The mean loss over all anchors: row block by row block with the gradient written out
    /// for the default formula (`L_out`, [`DenominatorMode::All`]), through
    /// [`per_sample`](Self::per_sample) for the others. `tuning` overrides how the blocks are
    /// computed (tests).
    pub(crate) fn mean(
        &self,
        features: Tensor<3>,
        positives: Positives,
        memory: Option<Memory>,
        tuning: row_blocks::Tuning,
    ) -> Result<Tensor<1>, LossError> {
        if (self.summation, self.denominator) != (SummationLocation::Outside, DenominatorMode::All)
        {
            return Ok(self.per_sample(features, positives, memory)?.mean());
        }
        self.check(&features.dims(), &positives)?;
        let [batch, views, dim] = features.dims();
        positives.check(batch)?;
        let anchor_views = self.anchor_views(views);
        let memory = match memory {
            Some(memory) => memory.checked(&positives, batch, anchor_views, dim)?,
            None => None,
        };
        let setup = row_blocks::Setup {
            positives: &positives,
            anchor_views,
            memory,
            temperature: self.temperature,
            base_temperature: self.base_temperature,
            tuning,
        };
        Ok(row_blocks::mean_loss(features.cast(LOSS_DTYPE), setup))
    }

    /// Anchors per sample of `views` views: every view, or only the first.
    fn anchor_views(&self, views: usize) -> usize {
        match self.contrast_mode {
            ContrastMode::All => views,
            ContrastMode::One => 1,
        }
    }

    /// The per-sample loss, against the batch's views and the rows of `memory` if given.
    pub(crate) fn per_sample(
        &self,
        features: Tensor<3>,
        positives: Positives,
        memory: Option<Memory>,
    ) -> Result<Tensor<1>, LossError> {
        let [batch, views, dim] = features.dims();
        self.check(&features.dims(), &positives)?;
        let features = features.cast(LOSS_DTYPE);
        let device = features.device();
        let sample_mask = positives.to_mask(batch, &device)?;

        let anchor_views = self.anchor_views(views);
        let (anchors, contrasts) = (anchor_views * batch, views * batch);
        // View-major order, as torch.cat(torch.unbind(features, 1)): [v0 of all samples, v1, ...].
        let mut contrast = features.swap_dims(0, 1).reshape([contrasts, dim]);
        // The anchors are the first `anchors` rows of `contrast` in both modes, so anchor `r`'s
        // own entry is column `r`.
        let anchor = contrast.clone().narrow(0, 0, anchors);
        let mut not_self =
            Tensor::<2, Bool>::diag_mask([anchors, contrasts], 0, &device).cast(LOSS_DTYPE);
        let mut same = sample_mask.repeat(&[anchor_views, views]);
        let memory = match memory {
            Some(memory) => memory.checked(&positives, batch, anchor_views, dim)?,
            None => None,
        };
        if let Some((rows, memory_labels)) = memory {
            let k = rows.dims()[0];
            let memory_same =
                memory_positives(&positives, memory_labels, anchor_views, batch, k, &device);
            contrast = Tensor::cat(vec![contrast, rows], 0);
            same = Tensor::cat(vec![same, memory_same], 1);
            let ones = Tensor::<2>::ones([anchors, k], &device).cast(LOSS_DTYPE);
            not_self = Tensor::cat(vec![not_self, ones], 1);
        }
        let logits = anchor
            .matmul(contrast.transpose())
            .div_scalar(self.temperature);

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
    ///
    /// # Panics
    ///
    /// As [`forward`](Self::forward), and on rank 1 or 2.
    pub fn forward_nd<const D: usize>(
        &self,
        features: Tensor<D>,
        positives: Positives,
    ) -> Tensor<1> {
        expect(self.try_forward_nd(features, positives))
    }

    /// [`forward_nd`](Self::forward_nd), returning a [`LossError`] instead of panicking (rank 1
    /// or 2 is [`LossError::WrongRank`]).
    pub fn try_forward_nd<const D: usize>(
        &self,
        features: Tensor<D>,
        positives: Positives,
    ) -> Result<Tensor<1>, LossError> {
        let shape = features.dims().to_vec();
        if D < 3 {
            return Err(LossError::WrongRank { shape });
        }
        let flat: usize = shape[2..].iter().product();
        self.try_forward(features.reshape([shape[0], shape[1], flat]), positives)
    }

    fn check(&self, shape: &[usize; 3], positives: &Positives) -> Result<(), LossError> {
        LossError::check_not_empty(shape)?;
        if shape[1] == 1 && matches!(positives, Positives::SameImage) {
            return Err(LossError::SingleViewWithoutPositives);
        }
        Ok(())
    }
}

/// A memory's rows `[K, dim]` (detached, float32) and, for label positives, their labels `[K]`.
pub(crate) type CheckedMemory = (Tensor<2>, Option<Tensor<1, Int>>);

/// Extra contrast vectors and, for label positives, their labels.
pub(crate) struct Memory {
    pub(crate) rows: Tensor<2>,
    pub(crate) labels: Option<Tensor<1, Int>>,
}

impl Memory {
    /// The memory's rows (detached, in [`LOSS_DTYPE`]) and, for [`Positives::Labels`], their
    /// labels, after checking them against features `[batch, anchor_views.., dim]`; `None` for
    /// an empty memory.
    fn checked(
        self,
        positives: &Positives,
        batch: usize,
        anchor_views: usize,
        dim: usize,
    ) -> Result<Option<CheckedMemory>, LossError> {
        let [k, memory_dim] = self.rows.dims();
        if memory_dim != dim && k > 0 {
            return Err(LossError::ShapeMismatch {
                what: "memory rows and features must have the same dimension; memory and features",
                left: vec![k, memory_dim],
                right: vec![batch, anchor_views, dim],
            });
        }
        if k == 0 {
            return Ok(None);
        }
        let labels = match positives {
            Positives::Labels(_) => {
                let memory_labels = self.labels.ok_or(LossError::MemoryLabelsMissing)?;
                let [got] = memory_labels.dims();
                if got != k {
                    return Err(LossError::MemoryLabelsLength { memory: k, got });
                }
                Some(memory_labels)
            }
            Positives::SameImage | Positives::Mask(_) => None,
        };
        Ok(Some((self.rows.detach().cast(LOSS_DTYPE), labels)))
    }
}

/// Which of the `k` memory rows are positives of each anchor, `[anchors, k]` (anchors
/// view-major as in the loss): those with the anchor's label; none without labels.
fn memory_positives(
    positives: &Positives,
    memory_labels: Option<Tensor<1, Int>>,
    anchor_views: usize,
    batch: usize,
    k: usize,
    device: &Device,
) -> Tensor<2> {
    let anchors = anchor_views * batch;
    match (positives, memory_labels) {
        (Positives::Labels(labels), Some(memory_labels)) => {
            let anchor_labels = labels.clone().repeat(&[anchor_views]);
            let column = anchor_labels.reshape([anchors, 1]).expand([anchors, k]);
            let row = memory_labels.reshape([1, k]).expand([anchors, k]);
            column.equal(row).cast(LOSS_DTYPE)
        }
        _ => Tensor::<2>::zeros([anchors, k], device).cast(LOSS_DTYPE),
    }
}

/// The value of a `try_` method, or a panic with the loss's message (Burn's losses panic on
/// misuse; the `try_` methods are for callers that need an error).
pub(crate) fn expect<T>(result: Result<T, LossError>) -> T {
    result.unwrap_or_else(|error| panic!("{error}"))
}
