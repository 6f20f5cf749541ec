//! Heads and models: shapes, unit-norm projections, the head options, the classifiers.

use burn::prelude::*;
use supcon_encoder::{Architecture, EncoderConfig};
use supcon_head::{
    CrossEntropyNetConfig, HeadKind, LinearClassifierConfig, ProjectionHeadConfig,
    SupConModelConfig, l2_normalize,
};

fn norms(x: Tensor<2>) -> Vec<f32> {
    x.square()
        .sum_dim(1)
        .sqrt()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
}

#[test]
fn projections_have_unit_norm_for_every_head() {
    let device = Device::flex().autodiff();
    let features = Tensor::<2>::random(
        [6, 32],
        burn::tensor::Distribution::Normal(0.0, 3.0),
        &device,
    );
    for (kind, batch_norm) in [
        (HeadKind::Linear, false),
        (HeadKind::Mlp, false),
        (HeadKind::Mlp, true),
    ] {
        let head = ProjectionHeadConfig::new(32)
            .with_kind(kind)
            .with_feat_dim(16)
            .with_batch_norm(batch_norm)
            .init(&device);
        let z = head.forward(features.clone());
        assert_eq!(z.dims(), [6, 16]);
        assert!(norms(z).iter().all(|n| (n - 1.0).abs() < 1e-5), "{kind:?}");
    }
    // Zero rows stay finite (divided by the 1e-12 floor, as F.normalize).
    let zero = l2_normalize(Tensor::<2>::zeros([2, 4], &device));
    assert!(
        zero.into_data()
            .try_into_vec::<f32>()
            .unwrap()
            .iter()
            .all(|v| *v == 0.0)
    );
}

#[test]
fn models_and_classifiers_have_the_right_shapes() {
    let device = Device::flex();
    let encoder = EncoderConfig::new(Architecture::Small).with_in_channels(1);
    let model = SupConModelConfig::new(encoder.clone()).init(&device);
    let images = Tensor::<4>::ones([3, 1, 28, 28], &device);
    assert_eq!(model.forward(images.clone()).dims(), [3, 128]);
    let features = model.encode(images.clone());
    assert_eq!(features.dims(), [3, 128]);
    let classifier = LinearClassifierConfig::new(128, 10).init(&device);
    assert_eq!(classifier.forward(features).dims(), [3, 10]);
    let baseline = CrossEntropyNetConfig::new(encoder, 7).init(&device);
    assert_eq!(baseline.forward(images).dims(), [3, 7]);
}

/// A backbone of the user's own: flatten, one Linear.
#[derive(Module, Debug)]
struct Flat {
    fc: burn::nn::Linear,
}

impl supcon_encoder::ImageEncoder for Flat {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(images.flatten(1, 3))
    }

    fn width(&self) -> usize {
        24
    }
}

#[test]
fn models_take_a_user_encoder() {
    use supcon_encoder::ImageEncoder;
    use supcon_head::{CrossEntropyNet, SupConModel};
    let device = Device::flex().autodiff();
    let encoder = Flat {
        fc: burn::nn::LinearConfig::new(2 * 4 * 4, 24).init(&device),
    };
    let head = ProjectionHeadConfig::new(encoder.width())
        .with_feat_dim(8)
        .init(&device);
    let model = SupConModel::new(encoder.clone(), head);
    let images = Tensor::<4>::random(
        [3, 2, 4, 4],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let z = model.forward(images.clone());
    assert_eq!(z.dims(), [3, 8]);
    for n in norms(z.clone()) {
        assert!((n - 1.0).abs() < 1e-5, "{n}");
    }
    assert_eq!(model.encode(images.clone()).dims(), [3, 24]);
    // The gradient reaches the user's encoder.
    let grads = z.sum().backward();
    assert!(model.encoder.fc.weight.grad(&grads).is_some());
    // Parameters: the encoder's and the MLP head's (24x24 + 24, 24x8 + 8).
    assert_eq!(
        model.num_params(),
        encoder.num_params() + 24 * 24 + 24 + 24 * 8 + 8
    );
    let net = CrossEntropyNet::new(encoder, 5, &device);
    assert_eq!(net.forward(images).dims(), [3, 5]);
}

#[test]
#[should_panic(expected = "the head takes 32 features, the encoder gives 24")]
fn a_head_of_another_width_is_refused() {
    let device = Device::flex();
    let encoder = Flat {
        fc: burn::nn::LinearConfig::new(8, 24).init(&device),
    };
    let head = ProjectionHeadConfig::new(32).init(&device);
    let _ = supcon_head::SupConModel::new(encoder, head);
}

/// `weights::to_float_type` casts every float tensor (BatchNorm's running statistics too),
/// keeps parameters trainable (fresh leaves: a backward pass reaches them) and the values
/// (rounded to the new type), and leaves a module already in the type as it is.
#[test]
fn to_float_type_casts_parameters_and_statistics_keeping_them_trainable() {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::{DType, FloatDType};
    use supcon_head::weights::to_float_type;

    struct Types(Vec<(DType, bool)>);
    impl ModuleVisitor for Types {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            self.0.push((value.dtype(), value.is_require_grad()));
        }
    }
    let types = |model: &supcon_head::SupConModel| {
        let mut types = Types(Vec::new());
        model.visit(&mut types);
        types.0
    };

    let device = Device::flex().autodiff();
    let model = SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(1))
        .init(&device);
    let before = types(&model);
    assert!(before.iter().all(|(dtype, _)| *dtype == DType::F32));

    let half = to_float_type(model.clone(), FloatDType::F16);
    let after = types(&half);
    assert_eq!(after.len(), before.len());
    for ((dtype, trainable), (_, was_trainable)) in after.iter().zip(&before) {
        assert_eq!(*dtype, DType::F16);
        assert_eq!(trainable, was_trainable, "trainability kept");
    }
    assert!(after.iter().any(|(_, trainable)| *trainable));
    assert!(
        after.iter().any(|(_, trainable)| !*trainable),
        "running statistics stay untracked"
    );

    // A backward pass from an f16 input reaches the cast parameters.
    let x = Tensor::<4>::ones([2, 1, 28, 28], &device).cast(FloatDType::F16);
    let grads = half.forward(x).sum().backward();
    let mut reached = 0;
    struct Reached<'a>(&'a burn::tensor::Gradients, &'a mut usize);
    impl ModuleVisitor for Reached<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.val().grad(self.0).is_some() {
                *self.1 += 1;
            }
        }
    }
    half.visit(&mut Reached(&grads, &mut reached));
    assert!(reached > 0, "gradients reach the cast parameters");

    // Already f32: the very same parameters.
    let same = to_float_type(model.clone(), FloatDType::F32);
    assert_eq!(types(&same), before);
}
