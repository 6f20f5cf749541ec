//! A tour of the losses on embeddings whose geometry is known: collapsed (every vector equal),
//! random, and class-separated. Run with `cargo run --release --example loss_tour`.

use burn::prelude::*;
use supcon::loss::{
    NPairsLossConfig, Positives, SimClrLossConfig, SupConLossConfig, TripletLossConfig,
};

const BATCH: usize = 32;
const DIM: usize = 16;
const CLASSES: usize = 4;

/// Unit vectors `[BATCH, 2, DIM]`: a mix of a class direction with per-view noise.
fn embeddings(device: &Device, class_weight: f32, noise_weight: f32, seed: u64) -> Tensor<3> {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut values = Vec::with_capacity(BATCH * 2 * DIM);
    for sample in 0..BATCH {
        for _view in 0..2 {
            let mut v: Vec<f32> = (0..DIM)
                .map(|d| {
                    let class = if d == sample % CLASSES { 1.0 } else { 0.0 };
                    class_weight * class + noise_weight * next() + 0.3
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            values.extend(v);
        }
    }
    Tensor::from_data(TensorData::new(values, [BATCH, 2, DIM]), device)
}

fn main() -> Result<(), supcon::loss::LossError> {
    let device = Device::flex();
    let labels: Vec<i64> = (0..BATCH as i64).map(|i| i % CLASSES as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [BATCH]), &device);
    let supcon = SupConLossConfig::new().with_temperature(0.1).init();
    let simclr = SimClrLossConfig::new().init();
    let triplet = TripletLossConfig::new().init();
    let npairs = NPairsLossConfig::new().init();

    println!("{BATCH} samples x 2 views, {CLASSES} classes, dim {DIM}, SupCon T = 0.1\n");
    println!("| embeddings | SupCon | SimCLR (NT-Xent) | triplet | N-pairs |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, class_weight, noise_weight) in [
        ("collapsed", 0.0, 0.0),
        ("random", 0.0, 1.0),
        ("separated by class", 3.0, 0.2),
    ] {
        let z = embeddings(&device, class_weight, noise_weight, 42);
        let views = |v: usize| z.clone().narrow(1, v, 1).reshape([BATCH, DIM]);
        let value = |t: Tensor<1>| t.into_scalar::<f32>();
        println!(
            "| {name} | {:.4} | {:.4} | {:.4} | {:.4} |",
            value(supcon.try_forward(z.clone(), Positives::Labels(labels.clone()))?),
            value(simclr.try_forward(views(0), views(1))?),
            value(triplet.try_forward(z.clone(), Positives::Labels(labels.clone()))?),
            value(npairs.try_forward(z.clone(), Positives::SameImage)?),
        );
    }
    let collapse = ((2 * BATCH - 1) as f32).ln();
    println!(
        "\nCollapsed embeddings give SupCon exactly log(2N - 1) * T / T_base = {:.4}, NT-Xent log(2N - 1) = {collapse:.4}.",
        collapse * 0.1 / 0.07
    );
    Ok(())
}
