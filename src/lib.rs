//! # supcon
//!
//! Supervised Contrastive Learning (Khosla et al., NeurIPS 2020) and SimCLR on
//! [Burn](https://burn.dev). This facade re-exports the member crates, so that one dependency
//! brings all of them; each is also usable alone.
//!
//! | module | crate | what |
//! | --- | --- | --- |
//! | [`loss`] | `supcon-loss` | SupCon (`L_out`, `L_in`, denominator modes), NT-Xent, triplet, N-pairs, cross-entropy |
//! | [`data`] | `supcon-data` | IDX, CIFAR and image-folder datasets, the embedded MNIST, seeded splits, batches |
//! | [`augment`] | `supcon-augment` | batched view augmentation on the device |
//! | [`encoder`] | `supcon-encoder` | ResNet-18/34/50/101 as the reference builds them, a small CNN |
//! | [`head`] | `supcon-head` | projection heads, the SupCon model, classifiers, checkpoint import and export |
//!
//! ```
//! use burn::prelude::*;
//! use supcon::loss::{Positives, SupConLossConfig};
//!
//! let device = Device::flex();
//! let features = Tensor::<3>::from_floats([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, -1.0]]], &device);
//! let loss = SupConLossConfig::new().init().forward(features, Positives::SameImage);
//! assert!(loss.into_scalar::<f32>().is_finite());
//! ```

pub use supcon_augment as augment;
pub use supcon_data as data;
pub use supcon_encoder as encoder;
pub use supcon_head as head;
pub use supcon_loss as loss;
