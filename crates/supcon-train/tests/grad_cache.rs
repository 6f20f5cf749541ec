//! Gradient caching gives the gradient of the whole batch's loss: exactly the unchunked one for
//! a model without BatchNorm, and for a model with BatchNorm the one of a step whose batch
//! statistics are taken per chunk.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use supcon_encoder::{Architecture, EncoderConfig};
use supcon_head::{SupConModel, SupConModelConfig, l2_normalize};
use supcon_loss::{Positives, SupConLoss, SupConLossConfig, by_image};
use supcon_train::grad_cache::{cached_gradients, map_chunks};

const VIEWS: usize = 2;
const IMAGES: usize = 8;

#[derive(Module, Debug)]
struct Mlp {
    hidden: Linear,
    output: Linear,
}

impl Mlp {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = x.dims();
        let x = x.reshape([n, c * h * w]);
        l2_normalize(
            self.output
                .forward(burn::tensor::activation::relu(self.hidden.forward(x))),
        )
    }
}

fn views(device: &Device) -> Tensor<4> {
    let n = VIEWS * IMAGES * 3 * 6 * 6;
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::<1>::from_floats(values.as_slice(), device).reshape([VIEWS * IMAGES, 3, 6, 6])
}

fn labels(device: &Device) -> Tensor<1, Int> {
    Tensor::from_ints([0, 1, 2, 0, 1, 2, 3, 3], device)
}

fn loss() -> SupConLoss {
    SupConLossConfig::new().with_temperature(0.1).init()
}

/// Every parameter's gradient, flattened, in visiting order.
fn gradients<M: Module>(model: &M, grads: &GradientsParams) -> Vec<Vec<f32>> {
    struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1.push(g.into_data().try_into_vec::<f32>().unwrap());
            }
        }
    }
    let mut collect = Collect(grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len());
    assert!(!want.is_empty());
    for (g, w) in got.iter().zip(want) {
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b} (scale {scale})");
        }
    }
}

#[test]
fn chunked_gradients_equal_the_whole_batch_without_batchnorm() {
    let device = Device::flex().autodiff();
    let model = Mlp {
        hidden: LinearConfig::new(3 * 6 * 6, 16).init(&device),
        output: LinearConfig::new(16, 8).init(&device),
    };
    let loss_fn = loss();
    let whole = loss_fn.forward(
        by_image(model.forward(views(&device)), VIEWS),
        Positives::Labels(labels(&device)),
    );
    let want_value = whole.clone().into_scalar::<f32>();
    let want = GradientsParams::from_grads(whole.backward(), &model);
    let want = gradients(&model, &want);
    for chunk in [1, 2, 4] {
        let (model_back, value, grads) = cached_gradients(
            model.clone(),
            views(&device),
            VIEWS,
            chunk,
            |m: &Mlp, x| m.forward(x),
            |z| Ok(loss_fn.forward(by_image(z, VIEWS), Positives::Labels(labels(&device)))),
        )
        .unwrap();
        assert!(
            (value - want_value).abs() <= 1e-5 * want_value.abs(),
            "chunk {chunk}"
        );
        assert_close(&gradients(&model_back, &grads), &want);
    }
}

#[test]
fn with_batchnorm_the_statistics_are_per_chunk() {
    let device = Device::flex().autodiff();
    let model: SupConModel =
        SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(3))
            .with_feat_dim(8)
            .init(&device);
    let loss_fn = loss();
    let chunk = 4;
    // The reference: every chunk through the model with its graph, in one loss.
    let z = map_chunks(&views(&device), VIEWS, chunk, |x| model.forward(x));
    let reference = loss_fn.forward(by_image(z, VIEWS), Positives::Labels(labels(&device)));
    let want = GradientsParams::from_grads(reference.backward(), &model);
    let want = gradients(&model, &want);

    let (model, _, grads) = cached_gradients(
        model,
        views(&device),
        VIEWS,
        chunk,
        |m: &SupConModel, x| m.forward(x),
        |z| Ok(loss_fn.forward(by_image(z, VIEWS), Positives::Labels(labels(&device)))),
    )
    .unwrap();
    assert_close(&gradients(&model, &grads), &want);
}
