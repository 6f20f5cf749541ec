//! Choosing an encoder by name.

use std::str::FromStr;

use burn::prelude::*;

use crate::{Encoder, ResNet, SmallCnn};

/// The architectures, by the names the reference's `--model` option uses; configurations
/// (JSON, TOML) hold the same names (the variant names of earlier versions are read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Architecture {
    /// `resnet18`: BasicBlock [2, 2, 2, 2], width 512.
    #[serde(rename = "resnet18", alias = "ResNet18")]
    ResNet18,
    /// `resnet34`: BasicBlock [3, 4, 6, 3], width 512.
    #[serde(rename = "resnet34", alias = "ResNet34")]
    ResNet34,
    /// `resnet50`: Bottleneck [3, 4, 6, 3], width 2048.
    #[serde(rename = "resnet50", alias = "ResNet50")]
    ResNet50,
    /// `resnet101`: Bottleneck [3, 4, 23, 3], width 2048.
    #[serde(rename = "resnet101", alias = "ResNet101")]
    ResNet101,
    /// `small`: the small CNN, width 128.
    #[serde(rename = "small", alias = "Small")]
    Small,
}

impl Config for Architecture {}

impl core::fmt::Display for Architecture {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Architecture {
    /// Every architecture, in the order of the table in the crate docs.
    pub const ALL: [Architecture; 5] = [
        Self::ResNet18,
        Self::ResNet34,
        Self::ResNet50,
        Self::ResNet101,
        Self::Small,
    ];

    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::ResNet18 => "resnet18",
            Self::ResNet34 => "resnet34",
            Self::ResNet50 => "resnet50",
            Self::ResNet101 => "resnet101",
            Self::Small => "small",
        }
    }

    /// A ResNet's layout: whether its blocks are bottlenecks, and the blocks of its four stages
    /// (`None` for `small`).
    pub(crate) fn resnet_layout(self) -> Option<(bool, [usize; 4])> {
        match self {
            Self::ResNet18 => Some((false, [2, 2, 2, 2])),
            Self::ResNet34 => Some((false, [3, 4, 6, 3])),
            Self::ResNet50 => Some((true, [3, 4, 6, 3])),
            Self::ResNet101 => Some((true, [3, 4, 23, 3])),
            Self::Small => None,
        }
    }

    /// The width of the features the encoder outputs.
    pub fn width(self) -> usize {
        match self {
            Self::ResNet18 | Self::ResNet34 => 512,
            Self::ResNet50 | Self::ResNet101 => 2048,
            Self::Small => crate::small::WIDTH,
        }
    }
}

/// A name that is not an architecture of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model `{0}`: expected one of resnet18, resnet34, resnet50, resnet101, small")]
pub struct UnknownArchitecture(pub String);

impl FromStr for Architecture {
    type Err = UnknownArchitecture;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownArchitecture(name.to_string()))
    }
}

/// The first layers of a ResNet.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Stem {
    /// The reference's, for 32x32 images: 3x3 convolution, stride 1, padding 1, no pooling.
    Cifar,
    /// torchvision's, for large images: 7x7 convolution, stride 2, padding 3, then 3x3 max-pool
    /// with stride 2.
    ImageNet,
}

/// Which encoder to build.
#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// The architecture.
    pub architecture: Architecture,
    /// Channels of the input images (3 for RGB, 1 for MNIST-like data).
    #[config(default = 3)]
    pub in_channels: usize,
    /// The ResNet stem (ignored by `small`).
    #[config(default = "Stem::Cifar")]
    pub stem: Stem,
    /// Initialise the last BatchNorm of every residual branch to zero, so that each block starts
    /// as the identity (the reference's `zero_init_residual`; ignored by `small`).
    #[config(default = false)]
    pub zero_init_residual: bool,
}

/// The feature maps one image makes on its way through an encoder, counted in values: what
/// sizes the memory of a forward pass ([`EncoderConfig::feature_maps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureMaps {
    /// The values of every convolution's output (and of the ImageNet stem's max-pool) together.
    /// A training step keeps at least these for its backward pass (each BatchNorm reads its
    /// convolution's output), per image.
    pub total: usize,
    /// The values of the largest of them: a pass without gradients holds at least this, per
    /// image, at its peak.
    pub largest: usize,
}

impl EncoderConfig {
    /// The [`FeatureMaps`] of one image of `height` x `width` pixels (any size from 1 up: every
    /// convolution pads). For the reference's ResNet-18 on 32x32 images, 614,400 values in all,
    /// the largest 65,536 (64 x 32 x 32); at 1,000 x 1,000 pixels, about a thousand times as
    /// many.
    ///
    /// ```
    /// use supcon_encoder::{Architecture, EncoderConfig};
    ///
    /// let maps = EncoderConfig::new(Architecture::ResNet18).feature_maps(32, 32);
    /// assert_eq!(maps.largest, 64 * 32 * 32);
    /// // 4 bytes a value in float32, for each image of a batch: at least 2.4 MB an image for a
    /// // training step.
    /// assert_eq!(maps.total, 614_400);
    /// ```
    pub fn feature_maps(&self, height: usize, width: usize) -> FeatureMaps {
        let mut maps = FeatureMaps {
            total: 0,
            largest: 0,
        };
        let mut add = |channels: usize, [h, w]: [usize; 2]| {
            let values = channels.saturating_mul(h).saturating_mul(w);
            maps.total = maps.total.saturating_add(values);
            maps.largest = maps.largest.max(values);
        };
        // The output side of a convolution or pooling (kernel <= side + 2 padding here).
        let out = |[h, w]: [usize; 2], kernel: usize, stride: usize, padding: usize| {
            [
                (h + 2 * padding - kernel) / stride + 1,
                (w + 2 * padding - kernel) / stride + 1,
            ]
        };
        let mut side = [height.max(1), width.max(1)];
        let Some((bottleneck, blocks)) = self.architecture.resnet_layout() else {
            for (channels, stride) in [(32, 1), (64, 2), (128, 2), (crate::small::WIDTH, 1)] {
                side = out(side, 3, stride, 1);
                add(channels, side);
            }
            return maps;
        };
        match self.stem {
            Stem::Cifar => {
                side = out(side, 3, 1, 1);
                add(64, side);
            }
            Stem::ImageNet => {
                side = out(side, 7, 2, 3);
                add(64, side);
                side = out(side, 3, 2, 1);
                add(64, side);
            }
        }
        let mut in_planes = 64;
        for (stage, (&count, planes)) in blocks.iter().zip([64, 128, 256, 512]).enumerate() {
            for block in 0..count {
                let stride = if block == 0 && stage > 0 { 2 } else { 1 };
                let next = out(side, 3, stride, 1);
                let out_planes = if bottleneck {
                    add(planes, side);
                    add(planes, next);
                    add(4 * planes, next);
                    4 * planes
                } else {
                    add(planes, next);
                    add(planes, next);
                    planes
                };
                if stride != 1 || in_planes != out_planes {
                    add(out_planes, next);
                }
                (side, in_planes) = (next, out_planes);
            }
        }
        maps
    }

    /// Builds the encoder on `device`, with the reference's initialisation.
    pub fn init(&self, device: &Device) -> Encoder {
        match self.architecture {
            Architecture::Small => Encoder::Small(SmallCnn::new(self.in_channels, device)),
            resnet => Encoder::ResNet(ResNet::new(resnet, self, device)),
        }
    }
}
