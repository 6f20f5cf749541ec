//! View augmentation for contrastive learning, done for a whole batch at once as Burn tensor
//! operations on the batch's own device, so that augmentation never starves a GPU.
//!
//! Random parameters are drawn per sample on the host from a seeded ChaCha8 generator, then
//! applied as tensor operations: a seed gives the same views on every backend.
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
//! let mut pipeline = ViewPipeline::new(config, 42);
//! let views = pipeline.views(images, 2)?; // [2 * B, C, H, W]: all first views, then all second
//! assert_eq!(views.dims(), [16, 3, 32, 32]);
//! # Ok::<(), supcon_augment::AugmentError>(())
//! ```

mod config;
mod error;
pub mod ops;
mod params;
mod pipeline;

pub use config::{BlurConfig, ColorJitterConfig, CropConfig, ViewPipelineConfig};
pub use error::AugmentError;
pub use params::{CropBox, JitterParams, SampleParams, sample_crop};
pub use pipeline::ViewPipeline;
