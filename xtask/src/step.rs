//! `cargo xtask step`: time and peak heap memory of SupCon training steps at a given global
//! batch, whole or with gradient caching in chunks (`supcon_train::grad_cache`), on synthetic
//! 3x32x32 images with the reference's augmentation.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use supcon_augment::{ViewPipeline, ViewPipelineConfig};
use supcon_encoder::{Architecture, EncoderConfig};
use supcon_head::{SupConModel, SupConModelConfig};
use supcon_loss::{Positives, SupConLossConfig, by_image};
use supcon_train::config::OptimizerKind;
use supcon_train::grad_cache::cached_gradients;
use supcon_train::optim::Optimizer;

use crate::alloc;

/// What `cargo xtask step` runs.
#[derive(Debug, clap::Args)]
pub struct StepArgs {
    /// Encoder.
    #[arg(long, default_value = "resnet18")]
    pub model: Architecture,
    /// Global batch (images; two views each).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Images per chunk of gradient caching (0: the whole batch at once).
    #[arg(long, default_value_t = 0)]
    pub chunk: usize,
    /// Steps timed after one untimed warm-up step.
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
}

/// Runs the steps and prints seconds per image and the peak heap of a step.
pub fn step(args: &StepArgs) -> Result<(), String> {
    if args.chunk > 0 && (args.chunk > args.batch || !args.batch.is_multiple_of(args.chunk)) {
        return Err(format!(
            "--chunk {} must divide --batch {}",
            args.chunk, args.batch
        ));
    }
    let device = Device::flex();
    let train = device.clone().autodiff();
    device.seed(0);
    let mut model: SupConModel =
        SupConModelConfig::new(EncoderConfig::new(args.model).with_in_channels(3)).init(&train);
    let mut optimizer = Optimizer::new(OptimizerKind::Sgd, 0.9, 1e-4, true);
    let loss = SupConLossConfig::new().with_temperature(0.1).init();
    let pipeline = ViewPipeline::new(ViewPipelineConfig::supcon(
        vec![0.4914, 0.4822, 0.4465],
        vec![0.2023, 0.1994, 0.2010],
    ));
    let images = Tensor::<4>::random(
        [args.batch, 3, 32, 32],
        Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let labels: Vec<i64> = (0..args.batch as i64).map(|i| (i * 7) % 10).collect();
    let labels = Tensor::<1, Int>::from_ints(labels.as_slice(), &train);
    let mut timings = Vec::new();
    let mut peak = 0;
    for step in 0..=args.steps {
        let before = alloc::reset_peak();
        let started = Instant::now();
        let views = pipeline
            .views(images.clone(), 2, step as u64)
            .map_err(|e| e.to_string())?
            .autodiff();
        let loss_of =
            |z: Tensor<2>| loss.forward(by_image(z, 2), Positives::Labels(labels.clone()));
        let (stepped, value, grads) = if args.chunk == 0 {
            let value = loss_of(model.forward(views));
            let scalar = value.clone().into_scalar::<f32>();
            let grads = burn::optim::GradientsParams::from_grads(value.backward(), &model);
            (model, scalar, grads)
        } else {
            cached_gradients(
                model,
                views,
                2,
                args.chunk,
                |m: &SupConModel, x| m.forward(x),
                |z| Ok(loss_of(z)),
            )
            .map_err(|e| e.to_string())?
        };
        model = optimizer.step(0.05, stepped, grads);
        let _ = device.sync();
        let seconds = started.elapsed().as_secs_f64();
        peak = peak.max(alloc::peak() - before);
        if step > 0 {
            timings.push(seconds);
        }
        eprintln!("step {step}: loss {value:.4}, {seconds:.2} s");
    }
    let mean = timings.iter().sum::<f64>() / timings.len().max(1) as f64;
    println!(
        "{} SupCon step, global batch {}, {}: {:.2} ms per image ({:.1} s a step), peak heap {:.0} MiB",
        args.model.name(),
        args.batch,
        if args.chunk == 0 {
            "whole".to_string()
        } else {
            format!("chunks of {}", args.chunk)
        },
        1e3 * mean / args.batch as f64,
        mean,
        peak as f64 / (1 << 20) as f64
    );
    Ok(())
}
