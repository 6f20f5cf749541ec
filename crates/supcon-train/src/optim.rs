//! The optimiser: PyTorch's SGD (momentum without dampening, weight decay added to the
//! gradient), optionally without decay on biases and BatchNorm, optionally LARS.
//!
//! Burn's SGD dampens momentum by 0.1 by default; PyTorch's does not, so the momentum here is
//! configured with `dampening = 0`, and the weight decay is applied by this module (so that it
//! can skip one-dimensional parameters) before Burn's momentum step:
//! `g <- g + wd * w`, `v <- mu * v + g` (first step: `v = g`), `w <- w - lr * v`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::Bytes;

use crate::TrainError;
use crate::config::OptimizerKind;

/// LARS's trust coefficient (`eeta` in the official SupCon code).
pub const LARS_TRUST: f64 = 0.001;

/// SGD or LARS with its state (momentum buffers, keyed by parameter id).
pub struct Optimizer {
    inner: ModuleOptimizer,
    kind: OptimizerKind,
    weight_decay: f64,
    decay_norm_and_bias: bool,
}

impl Optimizer {
    /// A fresh optimiser.
    pub fn new(
        kind: OptimizerKind,
        momentum: f64,
        weight_decay: f64,
        decay_norm_and_bias: bool,
    ) -> Self {
        let momentum = (momentum > 0.0).then(|| {
            MomentumConfig::new()
                .with_momentum(momentum)
                .with_dampening(0.0)
        });
        Self {
            inner: SgdConfig::new().with_momentum(momentum).init(),
            kind,
            weight_decay,
            decay_norm_and_bias,
        }
    }

    /// One update of `model` with `grads` at learning rate `lr`.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, mut grads: GradientsParams) -> M {
        let mut transform = GradientTransform {
            grads: &mut grads,
            weight_decay: self.weight_decay,
            decay_norm_and_bias: self.decay_norm_and_bias,
            lars: self.kind == OptimizerKind::Lars,
        };
        model.visit(&mut transform);
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
        let Optimizer {
            inner,
            kind,
            weight_decay,
            decay_norm_and_bias,
        } = self;
        let inner = inner.from_bytes(bytes).map_err(|e| e.to_string())?;
        Ok(Optimizer {
            inner,
            kind,
            weight_decay,
            decay_norm_and_bias,
        })
    }
}

/// Adds weight decay to each gradient and, for LARS, scales it by the trust ratio.
/// Parameters of one dimension (biases, BatchNorm) are "norm and bias": decayed only when asked,
/// never adapted by LARS (as in the official code).
struct GradientTransform<'a> {
    grads: &'a mut GradientsParams,
    weight_decay: f64,
    decay_norm_and_bias: bool,
    lars: bool,
}

impl ModuleVisitor for GradientTransform<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(mut grad) = self.grads.remove::<D>(param.id) else {
            return;
        };
        let weight = param.val().inner();
        let norm_or_bias = D == 1;
        if self.weight_decay > 0.0 && (self.decay_norm_and_bias || !norm_or_bias) {
            grad = grad + weight.clone().mul_scalar(self.weight_decay);
        }
        if self.lars && !norm_or_bias {
            let weight_norm = weight.square().sum().sqrt();
            let grad_norm = grad.clone().square().sum().sqrt();
            let both_positive = weight_norm
                .clone()
                .greater_elem(0.0)
                .bool_and(grad_norm.clone().greater_elem(0.0));
            let ratio = weight_norm.div(grad_norm).mul_scalar(LARS_TRUST);
            let ratio = ratio.ones_like().mask_where(both_positive, ratio);
            grad = grad * ratio.reshape([1usize; D]);
        }
        self.grads.register(param.id, grad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
