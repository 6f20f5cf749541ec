//! The ResNet of SupContrast's `resnet_big.py`.

use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

use crate::conv::conv2d;
use crate::norm::batch_norm_relu;

use crate::block::{conv, new_batch_norm};
use crate::{Architecture, BasicBlock, Bottleneck, EncoderConfig, ResidualBlock, Stem};

/// A ResNet: stem, four stages of residual blocks (64, 128, 256, 512 planes; strides 1, 2, 2,
/// 2), global average pooling. Field names follow the reference's so that its checkpoints map
/// key for key (`conv1`, `bn1`, `layer1.0.conv1`, ...).
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution.
    pub conv1: Conv2d,
    /// Stem BatchNorm.
    pub bn1: BatchNorm,
    /// Max-pool of the ImageNet stem (`None` for the CIFAR stem).
    pub maxpool: Option<MaxPool2d>,
    /// Stage 1, 64 planes.
    pub layer1: Vec<ResidualBlock>,
    /// Stage 2, 128 planes.
    pub layer2: Vec<ResidualBlock>,
    /// Stage 3, 256 planes.
    pub layer3: Vec<ResidualBlock>,
    /// Stage 4, 512 planes.
    pub layer4: Vec<ResidualBlock>,
    width: usize,
}

impl ResNet {
    pub(crate) fn new(architecture: Architecture, config: &EncoderConfig, device: &Device) -> Self {
        let (bottleneck, blocks) = architecture
            .resnet_layout()
            .expect("the small CNN is not a ResNet");
        let (conv1, maxpool) = match config.stem {
            Stem::Cifar => (conv([config.in_channels, 64], 3, 1, 1, device), None),
            Stem::ImageNet => (
                conv([config.in_channels, 64], 7, 2, 3, device),
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
            ),
        };
        let expansion = if bottleneck {
            Bottleneck::EXPANSION
        } else {
            BasicBlock::EXPANSION
        };
        let mut in_planes = 64;
        let mut stage = |planes: usize, count: usize, stride: usize| -> Vec<ResidualBlock> {
            (0..count)
                .map(|i| {
                    let stride = if i == 0 { stride } else { 1 };
                    let zero = config.zero_init_residual;
                    let block = if bottleneck {
                        ResidualBlock::Bottleneck(Bottleneck::new(
                            in_planes, planes, stride, zero, device,
                        ))
                    } else {
                        ResidualBlock::Basic(BasicBlock::new(
                            in_planes, planes, stride, zero, device,
                        ))
                    };
                    in_planes = planes * expansion;
                    block
                })
                .collect()
        };
        let layer1 = stage(64, blocks[0], 1);
        let layer2 = stage(128, blocks[1], 2);
        let layer3 = stage(256, blocks[2], 2);
        let layer4 = stage(512, blocks[3], 2);
        Self {
            conv1,
            bn1: new_batch_norm(64, false, device),
            maxpool,
            layer1,
            layer2,
            layer3,
            layer4,
            width: 512 * expansion,
        }
    }

    /// Features `[B, 512]` or `[B, 2048]` of images `[B, C, H, W]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = batch_norm_relu(&self.bn1, conv2d(&self.conv1, images));
        if let Some(pool) = &self.maxpool {
            x = pool.forward(x);
        }
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        x.mean_dims(&[2, 3]).reshape([batch, channels])
    }

    /// 512 (BasicBlock) or 2048 (Bottleneck).
    pub fn width(&self) -> usize {
        self.width
    }
}
