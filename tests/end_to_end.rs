//! The crates together, as the trainer will use them: embedded digits, two augmented views on
//! the device, a SupCon model, the SupCon loss, gradients back to the first convolution.

use burn::prelude::*;
use supcon::augment::{ViewPipeline, ViewPipelineConfig};
use supcon::data::{embedded_mnist, shuffled_indices};
use supcon::encoder::{Architecture, Encoder, EncoderConfig};
use supcon::head::SupConModelConfig;
use supcon::loss::{Positives, SupConLossConfig, by_image};

#[test]
fn a_supcon_step_on_embedded_digits_reaches_the_encoder() {
    let device = Device::flex().autodiff();
    let splits = embedded_mnist().unwrap();
    let order = shuffled_indices(splits.train.len(), 1);
    let batch = splits.train.batch(&order[..16], &device).unwrap();

    let config = ViewPipelineConfig::supcon(vec![0.1307], vec![0.3081]).with_color_jitter(None);
    let views = ViewPipeline::new(config).views(batch.images, 2, 1).unwrap(); // [32, 1, 28, 28]
    let model = SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(1))
        .init(&device);
    let z = model.forward(views); // [32, 128], view by view
    let features = by_image(z, 2); // [16, 2, 128]
    let loss = SupConLossConfig::new()
        .with_temperature(0.1)
        .init()
        .forward(features, Positives::Labels(batch.labels));

    let value = loss.clone().into_scalar::<f32>();
    assert!(value.is_finite() && value > 0.0, "{value}");
    let grads = loss.backward();
    let Encoder::Small(cnn) = &model.encoder else {
        panic!("small encoder")
    };
    let grad = cnn.convs[0]
        .weight
        .grad(&grads)
        .expect("the first convolution gets a gradient");
    let grad = grad.into_data().try_into_vec::<f32>().unwrap();
    assert!(grad.iter().all(|g| g.is_finite()) && grad.iter().any(|g| *g != 0.0));
}
