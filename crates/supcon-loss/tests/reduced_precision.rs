//! The losses on a device whose float type is f16 (Burn's `Device::configure`): they compute in
//! float32 (`LOSS_DTYPE`), so the value equals a float64 evaluation of the f16 features to
//! float32's accuracy, and the gradient comes back in f16.
//!
//! A device's float type is set once per process, before its first tensor: this file is its own
//! test binary and every test here uses the f16 device.

use std::sync::Once;

use burn::prelude::*;
use burn::tensor::{DType, DeviceConfig, FloatDType};
mod common;

use common::{Lcg, supcon_reference};
use supcon_loss::{
    LOSS_DTYPE, NPairsLossConfig, Positives, SimClrLossConfig, SupConLossConfig, TripletLossConfig,
};

/// The flex device computing in f16 (configured on first use), with autodiff.
fn device() -> Device {
    static CONFIGURE: Once = Once::new();
    let mut device = Device::flex();
    CONFIGURE.call_once(|| {
        device
            .configure(DeviceConfig::default().float_dtype(FloatDType::F16))
            .expect("flex supports f16");
    });
    assert_eq!(device.settings().float_dtype, FloatDType::F16);
    device.autodiff()
}

/// `[batch][views][dim]` random vectors of norm `norm`, as an f16 tensor, and the f16 values
/// read back (the numbers the loss actually gets).
fn features(
    seed: u64,
    [batch, views, dim]: [usize; 3],
    norm: f64,
) -> (Tensor<3>, Vec<Vec<Vec<f64>>>) {
    let rows: Vec<Vec<Vec<f64>>> = Lcg(seed)
        .unit_features(batch, views, dim)
        .into_iter()
        .map(|sample| {
            sample
                .into_iter()
                .map(|row| row.into_iter().map(|x| x * norm).collect())
                .collect()
        })
        .collect();
    let flat: Vec<f32> = rows.iter().flatten().flatten().map(|&x| x as f32).collect();
    let tensor = Tensor::<3>::from_data(TensorData::new(flat, [batch, views, dim]), &device());
    assert_eq!(tensor.dtype(), DType::F16);
    let host = tensor.clone().into_data().try_into_vec_as::<f64>().unwrap();
    let host = host
        .chunks(views * dim)
        .map(|sample| sample.chunks(dim).map(<[f64]>::to_vec).collect())
        .collect();
    (tensor, host)
}

/// The float64 SupCon loss of `x` with `labels` (`None`: SimCLR's positives, the image's own
/// other views); rows are view-major, so row `r` is image `r % batch`.
fn reference(x: &[Vec<Vec<f64>>], labels: Option<&[i64]>, temperature: f64, base: f64) -> f64 {
    let batch = x.len();
    supcon_reference(x, &[], temperature, base, |a, c| match labels {
        Some(l) => l[a % batch] == l[c % batch],
        None => a % batch == c % batch,
    })
}

fn labels(values: &[i64]) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &device())
}

fn scalar(value: Tensor<1>) -> f64 {
    assert_eq!(value.dtype(), DType::F32, "the loss's value is float32");
    value.into_data().try_into_vec::<f32>().unwrap()[0] as f64
}

/// Features of norm 8 at temperature 0.05: logits up to 1,280, which f16 holds only to steps
/// of 0.5-1 (and its dot products lose more). In float32 the loss matches the float64
/// evaluation of the same f16 inputs to 1e-5.
#[test]
fn supcon_on_f16_features_computes_in_float32() {
    let shape = [6, 2, 16];
    let (features, host) = features(1, shape, 8.0);
    let label_values = [0, 1, 0, 2, 1, 2];
    let loss = SupConLossConfig::new()
        .with_temperature(0.05)
        .with_base_temperature(0.07)
        .init();
    let features = features.require_grad();
    let value = loss.forward(features.clone(), Positives::Labels(labels(&label_values)));
    let grads = value.backward();
    let got = scalar(value);
    let want = reference(&host, Some(&label_values), 0.05, 0.07);
    assert!(
        (got - want).abs() <= 1e-5 * want.abs() + 1e-5,
        "got {got}, want {want}"
    );
    let gradient = features.grad(&grads).expect("a gradient for the features");
    assert_eq!(
        gradient.dtype(),
        DType::F16,
        "the gradient is in the features' type"
    );

    // The gradient against central differences of the float64 reference, to f16's accuracy.
    let gradient = gradient.into_data().try_into_vec_as::<f64>().unwrap();
    let [_, views, dim] = shape;
    let h = 1e-4;
    let numeric: Vec<f64> = (0..gradient.len())
        .map(|k| {
            let (b, v, d) = (k / (views * dim), k / dim % views, k % dim);
            let mut plus = host.clone();
            let mut minus = host.clone();
            plus[b][v][d] += h;
            minus[b][v][d] -= h;
            (reference(&plus, Some(&label_values), 0.05, 0.07)
                - reference(&minus, Some(&label_values), 0.05, 0.07))
                / (2.0 * h)
        })
        .collect();
    let scale = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (k, (g, n)) in gradient.iter().zip(&numeric).enumerate() {
        assert!(
            (g - n).abs() <= 2e-3 * scale,
            "gradient[{k}]: got {g}, want {n} (largest {scale})"
        );
    }
}

/// SimCLR's features are normalised in float32: the squares of f16 features of norm 300 would
/// overflow f16 (65,504) and give NaN.
#[test]
fn simclr_normalises_f16_features_in_float32() {
    let shape = [4, 2, 8];
    let (features, _) = features(2, shape, 300.0);
    let view_a = features.clone().narrow(1, 0, 1).reshape([4, 8]);
    let view_b = features.narrow(1, 1, 1).reshape([4, 8]);
    let got = scalar(SimClrLossConfig::new().init().forward(view_a, view_b));
    // The reference on the same directions at unit norm.
    let (_, unit) = self::features(2, shape, 1.0);
    let want = reference(&unit, None, 0.5, 0.5);
    assert!(
        (got - want).abs() <= 2e-3 * want.abs(),
        "got {got}, want {want}"
    );
}

/// A queue of f16 keys joins the float32 computation.
#[test]
fn memory_of_f16_keys_joins_the_float32_loss() {
    let (features, _) = features(3, [4, 2, 8], 1.0);
    let (memory, _) = self::features(4, [5, 1, 8], 1.0);
    let memory = memory.reshape([5, 8]);
    let loss = SupConLossConfig::new().with_temperature(0.1).init();
    let value = loss.forward_with_memory(
        features,
        Positives::Labels(labels(&[0, 1, 0, 1])),
        memory,
        Some(labels(&[0, 1, 2, 0, 1])),
    );
    assert!(scalar(value).is_finite());
}

/// The triplet and N-pairs losses take f16 features too.
#[test]
fn triplet_and_npairs_take_f16_features() {
    let (features, _) = features(5, [4, 2, 8], 1.0);
    let positives = || Positives::Labels(labels(&[0, 1, 0, 1]));
    let triplet = TripletLossConfig::new().init();
    assert!(scalar(triplet.forward(features.clone(), positives())).is_finite());
    let npairs = NPairsLossConfig::new().init();
    assert!(scalar(npairs.forward(features, positives())).is_finite());
    assert_eq!(LOSS_DTYPE, FloatDType::F32);
}
