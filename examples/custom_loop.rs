//! SupCon in a hand-written Burn training loop, on the embedded MNIST digits: augmentation on the
//! device, the model, the loss, the optimiser and the schedule of the reference.
//! Run with `cargo run --release --example custom_loop`.

use burn::optim::GradientsParams;
use burn::optim::lr_scheduler::LrScheduler;
use burn::prelude::*;
use supcon::augment::{ViewPipeline, ViewPipelineConfig, mix_seed};
use supcon::data::{embedded_mnist, shuffled_indices};
use supcon::encoder::{Architecture, EncoderConfig};
use supcon::head::SupConModelConfig;
use supcon::loss::{Positives, SupConLossConfig, by_image};
use supcon_train::optim::PyTorchSgdConfig;
use supcon_train::schedule::{LearningRateSchedule, ScheduleKind, ScheduledRate};

/// Trains for `steps` batches of 128 digits and returns the loss of each step.
pub fn train(steps: usize, seed: u64) -> Vec<f32> {
    let device = Device::flex().autodiff();
    device.seed(seed); // seeds the model's initialisation (and every random tensor on it)
    let data = embedded_mnist().expect("the embedded digits").train;
    let views = ViewPipeline::new(
        ViewPipelineConfig::supcon(vec![0.1307], vec![0.3081])
            .with_flip_probability(0.0) // digits are not mirror-symmetric
            .with_color_jitter(None),
    );
    let mut model =
        SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(1))
            .init(&device);
    let loss = SupConLossConfig::new().with_temperature(0.1).init();
    let mut optimizer = PyTorchSgdConfig::new().with_weight_decay(1e-4).init();
    let schedule = LearningRateSchedule {
        base: 0.05,
        epochs: 1,
        kind: ScheduleKind::Cosine,
        decay_epochs: vec![],
        decay_rate: 0.1,
        warm: false,
    };
    let mut rates = ScheduledRate::new(schedule, steps);

    let order = shuffled_indices(data.len(), seed);
    let mut losses = Vec::new();
    for (step, indices) in order.chunks(128).take(steps).enumerate() {
        // Batches and views are made outside the autodiff graph, then tracked from there on.
        let batch = data
            .batch(indices, &device.clone().inner())
            .expect("valid indices");
        let images = views
            .views(batch.images, 2, mix_seed(seed, &[step as u64]))
            .expect("a valid pipeline"); // [2B, 1, 28, 28], view by view
        let z = model.forward(images.autodiff()); // [2B, 128], view by view
        let value = loss.forward(by_image(z, 2), Positives::Labels(batch.labels.autodiff()));
        losses.push(value.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(value.backward(), &model);
        model = optimizer.step(rates.step(), model, grads);
    }
    losses
}

#[allow(dead_code)] // the test suite runs `train`, not `main`
fn main() {
    for (step, loss) in train(40, 42).iter().enumerate() {
        println!("step {:>2}: SupCon loss {loss:.4}", step + 1);
    }
}
