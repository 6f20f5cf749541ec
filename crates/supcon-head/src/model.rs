//! The SupCon model: encoder + projection head.

use burn::prelude::*;
use supcon_encoder::{Encoder, EncoderConfig, ImageEncoder};

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
///
/// The encoder is any [`ImageEncoder`], this crate's [`Encoder`] by default; build one around
/// your own backbone with [`SupConModel::new`]. Run on augmented views (`[V * B, C, H, W]`, view
/// by view), [`forward`](Self::forward) gives `[V * B, feat_dim]` in the same order:
/// `supcon_loss::by_image` makes the loss's `[B, V, feat_dim]` of it.
#[derive(Module, Debug)]
pub struct SupConModel<E: ImageEncoder = Encoder> {
    /// The encoder.
    pub encoder: E,
    /// The projection head.
    pub head: ProjectionHead,
}

impl<E: ImageEncoder> SupConModel<E> {
    /// A model of `encoder` and `head`; the head's input width must be the encoder's
    /// ([`ProjectionHeadConfig::new`]`(encoder.width())`).
    ///
    /// # Panics
    ///
    /// If the widths differ.
    pub fn new(encoder: E, head: ProjectionHead) -> Self {
        assert_eq!(
            head.in_width(),
            encoder.width(),
            "SupConModel: the head takes {} features, the encoder gives {}",
            head.in_width(),
            encoder.width()
        );
        Self { encoder, head }
    }

    /// Unit-norm projections `[B, feat_dim]` of images `[B, C, H, W]`, for the loss.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.encoder.forward(images))
    }

    /// Encoder features `[B, width]`, for evaluation (the head is dropped).
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        self.encoder.forward(images)
    }
}
