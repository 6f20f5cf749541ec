//! The linear classifier of linear evaluation and the cross-entropy baseline network.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use supcon_encoder::{Encoder, EncoderConfig, ImageEncoder};

/// Configuration of a [`LinearClassifier`].
#[derive(Config, Debug)]
pub struct LinearClassifierConfig {
    /// Width of the encoder features.
    pub width: usize,
    /// Number of classes.
    pub num_classes: usize,
}

impl LinearClassifierConfig {
    /// Builds the classifier.
    pub fn init(&self, device: &Device) -> LinearClassifier {
        LinearClassifier {
            fc: LinearConfig::new(self.width, self.num_classes).init(device),
        }
    }
}

/// One Linear on encoder features (the reference's `LinearClassifier`).
#[derive(Module, Debug)]
pub struct LinearClassifier {
    /// width -> classes.
    pub fc: Linear,
}

impl LinearClassifier {
    /// Logits `[B, classes]` of features `[B, width]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }
}

/// Configuration of a [`CrossEntropyNet`] (the reference's `SupCEResNet(name, num_classes)`).
#[derive(Config, Debug)]
pub struct CrossEntropyNetConfig {
    /// The encoder.
    pub encoder: EncoderConfig,
    /// Number of classes.
    pub num_classes: usize,
}

impl CrossEntropyNetConfig {
    /// Builds the network.
    pub fn init(&self, device: &Device) -> CrossEntropyNet {
        CrossEntropyNet::new(self.encoder.init(device), self.num_classes, device)
    }
}

/// Encoder + Linear to the classes, trained with cross-entropy: the baseline. The encoder is
/// any [`ImageEncoder`], this crate's [`Encoder`] by default.
#[derive(Module, Debug)]
pub struct CrossEntropyNet<E: ImageEncoder = Encoder> {
    /// The encoder.
    pub encoder: E,
    /// width -> classes.
    pub fc: Linear,
}

impl<E: ImageEncoder> CrossEntropyNet<E> {
    /// `encoder` followed by a new Linear to `num_classes` logits on `device`.
    pub fn new(encoder: E, num_classes: usize, device: &Device) -> Self {
        let fc = LinearConfig::new(encoder.width(), num_classes).init(device);
        Self { encoder, fc }
    }

    /// Logits `[B, classes]` of images `[B, C, H, W]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.encoder.forward(images))
    }
}
