//! A module's float tensors as a flat list, and a module rebuilt from such a list: the one way
//! the trainer copies parameters and running statistics between two models of one structure
//! (a momentum encoder's moving average, gradient caching's saved running statistics).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

/// One float tensor of a module, flattened.
pub struct FlatTensor {
    /// Its values, flattened (on the module's device).
    pub value: Tensor<1>,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether it requires gradients: a trainable parameter. Running statistics (BatchNorm's)
    /// never do.
    pub trainable: bool,
}

/// Every float tensor of `module`, in the order Burn visits them.
pub fn flat_tensors<M: Module>(module: &M) -> Vec<FlatTensor> {
    struct Collect(Vec<FlatTensor>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let trainable = value.is_require_grad();
            // A copy of a parameter's values, off the autodiff graph.
            let value = if trainable { value.detach() } else { value };
            let shape = value.shape().to_vec();
            let numel = shape.iter().product::<usize>();
            self.0.push(FlatTensor {
                value: value.reshape([numel]),
                shape,
                trainable,
            });
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}

/// `module` with each float tensor replaced by `combine(the source tensor in the same position,
/// its own values)` (both flattened; the result reshaped back), or left as it is (the very
/// parameter, a leaf of the autodiff graph) where `combine` gives `None`. `sources` must come
/// from [`flat_tensors`] of a module of the same structure.
///
/// # Panics
///
/// If `sources` has fewer tensors than `module`.
pub fn map_tensors<M: Module>(
    module: M,
    sources: Vec<FlatTensor>,
    combine: impl FnMut(FlatTensor, Tensor<1>) -> Option<Tensor<1>>,
) -> M {
    struct Combine<F> {
        sources: std::vec::IntoIter<FlatTensor>,
        combine: F,
    }
    impl<F: FnMut(FlatTensor, Tensor<1>) -> Option<Tensor<1>>> ModuleMapper for Combine<F> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let source = self
                .sources
                .next()
                .expect("the source has the module's structure");
            // Its values, off the autodiff graph: reading them records nothing.
            let current = param.val().detach();
            let dims = current.dims();
            let numel = dims.iter().product::<usize>();
            match (self.combine)(source, current.reshape([numel])) {
                Some(value) => param.map(|_| value.reshape(dims)),
                None => param,
            }
        }
    }
    module.map(&mut Combine {
        sources: sources.into_iter(),
        combine,
    })
}
