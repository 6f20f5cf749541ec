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

impl EncoderConfig {
    /// Builds the encoder on `device`, with the reference's initialisation.
    pub fn init(&self, device: &Device) -> Encoder {
        match self.architecture {
            Architecture::Small => Encoder::Small(SmallCnn::new(self.in_channels, device)),
            resnet => Encoder::ResNet(ResNet::new(resnet, self, device)),
        }
    }
}
