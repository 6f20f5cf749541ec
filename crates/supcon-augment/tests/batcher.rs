//! The Burn data-loading path: `ImageDataset` as a `Dataset`, `ViewBatcher` as a `Batcher`,
//! reproducible with any number of workers.

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use supcon_augment::{ViewBatcher, ViewPipeline, ViewPipelineConfig};
use supcon_data::embedded_mnist;

fn batcher(seed: u64) -> ViewBatcher {
    let config = ViewPipelineConfig::supcon(vec![0.1307], vec![0.3081]).with_color_jitter(None);
    ViewBatcher::new(ViewPipeline::new(config), 2, seed)
}

fn flat(batch: supcon_augment::ViewBatch) -> (Vec<f32>, Vec<i64>) {
    (
        batch.views.into_data().try_to_vec::<f32>().unwrap(),
        batch.labels.into_data().try_into_vec_as::<i64>().unwrap(),
    )
}

#[test]
fn a_multi_worker_loader_gives_the_views_of_one_worker() {
    let data = embedded_mnist()
        .unwrap()
        .train
        .subset(&(0..16).collect::<Vec<_>>())
        .unwrap();
    let device = Device::flex();
    let load = |workers: usize| {
        let loader = DataLoaderBuilder::new(batcher(5))
            .batch_size(4)
            .num_workers(workers)
            .set_device(device.clone())
            .build(data.clone());
        let mut batches: Vec<(Vec<f32>, Vec<i64>)> =
            loader.iter().map(|batch| flat(batch.unwrap())).collect();
        // Workers may deliver in any order: compare the batches as a set.
        batches.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        batches
    };
    let one = load(1);
    assert_eq!(one.len(), 4);
    assert_eq!(one[0].0.len(), 2 * 4 * 28 * 28);
    assert_eq!(load(2), one);
    assert_eq!(load(4), one);
}

#[test]
fn the_views_of_a_batch_follow_its_items_and_the_seed() {
    let data = embedded_mnist().unwrap().train;
    let device = Device::flex();
    let items = |indices: &[usize]| indices.iter().map(|&i| data.get(i).unwrap()).collect();
    let (a, labels) = flat(batcher(1).batch(items(&[3, 1, 4]), &device));
    assert_eq!(
        labels,
        [3, 1, 4].map(|i| i64::from(data.labels()[i])).to_vec()
    );
    assert_eq!(flat(batcher(1).batch(items(&[3, 1, 4]), &device)).0, a);
    assert_ne!(flat(batcher(2).batch(items(&[3, 1, 4]), &device)).0, a);
    assert_ne!(flat(batcher(1).batch(items(&[1, 3, 4]), &device)).0, a);
}
