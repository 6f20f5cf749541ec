//! Contrastive losses for [Burn](https://burn.dev): the supervised contrastive loss of Khosla et
//! al. (NeurIPS 2020), SimCLR's NT-Xent, and the triplet and N-pairs losses that the SupCon paper
//! compares against.
//!
//! Every loss takes features as `[batch, views, dim]` (views of one image are rows of the same
//! batch index) and states which pairs are positive with [`Positives`]. Features are used as
//! given: L2-normalise them first (the projection heads of `supcon-head` do) unless a loss says
//! otherwise.
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
//! let value = loss.forward(features, Positives::Labels(labels))?;
//! assert_eq!(value.dims(), [1]);
//! # Ok::<(), supcon_loss::LossError>(())
//! ```

mod error;
mod masked;
mod npairs;
mod positives;
mod simclr;
mod supcon;
mod triplet;

pub mod cross_entropy;

pub use error::LossError;
pub use npairs::{NPairsLoss, NPairsLossConfig};
pub use positives::Positives;
pub use simclr::{SimClrLoss, SimClrLossConfig};
pub use supcon::{ContrastMode, DenominatorMode, SummationLocation, SupConLoss, SupConLossConfig};
pub use triplet::{TripletDistance, TripletLoss, TripletLossConfig};
