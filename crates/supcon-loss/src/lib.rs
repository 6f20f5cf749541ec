//! Contrastive losses for [Burn](https://burn.dev): the supervised contrastive loss of Khosla et
//! al. (NeurIPS 2020), SimCLR's NT-Xent, and the triplet and N-pairs losses that the SupCon paper
//! compares against.
//!
//! Every loss takes features as `[batch, views, dim]` (views of one image are rows of the same
//! batch index) and states which pairs are positive with [`Positives`]. Features are used as
//! given: L2-normalise them first (the projection heads of `supcon-head` do) unless a loss says
//! otherwise. An encoder run on augmented views gives `[views * batch, dim]`, view by view:
//! [`by_image`] turns that into `[batch, views, dim]`.
//!
//! The losses are Burn [`Module`](burn::module::Module)s without parameters, so they can be
//! fields of a model's `#[derive(Module)]` struct. Their configuration is checked once, by
//! `init` (which panics naming the parameter, as Burn's configs do) or `try_init` (which returns
//! a [`LossError`]). `forward` panics with a clear message on input it cannot use, as Burn's
//! losses do; `try_forward` returns the [`LossError`] instead.
//!
//! Every loss computes in float32 ([`LOSS_DTYPE`]) whatever the device's
//! float type: on a device configured for f16 or bf16 (Burn's `Device::configure`), the
//! features are cast up, the value is float32, and the gradient flows back to the features in
//! their own type. The exponentials and sums over thousands of logits stay exact that way.
//!
//! | loss | formula | reference |
//! | --- | --- | --- |
//! | [`SupConLoss`] | Eq. 2 (`L_out`) or Eq. 3 (`L_in`) of the paper, three denominator modes | HobbitLong/SupContrast `losses.py`, google-research `supcon/losses.py` |
//! | [`SimClrLoss`] | NT-Xent over two views, cosine similarity | Chen et al. 2020 |
//! | [`TripletLoss`] | `max(0, d(a,p) - d(a,n) + margin)` over all valid triplets | Schroff et al. 2015 |
//! | [`NPairsLoss`] | `log(1 + sum_j exp(a_i.p_j - a_i.p_i))` | Sohn 2016 |
//! | [`cross_entropy`] | Burn's own `CrossEntropyLoss`, re-exported for the baseline | |
//!
//! ```
//! use burn::prelude::*;
//! use supcon_loss::{ContrastMode, Positives, SupConLossConfig};
//!
//! let device = Device::flex();
//! // Two samples, two views each, unit vectors in R^3.
//! let features = Tensor::<3>::from_floats(
//!     [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]],
//!     &device,
//! );
//! let labels = Tensor::<1, Int>::from_ints([3, 7], &device);
//! let loss = SupConLossConfig::new()
//!     .with_temperature(0.1)
//!     .with_base_temperature(0.07)
//!     .with_contrast_mode(ContrastMode::All)
//!     .init();
//! let value = loss.forward(features.clone(), Positives::Labels(labels)); // shape [1]
//! assert_eq!(value.dims(), [1]);
//!
//! // Where the input comes from a user, ask for an error instead of a panic:
//! let one_label = Tensor::<1, Int>::from_ints([3], &device);
//! assert!(loss.try_forward(features, Positives::Labels(one_label)).is_err());
//! ```
//!
//! With an encoder and augmented views (`views` `[2 * B, C, H, W]`, view by view):
//!
//! ```text
//! let z = model.forward(views);                           // [2 * B, D], view by view
//! let loss = supcon.forward(by_image(z, 2), Positives::Labels(labels));
//! ```

mod error;
mod host_rows;
mod layout;
mod masked;
mod npairs;
mod positives;
mod row_blocks;
mod simclr;
mod supcon;
mod triplet;

pub mod cross_entropy;

/// The float type every loss here computes in, whatever the features' type.
pub const LOSS_DTYPE: burn::tensor::FloatDType = burn::tensor::FloatDType::F32;

pub use error::LossError;
pub use layout::by_image;
pub use npairs::{NPairsLoss, NPairsLossConfig};
pub use positives::Positives;
pub use simclr::{SimClrLoss, SimClrLossConfig};
pub use supcon::{ContrastMode, DenominatorMode, SummationLocation, SupConLoss, SupConLossConfig};
pub use triplet::{TripletDistance, TripletLoss, TripletLossConfig};
