//! The pipeline: presets, seeding, view layout, backend agreement and bad input.

mod common;

use burn::prelude::*;
use common::*;
use supcon_augment::{AugmentError, BlurConfig, ViewPipeline, ViewPipelineConfig};

const MEAN: [f64; 3] = [0.4914, 0.4822, 0.4465];
const STD: [f64; 3] = [0.2023, 0.1994, 0.2010];

fn supcon() -> ViewPipelineConfig {
    ViewPipelineConfig::supcon(MEAN.to_vec(), STD.to_vec())
}

#[test]
fn same_seed_same_views_other_seed_other_views() {
    let device = Device::flex();
    let input = Images::random([4, 3, 12, 12], 7);
    let run = |seed| {
        Images::from_tensor(
            ViewPipeline::new(supcon(), seed)
                .views(input.tensor(&device), 2)
                .unwrap(),
        )
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
    // Consecutive calls draw fresh parameters.
    let mut pipeline = ViewPipeline::new(supcon(), 3);
    let first = Images::from_tensor(pipeline.views(input.tensor(&device), 2).unwrap());
    let second = Images::from_tensor(pipeline.views(input.tensor(&device), 2).unwrap());
    assert_ne!(first, second);
}

#[test]
fn views_are_stacked_view_by_view() {
    let device = Device::flex();
    let (batch, views) = (3, 3);
    let input = Images::random([batch, 3, 10, 10], 8);
    let mut pipeline = ViewPipeline::new(supcon(), 11);
    let stacked = Images::from_tensor(pipeline.views(input.tensor(&device), views).unwrap());
    assert_eq!(stacked.shape, [views * batch, 3, 10, 10]);
    // The same draws, made by hand: parameters view by view, image by image.
    let mut replay = ViewPipeline::new(supcon(), 11);
    let params = replay.sample(views * batch, 10, 10);
    let image_size = 3 * 10 * 10;
    for v in 0..views {
        for b in 0..batch {
            let one = Images {
                shape: [1, 3, 10, 10],
                data: input.data[b * image_size..(b + 1) * image_size].to_vec(),
            };
            let want = Images::from_tensor(
                replay
                    .apply(one.tensor(&device), &params[v * batch + b..=v * batch + b])
                    .unwrap(),
            );
            let row = v * batch + b;
            let got = Images {
                shape: [1, 3, 10, 10],
                data: stacked.data[row * image_size..(row + 1) * image_size].to_vec(),
            };
            assert_images_close(&got, &want, 1e-5, &format!("view {v} of image {b}"));
        }
    }
}

#[test]
fn evaluation_preset_only_normalises() {
    let device = Device::flex();
    let input = Images::random([2, 3, 5, 5], 9);
    let mut pipeline = ViewPipeline::new(
        ViewPipelineConfig::evaluation(MEAN.to_vec(), STD.to_vec()),
        0,
    );
    let got = Images::from_tensor(pipeline.views(input.tensor(&device), 1).unwrap());
    let want = Images::from_fn(input.shape, |n, c, y, x| {
        (input.at(n, c, y, x) - MEAN[c] as f32) / STD[c] as f32
    });
    assert_images_close(&got, &want, 1e-5, "evaluation");
    // Several views without a crop are copies, view by view.
    let two = Images::from_tensor(pipeline.views(input.tensor(&device), 2).unwrap());
    assert_eq!(two.shape, [4, 3, 5, 5]);
    assert_eq!(two.data[..want.data.len()], two.data[want.data.len()..]);
    assert_images_close(
        &Images {
            shape: want.shape,
            data: two.data[..want.data.len()].to_vec(),
        },
        &want,
        1e-5,
        "view 0",
    );
}

#[test]
fn supcon_preset_changes_most_views_and_keeps_the_output_size() {
    let device = Device::flex();
    let input = Images::random([16, 3, 8, 8], 10);
    let config = supcon().with_output_size(Some([6, 6]));
    let mut pipeline = ViewPipeline::new(config, 1);
    let params = pipeline.sample(16, 8, 8);
    assert!(
        params.iter().filter(|p| p.jitter.is_some()).count() >= 8,
        "p = 0.8 jitter"
    );
    assert!(params.iter().any(|p| p.flip) && params.iter().any(|p| !p.flip));
    let out = pipeline.views(input.tensor(&device), 2).unwrap();
    assert_eq!(out.dims(), [32, 3, 6, 6]);
}

#[test]
#[allow(deprecated)]
fn flex_and_ndarray_agree() {
    let input = Images::random([4, 3, 12, 12], 12);
    let config = supcon().with_blur(Some(
        BlurConfig::new()
            .with_probability(0.7)
            .with_kernel_fraction(0.3),
    ));
    let run = |device: Device| {
        Images::from_tensor(
            ViewPipeline::new(config.clone(), 5)
                .views(input.tensor(&device), 2)
                .unwrap(),
        )
    };
    let flex = run(Device::flex());
    let ndarray = run(Device::ndarray());
    assert_images_close(&ndarray, &flex, 1e-5, "ndarray vs flex");
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let device = Device::flex();
    let images = || Tensor::<4>::ones([2, 3, 8, 8], &device);
    let mut wrong_channels = ViewPipeline::new(ViewPipelineConfig::supcon(vec![0.5], vec![0.5]), 0);
    assert_eq!(
        wrong_channels.views(images(), 2).unwrap_err(),
        AugmentError::ChannelMismatch {
            what: "mean",
            got: 1,
            channels: 3
        }
    );
    let bad =
        |config: ViewPipelineConfig| ViewPipeline::new(config, 0).views(images(), 2).unwrap_err();
    assert!(matches!(
        bad(supcon().with_flip_probability(1.5)),
        AugmentError::InvalidParameter {
            name: "flip_probability",
            ..
        }
    ));
    assert!(matches!(
        bad(ViewPipelineConfig::supcon(
            MEAN.to_vec(),
            vec![0.2, 0.0, 0.2]
        )),
        AugmentError::InvalidParameter { name: "std", .. }
    ));
    let crop = supcon_augment::CropConfig::new().with_scale([0.5, 0.2]);
    assert!(matches!(
        bad(supcon().with_crop(Some(crop))),
        AugmentError::InvalidParameter {
            name: "crop.scale",
            ..
        }
    ));
    assert!(matches!(
        ViewPipeline::new(supcon(), 0).views(images(), 0),
        Err(AugmentError::Empty(_))
    ));
    let pipeline = ViewPipeline::new(supcon(), 0);
    assert!(matches!(
        pipeline.apply(images(), &[]),
        Err(AugmentError::ParamsMismatch { got: 0, batch: 2 })
    ));
}
