//! [`HostKernels`] under autodiff on flex: each operation one node of the graph, with its own
//! backward step (the host BatchNorm backward, through the ReLU where one follows; Burn's input
//! gradient and the product weight gradient for the convolution).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::ops::ConvOptions;

use super::{
    Activation, HostKernels, NormalisedBatch, batch_norm_backward, conv2d_weight_backward,
    conv2d_x_backward,
};

/// An autodiff float tensor on flex.
type Tracked<C> = FloatTensor<Autodiff<Flex, C>>;

/// BatchNorm's backward step: the input and `gamma` come back from the graph, the statistics
/// (and, where a ReLU followed, the output) are kept from the forward.
#[derive(Debug)]
struct BatchNormStep;

impl Backward<Flex, 3> for BatchNormStep {
    type State = (
        NodeId,
        NodeId,
        FlexTensor,
        FlexTensor,
        f64,
        Option<FlexTensor>,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node);
        let (x_state, gamma_state, mean, variance, epsilon, relu_output) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FlexTensor>(gamma_state);
        let [dx, dgamma, dbeta] =
            batch_norm_backward(x, output_grad, gamma, mean, variance, epsilon, relu_output);
        for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// The convolution's backward step.
#[derive(Debug)]
struct Conv2dStep;

impl Backward<Flex, 2> for Conv2dStep {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        if let Some(node) = node_x {
            let grad = conv2d_x_backward(&x, weight.clone(), output_grad.clone(), &options);
            grads.register::<Flex>(node.id, grad);
        }
        if let Some(node) = node_weight {
            let grad = conv2d_weight_backward(x, weight, output_grad, options);
            grads.register::<Flex>(node.id, grad);
        }
    }
}

impl<C: CheckpointStrategy> HostKernels for Autodiff<Flex, C> {
    fn host_batch_norm_train(
        x: Tracked<C>,
        gamma: Tracked<C>,
        beta: Tracked<C>,
        epsilon: f64,
        activation: Activation,
    ) -> NormalisedBatch<Self> {
        let prepared = BatchNormStep
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (output, mean, variance) = match prepared {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let result = Flex::host_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    activation,
                );
                // The output is shared, not copied: the next operation holds it anyway.
                let relu_output = (activation == Activation::Relu).then(|| result.output.clone());
                let state = (
                    x_state,
                    gamma_state,
                    result.mean.clone(),
                    result.variance.clone(),
                    epsilon,
                    relu_output,
                );
                (
                    prep.finish(state, result.output),
                    result.mean,
                    result.variance,
                )
            }
            OpsKind::UnTracked(prep) => {
                let result = Flex::host_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    activation,
                );
                (prep.finish(result.output), result.mean, result.variance)
            }
        };
        NormalisedBatch {
            output,
            mean: Tracked::<C>::new(mean),
            variance: Tracked::<C>::new(variance),
        }
    }

    fn host_conv2d(x: Tracked<C>, weight: Tracked<C>, options: ConvOptions<2>) -> Tracked<C> {
        match Conv2dStep
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output =
                    Flex::host_conv2d(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::host_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }

    fn host_conv2d_weight_backward(
        x: Tracked<C>,
        weight: Tracked<C>,
        output_grad: Tracked<C>,
        options: ConvOptions<2>,
    ) -> Tracked<C> {
        Tracked::<C>::new(conv2d_weight_backward(
            x.into_primitive(),
            weight.into_primitive(),
            output_grad.into_primitive(),
            options,
        ))
    }

    fn host_conv2d_x_backward(
        x: Tracked<C>,
        weight: Tracked<C>,
        output_grad: Tracked<C>,
        options: ConvOptions<2>,
    ) -> Tracked<C> {
        Tracked::<C>::new(conv2d_x_backward(
            &x.into_primitive(),
            weight.into_primitive(),
            output_grad.into_primitive(),
            &options,
        ))
    }
}
