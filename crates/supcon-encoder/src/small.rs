//! A small convolutional encoder that trains quickly on a CPU, for 28x28 digits.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::conv::conv2d;
use crate::norm::batch_norm_relu;

use crate::block::{conv, new_batch_norm};

/// Output width of [`SmallCnn`].
pub(crate) const WIDTH: usize = 128;

/// Four 3x3 convolution + BatchNorm + ReLU layers (32, 64, 128, 128 channels; strides 1, 2, 2,
/// 1), then global average pooling: `[B, C, 28, 28]` to `[B, 128]` in about 0.24 M
/// parameters.
#[derive(Module, Debug)]
pub struct SmallCnn {
    /// The convolutions.
    pub convs: Vec<Conv2d>,
    /// Their BatchNorms.
    pub norms: Vec<BatchNorm>,
}

impl SmallCnn {
    pub(crate) fn new(in_channels: usize, device: &Device) -> Self {
        let layers = [
            (in_channels, 32, 1),
            (32, 64, 2),
            (64, 128, 2),
            (128, WIDTH, 1),
        ];
        Self {
            convs: layers
                .iter()
                .map(|&(i, o, s)| conv([i, o], 3, s, 1, device))
                .collect(),
            norms: layers
                .iter()
                .map(|&(_, o, _)| new_batch_norm(o, false, device))
                .collect(),
        }
    }

    /// Features `[B, 128]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            x = batch_norm_relu(norm, conv2d(conv, x));
        }
        let [batch, channels, _, _] = x.dims();
        x.mean_dims(&[2, 3]).reshape([batch, channels])
    }

    /// 128.
    pub fn width(&self) -> usize {
        WIDTH
    }
}
