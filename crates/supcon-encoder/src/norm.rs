//! BatchNorm with PyTorch's training semantics on Burn's `BatchNorm` module.
//!
//! In training mode both normalise with the batch mean and the biased batch variance, but
//! PyTorch updates `running_var` with the *unbiased* variance (times `n / (n - 1)`, `n` the
//! values per channel) and Burn 0.22 with the biased one, so evaluation after training would
//! drift from the reference. [`batch_norm`] applies Burn's module with PyTorch's update; the
//! parameters stay Burn's `BatchNorm`, so checkpoints map as before.

use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::activation::relu;

#[cfg(feature = "flex")]
use crate::host::Activation;

/// `norm` applied to `x` (`[batch, channels, ...]`) as PyTorch's `BatchNorm` would: batch
/// statistics and a running-statistics update with the unbiased variance in training mode (an
/// autodiff device and the module's training flag on), running statistics otherwise. In
/// training on a flex device with this crate's `flex` feature, the normalisation and its
/// backward are one operation each of this crate (two passes over the data each way) instead of
/// Burn's composition of tensor operations; elsewhere it is Burn's `batch_norm_train`.
pub fn batch_norm<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    normalise(norm, x, false)
}

/// `relu(batch_norm(norm, x))`, with the ReLU computed inside the normalisation's operation in
/// training on flex (this crate's `flex` feature): no pass of its own in the forward, and in
/// the backward the gradient masked where the output is not above zero, as Burn's ReLU does.
///
/// ```
/// use burn::nn::BatchNormConfig;
/// use burn::prelude::*;
/// use burn::tensor::activation::relu;
/// use supcon_encoder::norm::{batch_norm, batch_norm_relu};
///
/// let device = Device::flex().autodiff();
/// let norm = BatchNormConfig::new(3).init(&device);
/// let x = Tensor::<4>::random([2, 3, 4, 4], burn::tensor::Distribution::Default, &device);
/// let fused = batch_norm_relu(&norm, x.clone());
/// let apart = relu(batch_norm(&norm, x));
/// fused.into_data().assert_approx_eq::<f32>(&apart.into_data(), Default::default());
/// ```
pub fn batch_norm_relu<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    normalise(norm, x, true)
}

/// [`batch_norm`], followed by a ReLU where `then_relu`.
fn normalise<const D: usize>(norm: &BatchNorm, x: Tensor<D>, then_relu: bool) -> Tensor<D> {
    let after = |y: Tensor<D>| if then_relu { relu(y) } else { y };
    if !(x.device().is_autodiff() && norm.training.is_enabled()) {
        return after(norm.forward(x));
    }
    let shape = x.dims();
    let per_channel = shape.iter().product::<usize>() / shape[1];
    let correction = if per_channel > 1 {
        per_channel as f64 / (per_channel - 1) as f64
    } else {
        1.0
    };
    let device = x.device();
    let (gamma, beta) = (norm.gamma.val(), norm.beta.val());
    #[cfg(feature = "flex")]
    let fused = {
        let activation = if then_relu {
            Activation::Relu
        } else {
            Activation::Identity
        };
        crate::host::fused_batch_norm_train(&x, &gamma, &beta, norm.epsilon, activation)
    };
    #[cfg(not(feature = "flex"))]
    let fused = None;
    let (output, mean, variance) = fused.unwrap_or_else(|| {
        let result = burn::tensor::module::batch_norm_train(x, gamma, beta, norm.epsilon);
        (after(result.output), result.mean, result.variance)
    });
    let momentum = norm.momentum;
    let running_mean = norm
        .running_mean
        .value_sync()
        .to_device(&device)
        .mul_scalar(1.0 - momentum)
        + mean.detach().mul_scalar(momentum);
    let running_var = norm
        .running_var
        .value_sync()
        .to_device(&device)
        .mul_scalar(1.0 - momentum)
        + variance.detach().mul_scalar(momentum * correction);
    norm.running_mean.update(running_mean.detach());
    norm.running_var.update(running_var.detach());
    output
}
