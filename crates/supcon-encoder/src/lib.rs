//! Encoders for contrastive learning: the ResNet family exactly as SupContrast's
//! `networks/resnet_big.py` builds it, and a small CNN that trains quickly on a CPU.
//!
//! | name | blocks | output width | notes |
//! | --- | --- | --- | --- |
//! | `resnet18` | BasicBlock [2, 2, 2, 2] | 512 | |
//! | `resnet34` | BasicBlock [3, 4, 6, 3] | 512 | |
//! | `resnet50` | Bottleneck [3, 4, 6, 3] | 2048 | |
//! | `resnet101` | Bottleneck [3, 4, 23, 3] | 2048 | |
//! | `small` | four 3x3 convolutions, 32-64-128-128 channels | 128 | for 28x28 digits on a CPU |
//!
//! The ResNets have the reference's CIFAR stem (3x3 convolution, stride 1, padding 1, no
//! max-pool), 1x1 convolution + BatchNorm shortcuts where the shape changes, adaptive average
//! pooling, Kaiming-normal (fan_out, ReLU gain) convolutions, BatchNorm weight 1 and bias 0, and
//! optionally a zero-initialised last BatchNorm in each residual branch. Beyond the reference:
//! an ImageNet stem (7x7 stride 2 + 3x3 max-pool) and any number of input channels.
//!
//! The cargo feature `flex` makes training on Burn's flex CPU backend faster: BatchNorm in
//! training mode (with the ReLU after it, [`norm::batch_norm_relu`]) and the convolutions'
//! forward, weight gradient and input gradient (products with the unfolded input, image by
//! image) run as kernels of this crate (a Burn backend extension with its own backward;
//! [`norm::batch_norm`], [`conv::conv2d`], [`conv::conv2d_x_backward`]), the
//! same results to float32 rounding. Other devices, and flex tensors in another float type, take
//! Burn's operations whether it is on or not.
//!
//! ```
//! use burn::prelude::*;
//! use supcon_encoder::{Architecture, EncoderConfig};
//!
//! let device = Device::flex();
//! let encoder = EncoderConfig::new(Architecture::ResNet18).with_in_channels(1).init(&device);
//! let features = encoder.forward(Tensor::<4>::zeros([2, 1, 28, 28], &device));
//! assert_eq!(features.dims(), [2, 512]);
//! assert_eq!(encoder.width(), 512);
//! # let by_name: Architecture = "resnet50".parse()?;
//! # assert_eq!(by_name.width(), 2048);
//! # Ok::<(), supcon_encoder::UnknownArchitecture>(())
//! ```

mod block;
mod config;
pub mod conv;
#[cfg(feature = "flex")]
mod host;
pub mod norm;
mod resnet;
mod small;

pub use block::{BasicBlock, Bottleneck, ResidualBlock, Shortcut};
pub use config::{Architecture, EncoderConfig, FeatureMaps, Stem, UnknownArchitecture};
pub use resnet::ResNet;
pub use small::SmallCnn;

use burn::prelude::*;

/// What a contrastive model needs of its backbone: features `[B, width]` of images
/// `[B, C, H, W]`, and the width. Implement it for your own `#[derive(Module)]` network to use
/// it in `supcon_head::SupConModel` or `CrossEntropyNet`; this crate's encoders implement it.
///
/// ```
/// use burn::nn::{Linear, LinearConfig};
/// use burn::prelude::*;
/// use supcon_encoder::ImageEncoder;
///
/// /// A backbone of one's own: flatten 1x8x8 images, one Linear to 16 features.
/// #[derive(Module, Debug)]
/// struct Flat {
///     fc: Linear,
/// }
///
/// impl ImageEncoder for Flat {
///     fn forward(&self, images: Tensor<4>) -> Tensor<2> {
///         self.fc.forward(images.flatten(1, 3))
///     }
///
///     fn width(&self) -> usize {
///         16
///     }
/// }
///
/// let device = Device::flex();
/// let encoder = Flat { fc: LinearConfig::new(64, 16).init(&device) };
/// let features = ImageEncoder::forward(&encoder, Tensor::<4>::zeros([2, 1, 8, 8], &device));
/// assert_eq!(features.dims(), [2, encoder.width()]);
/// ```
pub trait ImageEncoder: Module {
    /// Features `[B, width]` of images `[B, C, H, W]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;

    /// The width of the features.
    fn width(&self) -> usize;
}

/// Implements [`ImageEncoder`] through the type's inherent `forward` and `width`.
macro_rules! image_encoder {
    ($($type:ty),*) => {$(
        impl ImageEncoder for $type {
            fn forward(&self, images: Tensor<4>) -> Tensor<2> {
                <$type>::forward(self, images)
            }

            fn width(&self) -> usize {
                <$type>::width(self)
            }
        }
    )*};
}

image_encoder!(Encoder, ResNet, SmallCnn);

/// Any encoder of this crate: images `[B, C, H, W]` to features `[B, width]`.
// Modules are built once and moved rarely: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Encoder {
    /// A ResNet.
    ResNet(ResNet),
    /// The small CNN.
    Small(SmallCnn),
}

impl Encoder {
    /// Features `[B, width]` of images `[B, C, H, W]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Encoder::ResNet(net) => net.forward(images),
            Encoder::Small(net) => net.forward(images),
        }
    }

    /// The feature width (512, 2048 or 128).
    pub fn width(&self) -> usize {
        match self {
            Encoder::ResNet(net) => net.width(),
            Encoder::Small(net) => net.width(),
        }
    }
}
