//! Heads and whole models for supervised contrastive learning, as SupContrast's
//! `networks/resnet_big.py` defines them.
//!
//! - [`ProjectionHead`]: `linear` (one Linear to `feat_dim`) or `mlp` (Linear width->width,
//!   ReLU, Linear width->feat_dim; optionally with BatchNorm after the hidden layer, as the
//!   google-research code offers), output L2-normalised.
//! - [`SupConModel`]: encoder + head (`SupConResNet`); `forward` gives normalised projections
//!   for the loss, `encode` the encoder features for evaluation.
//! - [`LinearClassifier`]: one Linear on frozen encoder features (`LinearClassifier`).
//! - [`CrossEntropyNet`]: encoder + Linear to the classes (`SupCEResNet`), the baseline.
//! - [`weights`]: the reference's checkpoints in, our models in and out (Burn's burnpack format
//!   and safetensors).
//!
//! ```
//! use burn::prelude::*;
//! use supcon_encoder::{Architecture, EncoderConfig};
//! use supcon_head::{HeadKind, SupConModelConfig};
//!
//! let device = Device::flex();
//! let model = SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(1))
//!     .with_head(HeadKind::Mlp)
//!     .with_feat_dim(64)
//!     .init(&device);
//! let z = model.forward(Tensor::<4>::ones([4, 1, 28, 28], &device));
//! assert_eq!(z.dims(), [4, 64]); // each row has unit norm
//! ```

mod classifier;
mod head;
mod model;
mod torch_pickle;
mod torch_zip;
pub mod weights;

pub use classifier::{
    CrossEntropyNet, CrossEntropyNetConfig, LinearClassifier, LinearClassifierConfig,
};
pub use head::{HeadKind, ProjectionHead, ProjectionHeadConfig, UnknownHeadKind, l2_normalize};
pub use model::{SupConModel, SupConModelConfig};
