//! View augmentation for contrastive learning, done for a whole batch at once as Burn tensor
//! operations on the batch's own device, so that augmentation never starves a GPU.
//!
//! Random parameters are drawn per sample on the host from ChaCha8 seeded by each call's seed,
//! then applied as tensor operations: a seed gives the same views on every backend, on any
//! thread, whatever was drawn before. Views come view by view (`[V * B, C, H, W]`);
//! `supcon_loss::by_image` turns an encoder's output of them into the losses' `[B, V, dim]`.
//!
//! | step | as in | batched as |
//! | --- | --- | --- |
//! | [`RandomResizedCrop`](CropConfig) | torchvision's parameter sampling: scale (0.2, 1), ratio (3/4, 4/3), ten attempts then a central crop | two batched matrix products with per-sample bilinear interpolation matrices (`align_corners = False`, clamped), views made from the batch without copying it |
//! | horizontal flip (p 0.5) | | folded into the same matrices |
//! | [`ColorJitter`](ColorJitterConfig) (0.4, 0.4, 0.4, 0.1, p 0.8) | torchvision's definitions, random order, hue in HSV | elementwise with per-sample factors |
//! | RandomGrayscale (p 0.2) | ITU-R 601 luma weights | elementwise mask |
//! | Gaussian blur (SimCLR, off by default) | sigma in (0.1, 2), kernel 10% of the size, reflect padding | grouped separable convolution |
//! | normalisation | per-channel mean and std | elementwise |
//!
//! Single-channel images skip saturation and hue (grayscale is a no-op on them).
//!
//! ```
//! use burn::prelude::*;
//! use supcon_augment::{ViewPipeline, ViewPipelineConfig};
//!
//! let device = Device::flex();
//! let images = Tensor::<4>::ones([8, 3, 32, 32], &device).mul_scalar(0.5); // [B, C, H, W] in [0, 1]
//! let config = ViewPipelineConfig::supcon(vec![0.4914, 0.4822, 0.4465], vec![0.2023, 0.1994, 0.2010]);
//! let pipeline = ViewPipeline::new(config);
//! let seed = 42; // the views are a function of the seed alone
//! let views = pipeline.views(images, 2, seed)?; // [2 * B, C, H, W]: all first views, then all second
//! assert_eq!(views.dims(), [16, 3, 32, 32]);
//! # Ok::<(), supcon_augment::AugmentError>(())
//! ```

mod batcher;
mod config;
mod error;
pub mod ops;
mod params;
mod pipeline;

pub use batcher::{ViewBatch, ViewBatcher};
pub use config::{BlurConfig, ColorJitterConfig, CropConfig, ViewPipelineConfig};
pub use error::AugmentError;
pub use params::{CropBox, JitterParams, SampleParams, sample_crop};
pub use pipeline::{ViewPipeline, mix_seed};
