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
