//! BatchNorm in training mode on host memory: the forward in two passes (statistics, then one
//! multiply-add per element), the backward in two (two sums per channel, then one expression
//! per element), where Burn's default composes some fifteen tensor operations each way.
//!
//! `x` is `[batch, channels, spatial]` in row-major order (`spatial` the product of the trailing
//! dimensions). With `n = batch * spatial` values per channel, `mean` and the biased `variance`
//! of each channel, `s = 1 / sqrt(variance + eps)` and `x̂ = (x - mean) s`:
//!
//! - forward: `y = gamma x̂ + beta`, computed as `y = a x + b` with `a = gamma s` and
//!   `b = beta - a mean`;
//! - backward, from `dy`: `dbeta = Σ dy`, `dgamma = Σ dy x̂`, and
//!   `dx = gamma s (dy - Σdy / n - x̂ Σ(dy x̂) / n)`, computed as `dx = a dy + b x + c`.
//!
//! Followed by a ReLU ([`Activation::Relu`]), the forward writes `max(y, 0)` (a NaN stays NaN, as
//! Burn's `relu` leaves it) and the backward first zeroes `dy` where that output is `<= 0`, as
//! Burn's ReLU backward does.
//!
//! Sums over a row run in float32 lanes and are added up per channel in float64; the variance
//! is taken about the mean (two passes), never as `E[x²] - E[x]²`. The loops use plain
//! multiplies and adds: `f32::mul_add` without FMA compiled in is a call to libm per element.

use super::parallel::for_rows;

/// The shape of a BatchNorm input as the kernels see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planes {
    /// Images in the batch.
    pub batch: usize,
    /// Channels (dimension 1).
    pub channels: usize,
    /// Values per image and channel (the product of the trailing dimensions).
    pub spatial: usize,
}

impl Planes {
    /// Values per channel.
    fn per_channel(&self) -> usize {
        self.batch * self.spatial
    }

    /// The row of image `b` and channel `c`.
    fn row<'a>(&self, data: &'a [f32], b: usize, c: usize) -> &'a [f32] {
        let start = (b * self.channels + c) * self.spatial;
        &data[start..start + self.spatial]
    }
}

/// What follows the normalisation in the same operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Nothing: `y = gamma x̂ + beta`.
    Identity,
    /// A ReLU: `y = max(gamma x̂ + beta, 0)`.
    Relu,
}

/// The per-channel mean and biased variance of `x`, and `y = gamma x̂ + beta`, then `activation`.
pub(crate) fn forward(
    x: &[f32],
    planes: Planes,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    activation: Activation,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = planes.per_channel() as f64;
    let mut moments = vec![(0.0f64, 0.0f64); planes.channels];
    for_rows(&mut moments, 1, x.len(), |first, out| {
        for (i, moment) in out.iter_mut().enumerate() {
            let c = first + i;
            let mean = (0..planes.batch)
                .map(|b| sum(planes.row(x, b, c)))
                .sum::<f64>()
                / n;
            let variance = (0..planes.batch)
                .map(|b| centred_squares(planes.row(x, b, c), mean as f32))
                .sum::<f64>()
                / n;
            *moment = (mean, variance);
        }
    });
    let affine: Vec<(f32, f32)> = moments
        .iter()
        .zip(gamma.iter().zip(beta))
        .map(|(&(mean, variance), (&g, &b))| {
            let a = g as f64 / (variance + epsilon).sqrt();
            (a as f32, (b as f64 - a * mean) as f32)
        })
        .collect();
    let mut y = vec![0.0f32; x.len()];
    for_rows(&mut y, planes.spatial, x.len(), |first, out| {
        for (r, row) in out.chunks_exact_mut(planes.spatial).enumerate() {
            let row_index = first + r;
            let (a, b) = affine[row_index % planes.channels];
            let input = &x[row_index * planes.spatial..(row_index + 1) * planes.spatial];
            match activation {
                Activation::Identity => {
                    for (o, &v) in row.iter_mut().zip(input) {
                        *o = a * v + b;
                    }
                }
                Activation::Relu => {
                    for (o, &v) in row.iter_mut().zip(input) {
                        let y = a * v + b;
                        *o = if y <= 0.0 { 0.0 } else { y };
                    }
                }
            }
        }
    });
    let mean = moments.iter().map(|m| m.0 as f32).collect();
    let variance = moments.iter().map(|m| m.1 as f32).collect();
    (y, mean, variance)
}

/// The gradients of [`forward`] with respect to `x`, `gamma` and `beta`, given the output's
/// gradient `dy` (the same layout as `x`) and the statistics the forward returned.
pub(crate) fn backward(
    x: &[f32],
    dy: &[f32],
    planes: Planes,
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = planes.per_channel() as f64;
    let mut sums = vec![(0.0f64, 0.0f64); planes.channels];
    for_rows(&mut sums, 1, 2 * x.len(), |first, out| {
        for (i, s) in out.iter_mut().enumerate() {
            let c = first + i;
            *s = (0..planes.batch)
                .map(|b| gradient_sums(planes.row(dy, b, c), planes.row(x, b, c), mean[c]))
                .fold((0.0, 0.0), |acc, v| (acc.0 + v.0, acc.1 + v.1));
        }
    });
    let mut gamma_grad = Vec::with_capacity(planes.channels);
    let mut beta_grad = Vec::with_capacity(planes.channels);
    let mut coefficients = Vec::with_capacity(planes.channels);
    for c in 0..planes.channels {
        let (sum_dy, sum_dy_centred) = sums[c];
        let inv_std = 1.0 / (variance[c] as f64 + epsilon).sqrt();
        let a = gamma[c] as f64 * inv_std;
        let b = -a * inv_std * inv_std * sum_dy_centred / n;
        let offset = -a * sum_dy / n - b * mean[c] as f64;
        gamma_grad.push((sum_dy_centred * inv_std) as f32);
        beta_grad.push(sum_dy as f32);
        coefficients.push((a as f32, b as f32, offset as f32));
    }
    let mut dx = vec![0.0f32; x.len()];
    for_rows(&mut dx, planes.spatial, 2 * x.len(), |first, out| {
        for (r, row) in out.chunks_exact_mut(planes.spatial).enumerate() {
            let row_index = first + r;
            let (a, b, offset) = coefficients[row_index % planes.channels];
            let range = row_index * planes.spatial..(row_index + 1) * planes.spatial;
            for ((o, &g), &v) in row.iter_mut().zip(&dy[range.clone()]).zip(&x[range]) {
                *o = a * g + b * v + offset;
            }
        }
    });
    (dx, gamma_grad, beta_grad)
}

/// `dy` where the ReLU's `output` is above zero (or NaN), zero elsewhere: the gradient that
/// reaches the normalisation through a ReLU.
pub(crate) fn relu_gradient(dy: &[f32], output: &[f32], planes: Planes) -> Vec<f32> {
    debug_assert_eq!(dy.len(), output.len());
    let mut masked = vec![0.0f32; dy.len()];
    for_rows(&mut masked, planes.spatial, 2 * dy.len(), |first, out| {
        let range = first * planes.spatial..first * planes.spatial + out.len();
        for ((o, &g), &y) in out.iter_mut().zip(&dy[range.clone()]).zip(&output[range]) {
            *o = if y <= 0.0 { 0.0 } else { g };
        }
    });
    masked
}

/// Lanes of the row sums: wide enough for the compiler to keep them in vector registers.
const LANES: usize = 8;

/// `Σ x`.
fn sum(xs: &[f32]) -> f64 {
    let mut lanes = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
}

/// `Σ (x - mean)²`.
fn centred_squares(xs: &[f32], mean: f32) -> f64 {
    let mut lanes = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&v| (v - mean) * (v - mean))
        .sum();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            let d = v - mean;
            *l += d * d;
        }
    }
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
}

/// `(Σ dy, Σ dy (x - mean))` over one row.
fn gradient_sums(dy: &[f32], xs: &[f32], mean: f32) -> (f64, f64) {
    let mut plain = [0.0f32; LANES];
    let mut centred = [0.0f32; LANES];
    let dy_chunks = dy.chunks_exact(LANES);
    let x_chunks = xs.chunks_exact(LANES);
    let (mut tail_plain, mut tail_centred) = (0.0f32, 0.0f32);
    for (&g, &v) in dy_chunks.remainder().iter().zip(x_chunks.remainder()) {
        tail_plain += g;
        tail_centred += g * (v - mean);
    }
    for (g, v) in dy_chunks.zip(x_chunks) {
        for l in 0..LANES {
            plain[l] += g[l];
            centred[l] += g[l] * (v[l] - mean);
        }
    }
    (
        plain.iter().map(|&l| l as f64).sum::<f64>() + tail_plain as f64,
        centred.iter().map(|&l| l as f64).sum::<f64>() + tail_centred as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forward and backward against the formulas written out in float64, one channel at a time.
    #[test]
    fn matches_the_formulas_in_float64() {
        let planes = Planes {
            batch: 3,
            channels: 2,
            spatial: 13,
        };
        let len = planes.batch * planes.channels * planes.spatial;
        // Deterministic, uneven values with an offset, so a one-pass variance would lose digits.
        let x: Vec<f32> = (0..len)
            .map(|i| 50.0 + ((i * 37 % 23) as f32 - 11.0) * 0.37)
            .collect();
        let dy: Vec<f32> = (0..len)
            .map(|i| ((i * 11 % 7) as f32 - 3.0) * 0.5)
            .collect();
        let gamma = [1.5f32, -0.5];
        let beta = [0.25f32, 2.0];
        let eps = 1e-5;
        let (y, mean, variance) = forward(&x, planes, &gamma, &beta, eps, Activation::Identity);
        let (dx, dgamma, dbeta) = backward(&x, &dy, planes, &gamma, &mean, &variance, eps);

        let n = (planes.batch * planes.spatial) as f64;
        for c in 0..planes.channels {
            let idx: Vec<usize> = (0..planes.batch)
                .flat_map(|b| {
                    let start = (b * planes.channels + c) * planes.spatial;
                    start..start + planes.spatial
                })
                .collect();
            let xs: Vec<f64> = idx.iter().map(|&i| x[i] as f64).collect();
            let gs: Vec<f64> = idx.iter().map(|&i| dy[i] as f64).collect();
            let m = xs.iter().sum::<f64>() / n;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
            let s = 1.0 / (v + eps).sqrt();
            assert!((mean[c] as f64 - m).abs() < 1e-5);
            assert!((variance[c] as f64 - v).abs() < 1e-5 * v);
            let xhat: Vec<f64> = xs.iter().map(|x| (x - m) * s).collect();
            let sum_g: f64 = gs.iter().sum();
            let sum_gx: f64 = gs.iter().zip(&xhat).map(|(g, h)| g * h).sum();
            assert!((dbeta[c] as f64 - sum_g).abs() < 1e-4);
            assert!((dgamma[c] as f64 - sum_gx).abs() < 1e-4);
            for (k, &i) in idx.iter().enumerate() {
                let want_y = gamma[c] as f64 * xhat[k] + beta[c] as f64;
                assert!(
                    (y[i] as f64 - want_y).abs() < 1e-4,
                    "y {} vs {want_y}",
                    y[i]
                );
                let want_dx = gamma[c] as f64 * s * (gs[k] - sum_g / n - xhat[k] * sum_gx / n);
                assert!(
                    (dx[i] as f64 - want_dx).abs() < 1e-4,
                    "dx {} vs {want_dx}",
                    dx[i]
                );
            }
        }
    }

    /// With a ReLU the forward is `max(y, 0)` of the plain one, NaN kept, and the gradient is
    /// masked where that output is not above zero.
    #[test]
    fn relu_clamps_the_output_and_masks_the_gradient() {
        let planes = Planes {
            batch: 2,
            channels: 3,
            spatial: 11,
        };
        let len = planes.batch * planes.channels * planes.spatial;
        let mut x: Vec<f32> = (0..len)
            .map(|i| ((i * 29 % 17) as f32 - 8.0) * 0.4)
            .collect();
        let (gamma, beta) = ([1.0f32, -2.0, 0.5], [0.1f32, -0.3, 0.0]);
        let (plain, mean, variance) =
            forward(&x, planes, &gamma, &beta, 1e-5, Activation::Identity);
        let (relu, mean_r, variance_r) = forward(&x, planes, &gamma, &beta, 1e-5, Activation::Relu);
        assert_eq!((mean, variance), (mean_r, variance_r));
        assert!(plain.iter().any(|&v| v < 0.0) && plain.iter().any(|&v| v > 0.0));
        for (&p, &r) in plain.iter().zip(&relu) {
            assert_eq!(r, p.max(0.0));
        }
        let dy: Vec<f32> = (0..len).map(|i| i as f32 + 1.0).collect();
        let masked = relu_gradient(&dy, &relu, planes);
        for ((&m, &g), &r) in masked.iter().zip(&dy).zip(&relu) {
            assert_eq!(m, if r > 0.0 { g } else { 0.0 });
        }
        x[3] = f32::NAN;
        let (with_nan, _, _) = forward(&x, planes, &gamma, &beta, 1e-5, Activation::Relu);
        assert!(with_nan[3].is_nan());
        let one = Planes {
            batch: 1,
            channels: 1,
            spatial: 1,
        };
        assert_eq!(relu_gradient(&[2.0], &[f32::NAN], one)[0], 2.0);
    }
}
