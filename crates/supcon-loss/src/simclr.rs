//! SimCLR's NT-Xent loss (normalised temperature-scaled cross entropy), Chen et al., ICML 2020: [`SimClrLoss`].

use burn::prelude::*;

use crate::{LossError, Positives, SupConLoss, SupConLossConfig};

/// Smallest norm divided by when normalising (as `torch.nn.functional.normalize`).
const NORM_EPS: f64 = 1e-12;

/// Configuration of [`SimClrLoss`].
#[derive(Config, Debug)]
pub struct SimClrLossConfig {
    /// Softmax temperature (> 0); SimCLR's CIFAR-10 setting is 0.5.
    #[config(default = 0.5)]
    pub temperature: f64,
}

impl SimClrLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    ///
    /// If the temperature is not a positive finite number; see [`try_init`](Self::try_init).
    pub fn init(&self) -> SimClrLoss {
        crate::supcon::expect(self.try_init())
    }

    /// Builds the loss, or says why the temperature is out of range.
    pub fn try_init(&self) -> Result<SimClrLoss, LossError> {
        Ok(SimClrLoss {
            inner: SupConLossConfig::new()
                .with_temperature(self.temperature)
                .with_base_temperature(self.temperature)
                .try_init()?,
        })
    }
}

/// SimCLR's NT-Xent loss (normalised temperature-scaled cross entropy), Chen et al., ICML 2020.
///
/// For two views `u, v` of `B` images, each `[B, dim]`, cosine similarities
/// `s(x, y) = x.y / (|x| |y|)` and the `2B` vectors `w = [u; v]`:
///
/// ```text
/// NT-Xent = 1/(2B) * sum_i -log( exp(s(w_i, w_pos(i)) / T) / sum_{k != i} exp(s(w_i, w_k) / T) )
/// ```
///
/// where `pos(i)` is the other view of the same image. It is [`SupConLoss`] with
/// [`Positives::SameImage`] on normalised features and `base_temperature = temperature` (no
/// rescaling), which is how it is computed here.
///
/// A Burn [`Module`] without parameters (its settings are constants), so it can be a field of
/// a model's `#[derive(Module)]` struct.
#[derive(Module, Debug)]
pub struct SimClrLoss {
    inner: SupConLoss,
}

impl SimClrLoss {
    /// The mean loss, shape `[1]`, of two views `[batch, dim]` (row `i` of each is image `i`).
    /// The views are L2-normalised here (cosine similarity).
    ///
    /// # Panics
    ///
    /// If the views' shapes differ or are empty; see [`try_forward`](Self::try_forward).
    pub fn forward(&self, view_a: Tensor<2>, view_b: Tensor<2>) -> Tensor<1> {
        crate::supcon::expect(self.try_forward(view_a, view_b))
    }

    /// [`forward`](Self::forward), returning a [`LossError`] instead of panicking.
    pub fn try_forward(
        &self,
        view_a: Tensor<2>,
        view_b: Tensor<2>,
    ) -> Result<Tensor<1>, LossError> {
        if view_a.dims() != view_b.dims() {
            return Err(LossError::ShapeMismatch {
                what: "SimCLR views",
                left: view_a.dims().to_vec(),
                right: view_b.dims().to_vec(),
            });
        }
        let [batch, dim] = view_a.dims();
        if batch == 0 || dim == 0 {
            // Before normalising, whose reduction over an empty row Burn cannot do.
            return Err(LossError::Empty {
                shape: vec![batch, 2, dim],
            });
        }
        // Normalised in float32: squares of f16 features overflow above 256.
        let (view_a, view_b) = (
            view_a.cast(crate::LOSS_DTYPE),
            view_b.cast(crate::LOSS_DTYPE),
        );
        let features = Tensor::stack::<3>(vec![l2_normalize(view_a), l2_normalize(view_b)], 1);
        self.inner.try_forward(features, Positives::SameImage)
    }
}

/// Rows divided by their L2 norm (at least [`NORM_EPS`]).
fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(NORM_EPS);
    x / norm
}
