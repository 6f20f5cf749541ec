//! The SupCon model: encoder + projection head.

use burn::prelude::*;
use supcon_encoder::{Encoder, EncoderConfig};

use crate::{HeadKind, ProjectionHead, ProjectionHeadConfig};

/// Configuration of a [`SupConModel`] (the reference's `SupConResNet(name, head, feat_dim)`).
#[derive(Config, Debug)]
pub struct SupConModelConfig {
    /// The encoder.
    pub encoder: EncoderConfig,
    /// `linear` or `mlp`.
    #[config(default = "HeadKind::Mlp")]
    pub head: HeadKind,
    /// Projection dimension.
    #[config(default = 128)]
    pub feat_dim: usize,
    /// BatchNorm inside the MLP head.
    #[config(default = false)]
    pub head_batch_norm: bool,
}

impl SupConModelConfig {
    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> SupConModel {
        let encoder = self.encoder.init(device);
        let head = ProjectionHeadConfig::new(encoder.width())
            .with_kind(self.head)
            .with_feat_dim(self.feat_dim)
            .with_batch_norm(self.head_batch_norm)
            .init(device);
        SupConModel { encoder, head }
    }
}

/// Encoder + projection head. Field names follow the reference's (`encoder.*`, `head.*`).
#[derive(Module, Debug)]
pub struct SupConModel {
    /// The encoder.
    pub encoder: Encoder,
    /// The projection head.
    pub head: ProjectionHead,
}

impl SupConModel {
    /// Unit-norm projections `[B, feat_dim]` of images `[B, C, H, W]`, for the loss.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.encoder.forward(images))
    }

    /// Encoder features `[B, width]`, for evaluation (the head is dropped).
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        self.encoder.forward(images)
    }
}
