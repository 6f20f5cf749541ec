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
