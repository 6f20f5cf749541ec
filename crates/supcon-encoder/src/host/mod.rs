//! Faster training on Burn's flex (CPU) backend, behind this crate's `flex` feature: BatchNorm
//! in two passes each way, with the ReLU that follows it where there is one ([`batch_norm`]),
//! and the convolution's forward and weight gradient as matrix products with the unfolded input
//! ([`conv`], [`unfold`]), where Burn 0.22 composes tensor operations or runs slower kernels.
//!
//! They are a Burn backend extension ([`HostKernels`], implemented for `Flex` and for
//! `Autodiff<Flex>` with its own backward steps); [`fused_batch_norm_train`] and
//! [`fused_conv2d`] take them for float32 tensors on a flex device and answer `None` elsewhere,
//! so the callers fall back to Burn's operations. The convolution's input gradient stays Burn's
//! (`conv2d_x_backward`).

mod autodiff;
mod batch_norm;
mod conv;
mod parallel;
mod unfold;

use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Backend, DispatchDevice, ExtensionType, Flex, TensorMetadata, backend_extension,
};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, TensorData};

pub(crate) use batch_norm::Activation;
use batch_norm::Planes;
use unfold::Geometry;

/// BatchNorm's training-mode output and the batch statistics it normalised with (`[channels]`,
/// the variance biased).
#[derive(ExtensionType)]
pub struct NormalisedBatch<B: Backend> {
    /// The normalised, scaled and shifted input.
    pub output: FloatTensor<B>,
    /// The per-channel mean of the input.
    pub mean: FloatTensor<B>,
    /// The per-channel biased variance of the input.
    pub variance: FloatTensor<B>,
}

/// The operations this module computes on the host for flex.
#[backend_extension(Flex, Autodiff)]
pub trait HostKernels: Backend {
    /// BatchNorm with the batch's statistics, then `activation`: `x` `[batch, channels, ...]`,
    /// `gamma` and `beta` `[channels]`.
    fn host_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Activation,
    ) -> NormalisedBatch<Self>;

    /// A bias-free convolution of one group, its output and both gradients as products with
    /// the unfolded input, image by image.
    fn host_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// The weight gradient of [`HostKernels::host_conv2d`] alone (not differentiable again).
    fn host_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// The input gradient of [`HostKernels::host_conv2d`] alone (not differentiable again).
    fn host_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

impl HostKernels for Flex {
    fn host_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        activation: Activation,
    ) -> NormalisedBatch<Self> {
        let shape = x.shape();
        let planes = planes(&shape);
        let x = x.to_contiguous();
        let (gamma, beta) = (gamma.to_contiguous(), beta.to_contiguous());
        let (output, mean, variance) = batch_norm::forward(
            f32s(&x),
            planes,
            f32s(&gamma),
            f32s(&beta),
            epsilon,
            activation,
        );
        NormalisedBatch {
            output: flex_tensor(output, shape),
            mean: flex_tensor(mean, Shape::new([planes.channels])),
            variance: flex_tensor(variance, Shape::new([planes.channels])),
        }
    }

    fn host_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        match Geometry::of_forward(&x.shape(), &weight.shape(), &options) {
            Some(geometry) => {
                let batch = x.shape()[0];
                conv::forward(x, weight, geometry, batch)
            }
            _ => Flex::conv2d(x, weight, None, options),
        }
    }

    fn host_conv2d_weight_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        conv2d_weight_backward(x, weight, output_grad, options)
    }

    fn host_conv2d_x_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        conv2d_x_backward(&x, weight, output_grad, &options)
    }
}

/// The gradients of [`HostKernels::host_batch_norm_train`] with respect to `x`, `gamma` and
/// `beta`; `relu_output` is the output where a ReLU followed.
fn batch_norm_backward(
    x: FlexTensor,
    output_grad: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    relu_output: Option<FlexTensor>,
) -> [FlexTensor; 3] {
    let shape = x.shape();
    let planes = planes(&shape);
    let x = x.to_contiguous();
    let output_grad = output_grad.to_contiguous();
    let masked = relu_output.map(|output| {
        let output = output.to_contiguous();
        batch_norm::relu_gradient(f32s(&output_grad), f32s(&output), planes)
    });
    let dy = masked.as_deref().unwrap_or(f32s(&output_grad));
    let (gamma, mean, variance) = (
        gamma.to_contiguous(),
        mean.to_contiguous(),
        variance.to_contiguous(),
    );
    let (dx, dgamma, dbeta) = batch_norm::backward(
        f32s(&x),
        dy,
        planes,
        f32s(&gamma),
        f32s(&mean),
        f32s(&variance),
        epsilon,
    );
    let channels = Shape::new([planes.channels]);
    [
        flex_tensor(dx, shape),
        flex_tensor(dgamma, channels.clone()),
        flex_tensor(dbeta, channels),
    ]
}

/// The input gradient of [`HostKernels::host_conv2d`] (`x` for its shape).
fn conv2d_x_backward(
    x: &FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let geometry = backward_geometry(x, &weight, &output_grad, options);
    conv::input_gradient(weight, output_grad, geometry, x.shape()[0])
}

/// The weight gradient of [`HostKernels::host_conv2d`].
fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    let geometry = backward_geometry(&x, &weight, &output_grad, &options);
    let batch = x.shape()[0];
    conv::weight_gradient(x, output_grad, geometry, batch)
}

/// The geometry of the convolution of `x` by `weight` whose output gradient is `output_grad`.
fn backward_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Geometry {
    let weight_shape = weight.shape();
    Geometry::new(
        &x.shape(),
        &output_grad.shape(),
        [weight_shape[2], weight_shape[3]],
        options,
    )
}

/// The kernels' view of a `[batch, channels, ...]` shape.
fn planes(shape: &Shape) -> Planes {
    let (batch, channels) = (shape[0], shape[1]);
    Planes {
        batch,
        channels,
        spatial: shape.num_elements() / (batch * channels),
    }
}

/// The float32 values of a contiguous flex tensor.
pub(super) fn f32s(tensor: &FlexTensor) -> &[f32] {
    tensor
        .as_slice::<f32>()
        .expect("a contiguous float32 flex tensor")
}

/// A flex tensor of `values` in `shape`.
pub(super) fn flex_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Whether `tensor` is float32 on a flex device, with or without autodiff.
fn on_flex<const D: usize>(tensor: &Tensor<D>) -> bool {
    tensor.dtype() == DType::F32
        && matches!(
            tensor.device().inner().as_dispatch(),
            DispatchDevice::Flex(_)
        )
}

/// `batch_norm_train`, then `activation`, through [`HostKernels`] when `x`, `gamma` and `beta`
/// are float32 on flex and no dimension is empty: `(output, mean, variance)`; `None` otherwise.
pub(crate) fn fused_batch_norm_train<const D: usize>(
    x: &Tensor<D>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    epsilon: f64,
    activation: Activation,
) -> Option<(Tensor<D>, Tensor<1>, Tensor<1>)> {
    if !(on_flex(x) && on_flex(gamma) && on_flex(beta)) || x.shape().num_elements() == 0 {
        return None;
    }
    let result = burn::backend::Dispatch::host_batch_norm_train(
        x.clone().into_dispatch(),
        gamma.clone().into_dispatch(),
        beta.clone().into_dispatch(),
        epsilon,
        activation,
    );
    Some((
        Tensor::from_dispatch(result.output),
        Tensor::from_dispatch(result.mean),
        Tensor::from_dispatch(result.variance),
    ))
}

/// The output shape of a one-group convolution of `x` by `weight` that the kernels can take:
/// both float32 on flex, the channels matching, no dimension of `x` empty and an output at
/// all; `None` otherwise (Burn's operation then runs, and reports any mismatch of shapes).
fn host_conv_output(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    options: &ConvOptions<2>,
) -> Option<[usize; 4]> {
    let [batch, channels, _, _] = x.dims();
    let fits = channels == weight.dims()[1]
        && options.groups == 1
        && x.shape().num_elements() > 0
        && on_flex(x)
        && on_flex(weight);
    if !fits {
        return None;
    }
    let geometry = Geometry::of_forward(&x.dims(), &weight.dims(), options)?;
    let [co, oh, ow] = geometry.output;
    Some([batch, co, oh, ow])
}

/// A bias-free, one-group convolution through [`HostKernels`] where [`host_conv_output`]
/// allows; `None` otherwise.
pub(crate) fn fused_conv2d(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    options: &ConvOptions<2>,
) -> Option<Tensor<4>> {
    host_conv_output(x, weight, options)?;
    let output = burn::backend::Dispatch::host_conv2d(
        x.clone().into_dispatch(),
        weight.clone().into_dispatch(),
        options.clone(),
    );
    Some(Tensor::from_dispatch(output))
}

/// Which gradient of a convolution [`fused_conv2d_backward`] computes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ConvGradient {
    /// With respect to the input, `[B, Ci, H, W]`.
    Input,
    /// With respect to the weight, `[Co, Ci, kh, kw]`.
    Weight,
}

/// A gradient of a one-group convolution through [`HostKernels`] where [`host_conv_output`]
/// allows and `output_grad`, float32 on flex, has the output's shape; `None` otherwise.
pub(crate) fn fused_conv2d_backward(
    which: ConvGradient,
    x: &Tensor<4>,
    weight: &Tensor<4>,
    output_grad: &Tensor<4>,
    options: &ConvOptions<2>,
) -> Option<Tensor<4>> {
    let output = host_conv_output(x, weight, options)?;
    if output_grad.dims() != output || !on_flex(output_grad) {
        return None;
    }
    let kernel = match which {
        ConvGradient::Input => burn::backend::Dispatch::host_conv2d_x_backward,
        ConvGradient::Weight => burn::backend::Dispatch::host_conv2d_weight_backward,
    };
    let grad = kernel(
        x.clone().into_dispatch(),
        weight.clone().into_dispatch(),
        output_grad.clone().into_dispatch(),
        options.clone(),
    );
    Some(Tensor::from_dispatch(grad))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels are taken where they apply, with and without autodiff, and not elsewhere.
    #[test]
    fn taken_on_float32_flex_only() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let x = Tensor::<4>::ones([2, 4, 3, 3], &device);
            let weight = Tensor::<4>::ones([6, 4, 3, 3], &device);
            let one_group = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
            assert!(fused_conv2d(&x, &weight, &one_group).is_some());
            let two_groups = ConvOptions::new([1, 1], [1, 1], [1, 1], 2);
            let grouped = Tensor::<4>::ones([6, 2, 3, 3], &device);
            assert!(fused_conv2d(&x, &grouped, &two_groups).is_none());
            let wrong_channels = Tensor::<4>::ones([6, 3, 3, 3], &device);
            assert!(fused_conv2d(&x, &wrong_channels, &one_group).is_none());
            let gamma = Tensor::<1>::ones([4], &device);
            let beta = Tensor::<1>::zeros([4], &device);
            assert!(fused_batch_norm_train(&x, &gamma, &beta, 1e-5, Activation::Relu).is_some());
            let output_grad = Tensor::<4>::ones([2, 6, 3, 3], &device);
            for which in [ConvGradient::Input, ConvGradient::Weight] {
                let grad = fused_conv2d_backward(which, &x, &weight, &output_grad, &one_group);
                assert!(grad.is_some());
            }
            let empty = Tensor::<4>::ones([0, 4, 3, 3], &device);
            let empty_grad = Tensor::<4>::ones([0, 6, 3, 3], &device);
            let wrong_grad = Tensor::<4>::ones([2, 6, 2, 3], &device);
            for which in [ConvGradient::Input, ConvGradient::Weight] {
                let empty = fused_conv2d_backward(which, &empty, &weight, &empty_grad, &one_group);
                assert!(empty.is_none());
                let wrong = fused_conv2d_backward(which, &x, &weight, &wrong_grad, &one_group);
                assert!(wrong.is_none());
            }
            let half = x.clone().cast(DType::F16);
            assert!(
                fused_batch_norm_train(&half, &gamma, &beta, 1e-5, Activation::Identity).is_none()
            );
        }
    }
}
