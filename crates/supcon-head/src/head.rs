//! Projection heads.

use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use supcon_encoder::norm::batch_norm;

/// Smallest norm divided by (`torch.nn.functional.normalize`'s `eps`).
const NORM_EPS: f64 = 1e-12;

/// `x / max(|x|, 1e-12)` row by row (`F.normalize(x, dim=1)`).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(NORM_EPS);
    x / norm
}

/// The head's shape, named `linear` or `mlp` (the reference's `head` argument) in
/// configurations and on the command line (the variant names of earlier versions are read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HeadKind {
    /// One Linear, width -> feat_dim.
    #[serde(rename = "linear", alias = "Linear")]
    Linear,
    /// Linear width -> width, ReLU, Linear width -> feat_dim (the reference's default).
    #[serde(rename = "mlp", alias = "Mlp")]
    Mlp,
}

impl Config for HeadKind {}

impl HeadKind {
    /// The name: `linear` or `mlp`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Mlp => "mlp",
        }
    }
}

impl core::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a head kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown head `{0}`: use mlp or linear")]
pub struct UnknownHeadKind(pub String);

impl core::str::FromStr for HeadKind {
    type Err = UnknownHeadKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Linear, Self::Mlp]
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownHeadKind(name.to_string()))
    }
}

/// Configuration of a [`ProjectionHead`].
#[derive(Config, Debug)]
pub struct ProjectionHeadConfig {
    /// Input width (the encoder's).
    pub width: usize,
    /// `linear` or `mlp`.
    #[config(default = "HeadKind::Mlp")]
    pub kind: HeadKind,
    /// Output dimension.
    #[config(default = 128)]
    pub feat_dim: usize,
    /// BatchNorm after the hidden Linear of the MLP (google-research's option).
    #[config(default = false)]
    pub batch_norm: bool,
}

impl ProjectionHeadConfig {
    /// Builds the head with Burn's Linear initialisation (PyTorch's: Kaiming-uniform).
    pub fn init(&self, device: &Device) -> ProjectionHead {
        match self.kind {
            HeadKind::Linear => {
                ProjectionHead::Linear(LinearConfig::new(self.width, self.feat_dim).init(device))
            }
            HeadKind::Mlp => ProjectionHead::Mlp(MlpHead {
                hidden: LinearConfig::new(self.width, self.width).init(device),
                norm: self
                    .batch_norm
                    .then(|| BatchNormConfig::new(self.width).init(device)),
                output: LinearConfig::new(self.width, self.feat_dim).init(device),
            }),
        }
    }
}

/// The two-layer head.
#[derive(Module, Debug)]
pub struct MlpHead {
    /// width -> width.
    pub hidden: Linear,
    /// Optional BatchNorm after it.
    pub norm: Option<BatchNorm>,
    /// width -> feat_dim.
    pub output: Linear,
}

/// A projection head; its output is L2-normalised.
// Modules are built once and moved rarely: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ProjectionHead {
    /// One Linear.
    Linear(Linear),
    /// Linear, (BatchNorm,) ReLU, Linear.
    Mlp(MlpHead),
}

impl ProjectionHead {
    /// The width of the features it takes.
    pub fn in_width(&self) -> usize {
        let first = match self {
            ProjectionHead::Linear(linear) => linear,
            ProjectionHead::Mlp(mlp) => &mlp.hidden,
        };
        first.weight.val().dims()[0]
    }

    /// Unit-norm projections `[B, feat_dim]` of features `[B, width]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let out = match self {
            ProjectionHead::Linear(linear) => linear.forward(features),
            ProjectionHead::Mlp(mlp) => {
                let mut hidden = mlp.hidden.forward(features);
                if let Some(norm) = &mlp.norm {
                    hidden = batch_norm(norm, hidden);
                }
                mlp.output.forward(relu(hidden))
            }
        };
        l2_normalize(out)
    }
}
