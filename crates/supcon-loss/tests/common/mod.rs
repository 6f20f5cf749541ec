//! Helpers shared by the supcon-loss tests.
#![allow(dead_code)]

use burn::prelude::*;

/// The flex device with autodiff, so that every test can ask for gradients.
pub fn device() -> Device {
    Device::flex().autodiff()
}

/// A `[batch, views, dim]` tensor from nested rows.
pub fn features(rows: &[Vec<Vec<f64>>]) -> Tensor<3> {
    let (batch, views, dim) = (rows.len(), rows[0].len(), rows[0][0].len());
    let flat: Vec<f32> = rows.iter().flatten().flatten().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(flat, [batch, views, dim]), &device())
}

/// Integer labels `[batch]`.
pub fn labels(values: &[i64]) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &device())
}

/// A float mask `[batch, batch]`.
pub fn mask(rows: &[Vec<f64>]) -> Tensor<2> {
    let n = rows.len();
    let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(flat, [n, n]), &device())
}

/// The tensor's values as f64.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// The single value of a `[1]` tensor.
pub fn scalar(tensor: Tensor<1>) -> f64 {
    values(tensor)[0]
}

/// Asserts `|got - want| <= rtol * |want| + atol` elementwise, naming the first offender.
pub fn assert_close(got: &[f64], want: &[f64], rtol: f64, atol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (index, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite() && (g - w).abs() <= rtol * w.abs() + atol,
            "{what}[{index}]: got {g}, want {w} (|diff| {:.3e})",
            (g - w).abs()
        );
    }
}

/// Deterministic pseudo-random numbers in [-1, 1) (a 64-bit LCG), for inputs the tests make.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// `[batch][views][dim]` random unit vectors.
    pub fn unit_features(&mut self, batch: usize, views: usize, dim: usize) -> Vec<Vec<Vec<f64>>> {
        (0..batch)
            .map(|_| {
                (0..views)
                    .map(|_| {
                        let v: Vec<f64> = (0..dim).map(|_| self.next()).collect();
                        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                        v.into_iter().map(|x| x / norm).collect()
                    })
                    .collect()
            })
            .collect()
    }
}

/// `L_out` in float64, mean over anchors: anchors are the batch's views (view-major), the
/// contrast set is the batch's views then the memory's rows; `pos(a, c)` says which contrast
/// vectors are positives of anchor `a` (self excluded by the caller).
pub fn supcon_reference(
    batch: &[Vec<Vec<f64>>],
    memory: &[Vec<f64>],
    temperature: f64,
    base: f64,
    pos: impl Fn(usize, usize) -> bool,
) -> f64 {
    let (b, v) = (batch.len(), batch[0].len());
    let mut contrast: Vec<&Vec<f64>> = (0..v)
        .flat_map(|j| batch.iter().map(move |s| &s[j]))
        .collect();
    contrast.extend(memory.iter());
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    let mut total = 0.0;
    for a in 0..b * v {
        let logits: Vec<f64> = contrast
            .iter()
            .map(|c| dot(contrast[a], c) / temperature)
            .collect();
        // log-sum-exp over everything but the anchor, its maximum subtracted first.
        let max = (0..contrast.len())
            .filter(|&c| c != a)
            .map(|c| logits[c])
            .fold(f64::MIN, f64::max);
        let log_denominator = max
            + (0..contrast.len())
                .filter(|&c| c != a)
                .map(|c| (logits[c] - max).exp())
                .sum::<f64>()
                .ln();
        let positives: Vec<usize> = (0..contrast.len())
            .filter(|&c| c != a && pos(a, c))
            .collect();
        if positives.is_empty() {
            continue;
        }
        let mean: f64 = positives
            .iter()
            .map(|&p| logits[p] - log_denominator)
            .sum::<f64>()
            / positives.len() as f64;
        total += -(temperature / base) * mean;
    }
    total / (b * v) as f64
}
