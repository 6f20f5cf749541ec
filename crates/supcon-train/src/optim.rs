//! Optimisers as Burn [`Optimizer`](burn::optim::Optimizer)s, usable in any Burn training loop
//! and in burn-train's `Learner` through the [`ModuleOptimizer`] their configs build:
//!
//! - [`PyTorchSgdConfig`]: SGD with PyTorch's semantics, as the reference trains: momentum
//!   without dampening, weight decay added to the gradient, `g <- g + wd * w`,
//!   `v <- mu * v + g` (first step: `v = g`), `w <- w - lr * v`; optionally without decay on
//!   biases and BatchNorm (parameters of one dimension). Burn's own `SgdConfig` dampens momentum
//!   unless told otherwise and decays every parameter.
//! - [`LarsConfig`]: LARS (You et al. 2017) as the official SupCon code applies it: the same
//!   step, with the decayed gradient of every tensor of two or more dimensions scaled by the
//!   trust ratio `trust * |w| / |g + wd * w|` (1 where either norm is 0) before momentum;
//!   biases and BatchNorm are not adapted.
//!
//! [`Optimizer`] is the trainer's choice between them, with its state as bytes for checkpoints.

use burn::optim::momentum::{Momentum, MomentumConfig, MomentumState};
use burn::optim::{GradientsParams, LearningRate, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;

use crate::TrainError;
use crate::config::OptimizerKind;

/// LARS's default trust coefficient (`eeta` in the official SupCon code).
pub const LARS_TRUST: f64 = 0.001;

/// SGD with PyTorch's semantics; see the [module documentation](self).
#[derive(Config, Debug)]
pub struct PyTorchSgdConfig {
    /// Momentum `mu` (0: none), without dampening.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// Weight decay added to the gradient.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// Decay parameters of one dimension (biases, BatchNorm) too, as PyTorch's SGD does.
    #[config(default = true)]
    pub decay_norm_and_bias: bool,
}

impl PyTorchSgdConfig {
    /// The optimiser of one tensor (for `ModuleOptimizer::with_group`).
    pub fn build(&self) -> ScaledSgd {
        ScaledSgd::new(
            self.momentum,
            self.weight_decay,
            self.decay_norm_and_bias,
            None,
        )
    }

    /// The optimiser of a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// LARS; see the [module documentation](self).
#[derive(Config, Debug)]
pub struct LarsConfig {
    /// Momentum `mu` (0: none), without dampening.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// Weight decay added to the gradient before the trust ratio.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// The trust coefficient.
    #[config(default = 0.001)]
    pub trust_coefficient: f64,
    /// Decay parameters of one dimension (biases, BatchNorm) too; they are never adapted.
    #[config(default = false)]
    pub decay_norm_and_bias: bool,
}

impl LarsConfig {
    /// The optimiser of one tensor (for `ModuleOptimizer::with_group`).
    pub fn build(&self) -> ScaledSgd {
        ScaledSgd::new(
            self.momentum,
            self.weight_decay,
            self.decay_norm_and_bias,
            Some(self.trust_coefficient),
        )
    }

    /// The optimiser of a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// The per-tensor step of [`PyTorchSgdConfig`] and [`LarsConfig`] (LARS when it has a trust
/// coefficient). Build it through those configs.
#[derive(Clone)]
pub struct ScaledSgd {
    momentum: Option<Momentum>,
    weight_decay: f64,
    decay_norm_and_bias: bool,
    trust: Option<f64>,
}

impl ScaledSgd {
    fn new(
        momentum: f64,
        weight_decay: f64,
        decay_norm_and_bias: bool,
        trust: Option<f64>,
    ) -> Self {
        let momentum = (momentum > 0.0).then(|| {
            Momentum::new(
                &MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0),
            )
        });
        Self {
            momentum,
            weight_decay,
            decay_norm_and_bias,
            trust,
        }
    }
}

impl burn::optim::Optimizer for ScaledSgd {
    /// The momentum buffer (none without momentum).
    type State<const D: usize> = MomentumState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        mut grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let norm_or_bias = D == 1;
        if self.weight_decay > 0.0 && (self.decay_norm_and_bias || !norm_or_bias) {
            grad = grad + tensor.clone().mul_scalar(self.weight_decay);
        }
        if let Some(trust) = self.trust.filter(|_| !norm_or_bias) {
            let weight_norm = tensor.clone().square().sum().sqrt();
            let grad_norm = grad.clone().square().sum().sqrt();
            let both_positive = weight_norm
                .clone()
                .greater_elem(0.0)
                .bool_and(grad_norm.clone().greater_elem(0.0));
            let ratio = weight_norm.div(grad_norm).mul_scalar(trust);
            let ratio = ratio.ones_like().mask_where(both_positive, ratio);
            grad = grad * ratio.reshape([1usize; D]);
        }
        let mut velocity = None;
        if let Some(momentum) = &self.momentum {
            let (moved, next) = momentum.transform(grad, state);
            grad = moved;
            velocity = Some(next);
        }
        (tensor - grad.mul_scalar(lr), velocity)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.to_device(device)
    }
}

/// The trainer's optimiser: [`PyTorchSgdConfig`] or [`LarsConfig`] over a whole module, with
/// its state (momentum buffers, keyed by parameter id) as bytes for checkpoints.
pub struct Optimizer {
    inner: ModuleOptimizer,
}

impl Optimizer {
    /// A fresh optimiser.
    pub fn new(
        kind: OptimizerKind,
        momentum: f64,
        weight_decay: f64,
        decay_norm_and_bias: bool,
    ) -> Self {
        let inner = match kind {
            OptimizerKind::Sgd => PyTorchSgdConfig::new()
                .with_momentum(momentum)
                .with_weight_decay(weight_decay)
                .with_decay_norm_and_bias(decay_norm_and_bias)
                .init(),
            OptimizerKind::Lars => LarsConfig::new()
                .with_momentum(momentum)
                .with_weight_decay(weight_decay)
                .with_trust_coefficient(LARS_TRUST)
                .with_decay_norm_and_bias(decay_norm_and_bias)
                .init(),
        };
        Self { inner }
    }

    /// One update of `model` with `grads` at learning rate `lr`.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        self.inner.step(lr, model, grads)
    }

    /// The state (momentum buffers) as bytes, for a checkpoint.
    pub fn to_bytes(&self) -> Result<Bytes, TrainError> {
        self.inner
            .into_bytes()
            .map_err(|e| TrainError::Config(format!("cannot serialise the optimiser: {e}")))
    }

    /// Restores the state saved by [`to_bytes`](Self::to_bytes). The model must have been
    /// restored from the same checkpoint (parameter ids key the buffers).
    pub fn load_bytes(self, bytes: Bytes) -> Result<Self, String> {
        let inner = self.inner.from_bytes(bytes).map_err(|e| e.to_string())?;
        Ok(Self { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::{Linear, LinearConfig};

    fn linear(device: &Device) -> Linear {
        let mut layer = LinearConfig::new(2, 1).init(device);
        layer.weight = Param::from_tensor(Tensor::from_data([[1.0f32], [2.0]], device));
        layer.bias = Some(Param::from_tensor(Tensor::from_data([0.5f32], device)));
        layer
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    /// Two steps by hand, PyTorch's formulas: loss = sum(w . x) + b with x = (1, 1).
    #[test]
    fn sgd_matches_pytorch_momentum_and_decay() {
        let device = Device::flex().autodiff();
        let mut model = linear(&device);
        let mut optim = Optimizer::new(OptimizerKind::Sgd, 0.9, 0.1, false);
        let x = Tensor::<2>::ones([1, 2], &device);
        for _ in 0..2 {
            let loss = model.forward(x.clone()).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.5, model, grads);
        }
        // w0 = 1: g1 = 1 + 0.1 = 1.1, v1 = 1.1, w1 = 1 - 0.55 = 0.45;
        //         g2 = 1 + 0.045 = 1.045, v2 = 0.99 + 1.045 = 2.035, w2 = 0.45 - 1.0175.
        // b0 = 0.5 (no decay): v1 = 1, b1 = 0; v2 = 1.9, b2 = -0.95.
        let w = values(model.weight.val().inner());
        assert!((w[0] - (0.45 - 1.0175)).abs() < 1e-6, "{w:?}");
        let b = model.bias.as_ref().unwrap().val().inner().into_data();
        let b = b.try_into_vec::<f32>().unwrap();
        assert!((b[0] + 0.95).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn lars_scales_by_the_trust_ratio() {
        let device = Device::flex().autodiff();
        let model = linear(&device);
        let mut optim = Optimizer::new(OptimizerKind::Lars, 0.0, 0.0, false);
        let x = Tensor::<2>::ones([1, 2], &device);
        let loss = model.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(1.0, model, grads);
        // |w| = sqrt(5), |g| = sqrt(2): w <- w - 0.001 * sqrt(5/2) * 1.
        let step = LARS_TRUST * (5.0f64 / 2.0).sqrt();
        let w = values(model.weight.val().inner());
        assert!((w[0] as f64 - (1.0 - step)).abs() < 1e-6, "{w:?}");
        assert!((w[1] as f64 - (2.0 - step)).abs() < 1e-6, "{w:?}");
    }
}
