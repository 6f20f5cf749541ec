//! The SupCon loss in its default form (`L_out`, denominator over all entries but the anchor)
//! computed block of anchor rows by block, with its gradient written out: memory grows with a
//! block of about [`BLOCK_ELEMENTS`] logits ([`DEVICE_BLOCK_ELEMENTS`] on a GPU), not with
//! `[N, N]`, and no autodiff graph is recorded over the logits.
//!
//! For anchor `i` with logits `l_ij = z_i . c_j / T` over the contrast set (`j != i`), softmax
//! `p_ij = exp(l_ij) / sum_{a != i} exp(l_ia)` and positive weights `w_ij` (0 or 1, or the
//! user's mask; `W_i = sum_j w_ij`):
//!
//! ```text
//! loss_i         = -s * (sum_j w_ij l_ij / W_i - log sum_{a != i} exp(l_ia))      (s = T / T_base)
//! d mean / d l_ij = s / A * (p_ij - w_ij / W_i)                                    (A anchors)
//! ```
//!
//! and an anchor with `W_i = 0` contributes 0 to the value and the gradient. The gradient with
//! respect to the features follows from `l = Z_a C^T / T`: `G C / T` for the anchor rows and
//! `G^T Z_a / T` for the contrast rows (the memory's rows get none). Each block of rows holds
//! `[rows, C]` tensors only, with `rows` chosen so that one is about that many floats;
//! when one block holds every anchor against exactly the anchors, the two products are one,
//! `(G + G^T) Z / T`. A block's elementwise terms are computed row by row in host memory on
//! the CPU backends ([`host_rows`]) and with tensor operations elsewhere (a GPU keeps them).
//!
//! On an autodiff device the value is returned with the gradient attached through the
//! surrogate `value + sum((f - detach(f)) * grad)`, which is `value` exactly and whose gradient
//! with respect to `f` is `grad` (first order: what a training step needs).

use burn::prelude::*;

use burn::tensor::DType;

use crate::host_rows::{self, HostWeights};
use crate::masked::NEG_LARGE;
use crate::supcon::CheckedMemory;
use crate::{LOSS_DTYPE, Positives};

/// About how many logits one block holds (`rows * contrast columns`) on the CPU backends: 1 Mi
/// floats, 4 MiB (measured on flex at batch 1,024: 16 MiB blocks were 35% slower, 2 MiB ones
/// no faster).
pub(crate) const BLOCK_ELEMENTS: usize = 1 << 20;

/// The same on the other devices (GPUs): 16 Mi floats, 64 MiB a `[rows, C]` tensor, so that one
/// block holds a batch of 1,024 two-view images (4 Mi logits) and the single symmetric product
/// serves it. A block is about 30 tensor operations and, unless it holds every anchor against
/// exactly the anchors, two matrix products: on an H200 (Vulkan, before autotune and fusion,
/// with 1 Mi-float blocks) the loss took 4.65 ms at batch 256 (one block) and 13.7 ms at 1,024
/// (four), while PyTorch's whole `[N, N]` loss took 1.64 and 1.73 ms, so launches rather than
/// arithmetic dominate there. Not yet measured with this size on a GPU. The memory stays
/// bounded, at a size a GPU holds easily.
pub(crate) const DEVICE_BLOCK_ELEMENTS: usize = 1 << 24;

/// The fewest anchor rows a block takes (small blocks make small matrix products).
const MIN_BLOCK_ROWS: usize = 32;

/// What the loss needs to know besides the features.
pub(crate) struct Setup<'a> {
    pub positives: &'a Positives,
    /// Anchors per sample: every view (`contrast_mode = all`) or the first (`one`).
    pub anchor_views: usize,
    /// Checked memory rows `[K, D]` (detached, float32) and, for label positives, their labels.
    pub memory: Option<CheckedMemory>,
    pub temperature: f64,
    pub base_temperature: f64,
    /// Choices the tests override.
    pub tuning: Tuning,
}

/// How the blocks are computed; the defaults choose from the sizes and the device.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tuning {
    /// Anchor rows per block; `None` chooses from [`BLOCK_ELEMENTS`] or
    /// [`DEVICE_BLOCK_ELEMENTS`].
    pub block_rows: Option<usize>,
    /// Whether the terms are computed on the host; `None` asks [`on_host`].
    pub host: Option<bool>,
}

/// The mean loss over all anchors, `[1]`, of float32 `features` `[batch, views, dim]` (already
/// checked), with the gradient attached on an autodiff device.
pub(crate) fn mean_loss(features: Tensor<3>, setup: Setup<'_>) -> Tensor<1> {
    let [batch, views, dim] = features.dims();
    let with_gradient = features.is_autodiff();
    let values = features.clone().detach().inner();
    let device = values.device();

    // View-major contrast rows, as torch.cat(torch.unbind(features, 1)); anchors are the first.
    let batch_rows = views * batch;
    let anchors = setup.anchor_views * batch;
    let mut contrast = values.swap_dims(0, 1).reshape([batch_rows, dim]);
    let mut memory_rows = 0;
    let mut memory_labels = None;
    if let Some((rows, labels)) = setup.memory {
        memory_rows = rows.dims()[0];
        contrast = Tensor::cat(vec![contrast, rows.inner()], 0);
        memory_labels = labels.map(Tensor::inner);
    }
    let columns = batch_rows + memory_rows;
    let weights = PositiveWeights::new(
        setup.positives,
        views,
        batch,
        memory_rows,
        memory_labels,
        &device,
    );

    let inverse_temperature = 1.0 / setup.temperature;
    let scale = setup.temperature / setup.base_temperature;
    let contrast_t = contrast.clone().transpose();
    let host = setup.tuning.host.unwrap_or_else(|| on_host(&device));
    let elements = if host {
        BLOCK_ELEMENTS
    } else {
        DEVICE_BLOCK_ELEMENTS
    };
    let block = setup
        .tuning
        .block_rows
        .unwrap_or((elements / columns).max(MIN_BLOCK_ROWS))
        .clamp(1, anchors);

    // One block holding every anchor against exactly the anchors (see `Terms::symmetric`).
    let symmetric = block == columns;
    let stage = if host {
        Stage::Host(weights.to_host(symmetric && with_gradient))
    } else {
        Stage::Tensors(Box::new(weights))
    };
    let mut total = Tensor::<1>::zeros([1], (&device, DType::F32));
    let mut anchor_grads = Vec::new();
    let mut contrast_grad: Option<Tensor<2>> = None;
    for start in (0..anchors).step_by(block) {
        let rows = block.min(anchors - start);
        let anchor = contrast.clone().narrow(0, start, rows);
        let terms = Terms {
            start,
            inverse_temperature,
            scale,
            grad_factor: scale / anchors as f64,
            gradient: with_gradient,
            symmetric,
        };
        let (block_total, g) = match &stage {
            // The host stage scales the products itself (see `host_rows::Block`).
            Stage::Host(weights) => {
                terms.on_host(anchor.clone().matmul(contrast_t.clone()), weights)
            }
            Stage::Tensors(weights) => {
                let logits = anchor
                    .clone()
                    .mul_scalar(inverse_temperature)
                    .matmul(contrast_t.clone());
                terms.with_tensors(logits, weights)
            }
        };
        total = total + block_total;
        if let Some(g) = g {
            if terms.symmetric {
                // `g` is already G + G^T (see `Terms::symmetric`): one product.
                let grad = g.matmul(contrast).mul_scalar(inverse_temperature);
                return attach(value_of(total, anchors), features, grad, views, batch, dim);
            }
            anchor_grads.push(
                g.clone()
                    .matmul(contrast.clone())
                    .mul_scalar(inverse_temperature),
            );
            let part = g.transpose().matmul(anchor).mul_scalar(inverse_temperature);
            contrast_grad = Some(match contrast_grad {
                Some(sum) => sum + part,
                None => part,
            });
        }
    }
    let value = value_of(total, anchors);
    let Some(contrast_grad) = contrast_grad else {
        return value;
    };
    // The contrast rows' part and the anchor rows' part (the first `anchors` rows).
    let mut anchor_grad = Tensor::cat(anchor_grads, 0);
    if anchors < batch_rows {
        let rest = Tensor::<2>::zeros([batch_rows - anchors, dim], (&device, DType::F32));
        anchor_grad = Tensor::cat(vec![anchor_grad, rest], 0);
    }
    let grad = contrast_grad.narrow(0, 0, batch_rows) + anchor_grad;
    attach(value, features, grad, views, batch, dim)
}

/// The mean over `anchors` of the summed per-anchor losses.
fn value_of(total: Tensor<1>, anchors: usize) -> Tensor<1> {
    total.div_scalar(anchors as f64)
}

/// `value` with `grad` (`[views * batch, dim]`, view-major) attached as the gradient with respect
/// to `features` (`[batch, views, dim]`, on the autodiff device).
fn attach(
    value: Tensor<1>,
    features: Tensor<3>,
    grad: Tensor<2>,
    views: usize,
    batch: usize,
    dim: usize,
) -> Tensor<1> {
    let grad = grad.reshape([views, batch, dim]).swap_dims(0, 1).autodiff();
    let attached = (features.clone() - features.detach()) * grad;
    value.autodiff() + attached.sum()
}

/// Where a block's elementwise terms are computed.
enum Stage {
    /// Row by row in host memory ([`host_rows`]): flex and ndarray.
    Host(HostWeights),
    /// With tensor operations on the device: every other backend.
    Tensors(Box<PositiveWeights>),
}

/// Whether `device`'s tensors live in host memory, where reading a block back costs a copy
/// (Burn's flex and ndarray; recognised by the device's name, so an unknown one takes the
/// tensor path, which gives the same result).
fn on_host(device: &Device) -> bool {
    let name = format!("{:?}", device.clone().inner());
    let name = name.strip_prefix("Device<").unwrap_or(&name);
    name.starts_with("Flex(") || name.starts_with("NdArray(")
}

/// One block's settings: its first anchor, the loss's scale and the gradient's factor.
struct Terms {
    start: usize,
    /// `1 / T`.
    inverse_temperature: f64,
    /// `T / T_base`.
    scale: f64,
    /// `scale / anchors`.
    grad_factor: f64,
    gradient: bool,
    /// One block holding every anchor against exactly the anchors (all views, no memory):
    /// `l = Z Z^T / T`, so the features' gradient is `(G + G^T) Z / T`, one product; the block
    /// then returns `G + G^T`.
    symmetric: bool,
}

impl Terms {
    /// The block's summed loss (`[1]`) and, when asked for, `G = f * (p - w / W)` (`[rows,
    /// columns]`, zero on anchors without a positive; `G + G^T` when [`symmetric`](Self::symmetric)),
    /// from its products `z_i . c_j` (the logits times `T`: the host pass scales them), on the
    /// host.
    fn on_host(
        &self,
        products: Tensor<2>,
        weights: &HostWeights,
    ) -> (Tensor<1>, Option<Tensor<2>>) {
        let device = products.device();
        let columns = products.dims()[1];
        // Host memory read and written in place (no copy on flex).
        let mut data = products.into_data();
        let values = data
            .as_mut_slice::<f32>()
            .expect("the loss's products are float32");
        let block = host_rows::Block {
            columns,
            start: self.start,
            weights,
            inverse_temperature: self.inverse_temperature as f32,
            scale: self.scale as f32,
            grad_factor: self.grad_factor as f32,
        };
        let losses = host_rows::run(&block, values, self.gradient, self.symmetric);
        let total: f64 = losses.iter().sum();
        let total = Tensor::from_data(
            TensorData::new(vec![total as f32], [1]),
            (&device, DType::F32),
        );
        // With the gradient, `data` now holds it.
        let grad = self
            .gradient
            .then(|| Tensor::from_data(data, (&device, DType::F32)));
        (total, grad)
    }

    /// [`on_host`](Self::on_host) with tensor operations on the block.
    fn with_tensors(
        &self,
        logits: Tensor<2>,
        weights: &PositiveWeights,
    ) -> (Tensor<1>, Option<Tensor<2>>) {
        let device = logits.device();
        let [rows, columns] = logits.dims();
        // The anchor's own column, `start + r` for row `r`, is out of every sum.
        let is_self =
            Tensor::<2, Bool>::diag_mask([rows, columns], self.start as i64, &device).bool_not();
        let filled = logits.clone().mask_fill(is_self.clone(), NEG_LARGE);
        let row_max = filled.clone().max_dim(1);
        let exp = (filled - row_max.clone()).exp();
        let sum = exp.clone().sum_dim(1);
        let log_denominator = row_max + sum.clone().log();

        let weight = weights
            .block(self.start, rows, &device)
            .mask_fill(is_self, 0.0);
        let count = weight.clone().sum_dim(1);
        let has_term = count.clone().greater_elem(1e-6);
        let safe_count = count.mask_fill(has_term.clone().bool_not(), 1.0);
        let positive_mean = (weight.clone() * logits).sum_dim(1) / safe_count.clone();
        let per_anchor = (positive_mean - log_denominator)
            .mul_scalar(-self.scale)
            .mask_fill(has_term.clone().bool_not(), 0.0);
        let total = per_anchor.sum().reshape([1]);
        let grad = self.gradient.then(|| {
            let factor = has_term.cast(LOSS_DTYPE).mul_scalar(self.grad_factor);
            let g = exp * (factor.clone() / sum) - weight * (factor / safe_count);
            if self.symmetric {
                g.clone() + g.transpose()
            } else {
                g
            }
        });
        (total, grad)
    }
}

/// The positive weights of a block of anchor rows, `[rows, columns]` (the anchor's own column
/// included; the caller zeroes it).
enum PositiveWeights {
    /// Positives are the columns whose key equals the anchor's: labels, or image indices for
    /// [`Positives::SameImage`] (memory rows then have key -1, never an image's).
    Keys(Tensor<1, Int>),
    /// The user's `[batch, batch]` mask, tiled over views; memory columns are 0.
    Mask {
        mask: Tensor<2>,
        views: usize,
        memory_rows: usize,
    },
}

impl PositiveWeights {
    fn new(
        positives: &Positives,
        views: usize,
        batch: usize,
        memory_rows: usize,
        memory_labels: Option<Tensor<1, Int>>,
        device: &Device,
    ) -> Self {
        let keys = |batch_keys: Tensor<1, Int>, memory: Option<Tensor<1, Int>>| {
            let keys = batch_keys.repeat(&[views]);
            match (memory_rows, memory) {
                (0, _) => keys,
                (_, Some(labels)) => Tensor::cat(vec![keys, labels], 0),
                (k, None) => Tensor::cat(vec![keys, Tensor::full([k], -1, device)], 0),
            }
        };
        match positives {
            Positives::Labels(labels) => Self::Keys(keys(labels.clone().inner(), memory_labels)),
            Positives::SameImage => Self::Keys(keys(Tensor::arange(0..batch as i64, device), None)),
            Positives::Mask(mask) => Self::Mask {
                mask: mask.clone().inner().cast(LOSS_DTYPE),
                views,
                memory_rows,
            },
        }
    }

    /// The same weights in host memory, for [`host_rows`]; `transposed`: a mask's transpose
    /// too (the symmetric gradient reads `w_ji`).
    fn to_host(&self, transposed: bool) -> HostWeights {
        match self {
            Self::Keys(keys) => HostWeights::Keys(
                keys.clone()
                    .into_data()
                    .try_into_vec_as::<i64>()
                    .expect("keys convert to i64"),
            ),
            Self::Mask {
                mask,
                views,
                memory_rows: _,
            } => {
                let batch = mask.dims()[0];
                let values = mask
                    .clone()
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .expect("a float32 mask");
                HostWeights::mask(values, batch, *views, transposed)
            }
        }
    }

    fn block(&self, start: usize, rows: usize, device: &Device) -> Tensor<2> {
        match self {
            Self::Keys(keys) => {
                let columns = keys.dims()[0];
                let anchor = keys.clone().narrow(0, start, rows);
                let anchor = anchor.reshape([rows, 1]).expand([rows, columns]);
                let column = keys.clone().reshape([1, columns]).expand([rows, columns]);
                anchor.equal(column).cast(LOSS_DTYPE)
            }
            Self::Mask {
                mask,
                views,
                memory_rows,
            } => {
                let batch = mask.dims()[0];
                let samples: Vec<i64> = (start..start + rows).map(|r| (r % batch) as i64).collect();
                let index = Tensor::<1, Int>::from_ints(samples.as_slice(), device);
                let tiled = mask.clone().select(0, index).repeat(&[1, *views]);
                if *memory_rows == 0 {
                    return tiled;
                }
                let zeros = Tensor::<2>::zeros([rows, *memory_rows], device).cast(LOSS_DTYPE);
                Tensor::cat(vec![tiled, zeros], 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The blocked loss against the loss written with whole `[N, N]` masks (`per_sample`, the
    //! path every other formula takes), value and gradient, with blocks that split the anchors
    //! unevenly and with one block.

    use burn::prelude::*;

    use super::{Tuning, on_host};
    use crate::supcon::Memory;
    use crate::{ContrastMode, Positives, SupConLoss, SupConLossConfig};

    /// Deterministic values in [-scale, scale).
    fn values(count: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    struct Case {
        batch: usize,
        views: usize,
        dim: usize,
        memory: usize,
        /// Feature scale: 1 is about unit norm for dim 4; larger tests the stable exponentials.
        scale: f32,
        positives: fn(usize, &Device) -> Positives,
    }

    fn labels(batch: usize, device: &Device) -> Positives {
        let ids: Vec<i64> = (0..batch as i64).map(|i| (i * 5) % 3).collect();
        Positives::Labels(Tensor::from_ints(ids.as_slice(), device))
    }

    fn unique_labels(batch: usize, device: &Device) -> Positives {
        let ids: Vec<i64> = (0..batch as i64).collect();
        Positives::Labels(Tensor::from_ints(ids.as_slice(), device))
    }

    fn weighted_mask(batch: usize, device: &Device) -> Positives {
        let mut weights = values(batch * batch, 9, 1.0);
        for w in &mut weights {
            *w = if *w < 0.0 { 0.0 } else { *w * 2.0 };
        }
        Positives::Mask(tensor(weights, [batch, batch], device))
    }

    /// The value and the features' gradient of `mean` (blocked as `tuning` says) and of the
    /// mean of `per_sample` (whole masks).
    fn both(loss: &SupConLoss, case: &Case, tuning: Tuning) -> [(f32, Vec<f32>); 2] {
        let device = Device::flex().autodiff();
        let shape = [case.batch, case.views, case.dim];
        let raw = values(shape.iter().product(), 1, case.scale);
        let memory_values = values(case.memory * case.dim, 2, case.scale);
        let memory_ids: Vec<i64> = (0..case.memory as i64).map(|i| i % 4).collect();
        let run = |blocked: bool| {
            let features = tensor(raw.clone(), shape, &device).require_grad();
            let memory = Memory {
                rows: tensor(memory_values.clone(), [case.memory, case.dim], &device),
                labels: Some(Tensor::from_ints(memory_ids.as_slice(), &device)),
            };
            let positives = (case.positives)(case.batch, &device);
            let value = if blocked {
                loss.mean(features.clone(), positives, Some(memory), tuning)
                    .unwrap()
            } else {
                loss.per_sample(features.clone(), positives, Some(memory))
                    .unwrap()
                    .mean()
            };
            let grads = value.backward();
            let grad = features.grad(&grads).unwrap().into_data();
            (
                value.into_scalar::<f32>(),
                grad.try_into_vec_as::<f32>().unwrap(),
            )
        };
        [run(true), run(false)]
    }

    fn assert_same(case: &Case, mode: ContrastMode, temperature: f64) {
        let loss = SupConLossConfig::new()
            .with_temperature(temperature)
            .with_contrast_mode(mode)
            .init();
        let anchors = case.batch
            * if mode == ContrastMode::All {
                case.views
            } else {
                1
            };
        let tunings = [1, 3, anchors].into_iter().flat_map(|rows| {
            [true, false].map(|host| Tuning {
                block_rows: Some(rows),
                host: Some(host),
            })
        });
        for tuning in tunings {
            let [(value, grad), (want, want_grad)] = both(&loss, case, tuning);
            assert!(
                (value - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{tuning:?}: value {value} vs {want}"
            );
            let largest = want_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
            assert!(largest > 0.0, "the gradient is not all zero");
            for (g, w) in grad.iter().zip(&want_grad) {
                assert!(
                    (g - w).abs() <= 1e-5 * largest,
                    "{tuning:?}: gradient {g} vs {w} (largest {largest})"
                );
            }
        }
    }

    #[test]
    fn blocks_give_the_whole_mask_loss_and_gradient() {
        let cases = [
            (6, 2, 4, 0, 1.0, labels as fn(usize, &Device) -> Positives),
            (5, 3, 4, 0, 1.0, labels),
            (6, 2, 4, 7, 1.0, labels),
            (6, 2, 4, 5, 1.0, unique_labels),
            (5, 2, 3, 0, 1.0, |_, _| Positives::SameImage),
            (5, 2, 3, 4, 1.0, |_, _| Positives::SameImage),
            (4, 2, 3, 3, 1.0, weighted_mask),
            // No memory: with one block, the symmetric gradient reads the mask's transpose.
            (4, 2, 3, 0, 1.0, weighted_mask),
            (7, 2, 4, 0, 8.0, labels),
            // One view: label 1 occurs once, so its anchor has no positive.
            (5, 1, 4, 0, 8.0, labels),
        ];
        for (batch, views, dim, memory, scale, positives) in cases {
            let case = Case {
                batch,
                views,
                dim,
                memory,
                scale,
                positives,
            };
            for mode in [ContrastMode::All, ContrastMode::One] {
                assert_same(&case, mode, 0.5);
                assert_same(&case, mode, 0.07);
                // Logits near 1e12: the hard-maximum limit, on both stages.
                assert_same(&case, mode, 1e-12);
            }
        }
    }

    #[test]
    fn without_autodiff_the_value_is_the_same() {
        let device = Device::flex();
        let raw = values(5 * 2 * 4, 3, 1.0);
        let loss = SupConLossConfig::new().init();
        let plain = loss
            .forward(tensor(raw.clone(), [5, 2, 4], &device), labels(5, &device))
            .into_scalar::<f32>();
        let tracked = loss
            .forward(
                tensor(raw, [5, 2, 4], &device.clone().autodiff()).require_grad(),
                labels(5, &device.clone().autodiff()),
            )
            .into_scalar::<f32>();
        assert_eq!(plain, tracked);
    }

    #[test]
    fn flex_is_recognised_as_host_memory() {
        assert!(on_host(&Device::flex()));
        assert!(on_host(&Device::flex().autodiff()));
    }

    #[test]
    fn nan_features_give_a_nan_loss_on_both_stages() {
        let device = Device::flex().autodiff();
        let mut raw = values(4 * 2 * 3, 5, 1.0);
        raw[7] = f32::NAN;
        let loss = SupConLossConfig::new().init();
        for host in [true, false] {
            let tuning = Tuning {
                block_rows: None,
                host: Some(host),
            };
            let value = loss
                .mean(
                    tensor(raw.clone(), [4, 2, 3], &device).require_grad(),
                    labels(4, &device),
                    None,
                    tuning,
                )
                .unwrap();
            assert!(value.into_scalar::<f32>().is_nan(), "host {host}");
        }
    }
}
