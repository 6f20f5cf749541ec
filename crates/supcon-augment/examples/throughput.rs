//! Images per second of the SupCon recipe: two views of a 256-image 3x32x32 batch on the
//! chosen device (flex by default). Run with
//! `cargo run --release -p supcon-augment --example throughput`.

use std::time::Instant;

use burn::prelude::*;
use supcon_augment::{ViewPipeline, ViewPipelineConfig};

fn main() -> Result<(), supcon_augment::AugmentError> {
    let device = Device::flex();
    let (batch, views, repeats) = (256, 2, 20);
    let images = Tensor::<4>::random(
        [batch, 3, 32, 32],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let config =
        ViewPipelineConfig::supcon(vec![0.4914, 0.4822, 0.4465], vec![0.2023, 0.1994, 0.2010]);
    let pipeline = ViewPipeline::new(config);
    // Warm-up, then timed runs; reading one value back waits for the device.
    for seed in 0..3 {
        pipeline
            .views(images.clone(), views, seed)?
            .slice([0..1, 0..1, 0..1, 0..1])
            .into_scalar::<f32>();
    }
    let mut seconds = Vec::new();
    for seed in 0..repeats as u64 {
        let start = Instant::now();
        pipeline
            .views(images.clone(), views, 3 + seed)?
            .slice([0..1, 0..1, 0..1, 0..1])
            .into_scalar::<f32>();
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[repeats / 2];
    println!(
        "two views of {batch} images 3x32x32: median {:.1} ms (min {:.1}, max {:.1}), {:.0} views/s",
        median * 1e3,
        seconds[0] * 1e3,
        seconds[repeats - 1] * 1e3,
        (views * batch) as f64 / median
    );
    Ok(())
}
