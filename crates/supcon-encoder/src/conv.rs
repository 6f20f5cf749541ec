//! Convolutions as Burn's `Conv2d` computes them, with the output and both gradients as matrix
//! products on flex (this crate's `flex` feature; see `docs/cpu-profile.md`).

#[cfg(feature = "flex")]
use crate::host::ConvGradient::{Input, Weight};
#[cfg(feature = "flex")]
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;

/// `conv` applied to `x` `[batch, channels, height, width]`: the same result as
/// `conv.forward(x)`. On a flex device (with the `flex` feature) a float32, bias-free,
/// one-group convolution with explicit or no padding is one autodiff operation whose output and
/// weight gradient are products with the unfolded input; everything else is `conv.forward(x)`.
///
/// ```
/// use burn::nn::conv::Conv2dConfig;
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let conv = Conv2dConfig::new([3, 8], [3, 3]).with_bias(false).init(&device);
/// let x = Tensor::<4>::ones([2, 3, 9, 9], &device);
/// let y = supcon_encoder::conv::conv2d(&conv, x.clone());
/// assert_eq!(y.dims(), [2, 8, 7, 7]);
/// y.into_data().assert_approx_eq::<f32>(&conv.forward(x).into_data(), Default::default());
/// ```
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let (None, Some(padding)) = (&conv.bias, explicit_padding(&conv.padding)) {
        let options =
            ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
        if let Some(y) = crate::host::fused_conv2d(&x, &conv.weight.val(), &options) {
            return y;
        }
    }
    conv.forward(x)
}

/// `(begin, end)` padding per spatial dimension, for the paddings that do not depend on the
/// input's size (`Same` takes Burn's path).
#[cfg(feature = "flex")]
fn explicit_padding(padding: &PaddingConfig2d) -> Option<[(usize, usize); 2]> {
    match *padding {
        PaddingConfig2d::Valid => Some([(0, 0), (0, 0)]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([(top, bottom), (left, right)]),
        _ => None,
    }
}

/// The gradient of a convolution's weight, `[Co, Ci / groups, kh, kw]`, given its input `x`,
/// its `weight` and the gradient of its output: Burn's `conv2d_weight_backward`, computed as
/// products with the unfolded input, image by image, on flex (this crate's `flex` feature;
/// where [`conv2d`] takes its own path). The result is a constant, not differentiable again.
pub fn conv2d_weight_backward(
    x: Tensor<4>,
    weight: Tensor<4>,
    output_grad: Tensor<4>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let Some(grad) =
        crate::host::fused_conv2d_backward(Weight, &x, &weight, &output_grad, &options)
    {
        return grad;
    }
    burn::tensor::module::conv2d_weight_backward(x, weight, output_grad, options)
}

/// The gradient of a convolution's input, `[B, Ci, H, W]`, given its input `x` (for its shape),
/// its `weight` and the gradient of its output: Burn's `conv2d_x_backward` (a transposed
/// convolution), computed on flex (this crate's `flex` feature; where [`conv2d`] takes its own
/// path) as `w'^T dy'_b` image by image, folded back onto the input. The result is a constant,
/// not differentiable again.
///
/// ```
/// use burn::prelude::*;
/// use burn::tensor::ops::ConvOptions;
///
/// let device = Device::flex().autodiff();
/// let x = Tensor::<4>::ones([2, 3, 6, 6], &device).require_grad();
/// let weight = Tensor::<4>::ones([4, 3, 3, 3], &device);
/// let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
/// let y = burn::tensor::module::conv2d(x.clone(), weight.clone(), None, options.clone());
/// let expected = x.grad(&y.clone().sum().backward()).unwrap();
/// let dx = supcon_encoder::conv::conv2d_x_backward(x.detach(), weight, y.ones_like(), options);
/// dx.inner().into_data().assert_approx_eq::<f32>(&expected.into_data(), Default::default());
/// ```
pub fn conv2d_x_backward(
    x: Tensor<4>,
    weight: Tensor<4>,
    output_grad: Tensor<4>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let Some(grad) =
        crate::host::fused_conv2d_backward(Input, &x, &weight, &output_grad, &options)
    {
        return grad;
    }
    use burn::backend::ops::ModuleOps;
    Tensor::from_dispatch(burn::backend::Dispatch::conv2d_x_backward(
        x.into_dispatch(),
        weight.into_dispatch(),
        output_grad.into_dispatch(),
        options,
    ))
}
