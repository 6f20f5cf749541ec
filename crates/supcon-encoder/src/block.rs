//! Residual blocks: BasicBlock (ResNet-18/34) and Bottleneck (ResNet-50/101), with the
//! reference's projection shortcut.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::conv::conv2d;
use crate::norm::{batch_norm, batch_norm_relu};

/// A bias-free convolution with Kaiming-normal (fan_out, ReLU gain) weights, as the reference
/// initialises every convolution.
pub(crate) fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: 2f64.sqrt(),
            fan_out_only: true,
        })
        .init(device)
}

/// BatchNorm with weight 1 and bias 0, or weight 0 for the zero-initialised residual BatchNorm.
pub(crate) fn new_batch_norm(features: usize, zero: bool, device: &Device) -> BatchNorm {
    let mut norm = BatchNormConfig::new(features).init(device);
    if zero {
        norm.gamma = norm.gamma.map(|g| g.zeros_like());
    }
    norm
}

/// The projection shortcut: 1x1 convolution with the block's stride, then BatchNorm.
#[derive(Module, Debug)]
pub struct Shortcut {
    /// The 1x1 convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

impl Shortcut {
    fn new(channels: [usize; 2], stride: usize, device: &Device) -> Self {
        Self {
            conv: conv(channels, 1, stride, 0, device),
            bn: new_batch_norm(channels[1], false, device),
        }
    }

    /// `x` itself when there is no projection.
    fn apply(shortcut: &Option<Shortcut>, x: Tensor<4>) -> Tensor<4> {
        match shortcut {
            Some(s) => batch_norm(&s.bn, conv2d(&s.conv, x)),
            None => x,
        }
    }

    /// A projection when the stride or the channel count changes.
    fn needed(in_planes: usize, out_planes: usize, stride: usize, device: &Device) -> Option<Self> {
        (stride != 1 || in_planes != out_planes)
            .then(|| Self::new([in_planes, out_planes], stride, device))
    }
}

/// Two 3x3 convolutions (expansion 1).
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3x3, with the block's stride.
    pub conv1: Conv2d,
    /// BatchNorm after conv1.
    pub bn1: BatchNorm,
    /// 3x3, stride 1.
    pub conv2: Conv2d,
    /// BatchNorm after conv2 (the residual branch's last).
    pub bn2: BatchNorm,
    /// Projection shortcut, if the shape changes.
    pub shortcut: Option<Shortcut>,
}

impl BasicBlock {
    /// Output channels over `planes`.
    pub const EXPANSION: usize = 1;

    pub(crate) fn new(
        in_planes: usize,
        planes: usize,
        stride: usize,
        zero_init: bool,
        device: &Device,
    ) -> Self {
        Self {
            conv1: conv([in_planes, planes], 3, stride, 1, device),
            bn1: new_batch_norm(planes, false, device),
            conv2: conv([planes, planes], 3, 1, 1, device),
            bn2: new_batch_norm(planes, zero_init, device),
            shortcut: Shortcut::needed(in_planes, planes, stride, device),
        }
    }

    /// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = batch_norm_relu(&self.bn1, conv2d(&self.conv1, x.clone()));
        let out = batch_norm(&self.bn2, conv2d(&self.conv2, out));
        relu(out + Shortcut::apply(&self.shortcut, x))
    }
}

/// 1x1, 3x3 (with the stride), 1x1 to four times the planes (expansion 4).
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1 reduction.
    pub conv1: Conv2d,
    /// BatchNorm after conv1.
    pub bn1: BatchNorm,
    /// 3x3, with the block's stride.
    pub conv2: Conv2d,
    /// BatchNorm after conv2.
    pub bn2: BatchNorm,
    /// 1x1 expansion.
    pub conv3: Conv2d,
    /// BatchNorm after conv3 (the residual branch's last).
    pub bn3: BatchNorm,
    /// Projection shortcut, if the shape changes.
    pub shortcut: Option<Shortcut>,
}

impl Bottleneck {
    /// Output channels over `planes`.
    pub const EXPANSION: usize = 4;

    pub(crate) fn new(
        in_planes: usize,
        planes: usize,
        stride: usize,
        zero_init: bool,
        device: &Device,
    ) -> Self {
        let out = planes * Self::EXPANSION;
        Self {
            conv1: conv([in_planes, planes], 1, 1, 0, device),
            bn1: new_batch_norm(planes, false, device),
            conv2: conv([planes, planes], 3, stride, 1, device),
            bn2: new_batch_norm(planes, false, device),
            conv3: conv([planes, out], 1, 1, 0, device),
            bn3: new_batch_norm(out, zero_init, device),
            shortcut: Shortcut::needed(in_planes, out, stride, device),
        }
    }

    /// `relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = batch_norm_relu(&self.bn1, conv2d(&self.conv1, x.clone()));
        let out = batch_norm_relu(&self.bn2, conv2d(&self.conv2, out));
        let out = batch_norm(&self.bn3, conv2d(&self.conv3, out));
        relu(out + Shortcut::apply(&self.shortcut, x))
    }
}

/// Either block.
// Modules are built once and moved rarely: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResidualBlock {
    /// ResNet-18/34's.
    Basic(BasicBlock),
    /// ResNet-50/101's.
    Bottleneck(Bottleneck),
}

impl ResidualBlock {
    /// The block's output.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ResidualBlock::Basic(b) => b.forward(x),
            ResidualBlock::Bottleneck(b) => b.forward(x),
        }
    }
}
