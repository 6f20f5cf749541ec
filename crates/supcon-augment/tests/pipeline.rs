//! The pipeline: presets, seeding, view layout, backend agreement and bad input.

mod common;

use burn::prelude::*;
use common::*;
use supcon_augment::{AugmentError, ViewPipeline, ViewPipelineConfig};

const MEAN: [f64; 3] = [0.4914, 0.4822, 0.4465];
const STD: [f64; 3] = [0.2023, 0.1994, 0.2010];

fn supcon() -> ViewPipelineConfig {
    ViewPipelineConfig::supcon(MEAN.to_vec(), STD.to_vec())
}

#[test]
fn same_seed_same_views_other_seed_other_views() {
    let device = Device::flex();
    let input = Images::random([4, 3, 12, 12], 7);
    let pipeline = ViewPipeline::new(supcon());
    let run = |seed| Images::from_tensor(pipeline.views(input.tensor(&device), 2, seed).unwrap());
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn views_are_a_function_of_the_seed_alone_under_any_scheduling() {
    let device = Device::flex();
    let input = Images::random([4, 3, 12, 12], 7);
    let pipeline = ViewPipeline::new(supcon());
    let seeds: Vec<u64> = (0..6)
        .map(|step| supcon_augment::mix_seed(9, &[1, step]))
        .collect();
    let in_order: Vec<Images> = seeds
        .iter()
        .map(|&seed| Images::from_tensor(pipeline.views(input.tensor(&device), 2, seed).unwrap()))
        .collect();
    // The same seeds from four threads sharing one pipeline by reference, in another order.
    let shared = &pipeline;
    let data = &input;
    let from_threads: Vec<(usize, Images)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..seeds.len())
            .rev()
            .map(|i| {
                let seed = seeds[i];
                let device = device.clone();
                scope.spawn(move || {
                    (
                        i,
                        Images::from_tensor(shared.views(data.tensor(&device), 2, seed).unwrap()),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, images) in from_threads {
        assert_eq!(images, in_order[i], "batch {i}");
    }
    // Different batches get different views.
    assert_ne!(in_order[0], in_order[1]);
}

#[test]
fn views_are_stacked_view_by_view() {
    let device = Device::flex();
    let (batch, views) = (3, 3);
    let input = Images::random([batch, 3, 10, 10], 8);
    let pipeline = ViewPipeline::new(supcon());
    let stacked = Images::from_tensor(pipeline.views(input.tensor(&device), views, 11).unwrap());
    assert_eq!(stacked.shape, [views * batch, 3, 10, 10]);
    // The same draws, made by hand: parameters view by view, image by image.
    let replay = ViewPipeline::new(supcon());
    let params = replay.sample(views * batch, 10, 10, 11);
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
    let pipeline = ViewPipeline::new(ViewPipelineConfig::evaluation(MEAN.to_vec(), STD.to_vec()));
    let got = Images::from_tensor(pipeline.views(input.tensor(&device), 1, 0).unwrap());
    let want = Images::from_fn(input.shape, |n, c, y, x| {
        (input.at(n, c, y, x) - MEAN[c] as f32) / STD[c] as f32
    });
    assert_images_close(&got, &want, 1e-5, "evaluation");
    // Several views without a crop are copies, view by view.
    let two = Images::from_tensor(pipeline.views(input.tensor(&device), 2, 0).unwrap());
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
    let pipeline = ViewPipeline::new(config);
    let params = pipeline.sample(16, 8, 8, 1);
    assert!(
        params.iter().filter(|p| p.jitter.is_some()).count() >= 8,
        "p = 0.8 jitter"
    );
    assert!(params.iter().any(|p| p.flip) && params.iter().any(|p| !p.flip));
    let out = pipeline.views(input.tensor(&device), 2, 1).unwrap();
    assert_eq!(out.dims(), [32, 3, 6, 6]);
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let device = Device::flex();
    let images = || Tensor::<4>::ones([2, 3, 8, 8], &device);
    let wrong_channels = ViewPipeline::new(ViewPipelineConfig::supcon(vec![0.5], vec![0.5]));
    assert_eq!(
        wrong_channels.views(images(), 2, 0).unwrap_err(),
        AugmentError::ChannelMismatch {
            what: "mean",
            got: 1,
            channels: 3
        }
    );
    let bad =
        |config: ViewPipelineConfig| ViewPipeline::new(config).views(images(), 2, 0).unwrap_err();
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
        ViewPipeline::new(supcon()).views(images(), 0, 0),
        Err(AugmentError::Empty(_))
    ));
    let pipeline = ViewPipeline::new(supcon());
    assert!(matches!(
        pipeline.apply(images(), &[]),
        Err(AugmentError::ParamsMismatch { got: 0, batch: 2 })
    ));
}

/// `apply` takes parameters as given, so it checks that each set fits the images: drawn for
/// 64x64 images, the crop boxes do not fit 8x8 ones, and hand-made sets must be well-formed.
#[test]
fn parameters_that_do_not_fit_the_images_are_refused() {
    let device = Device::flex();
    let images = || Tensor::<4>::ones([2, 3, 8, 8], &device);
    let pipeline = ViewPipeline::new(supcon());
    let error = pipeline
        .apply(images(), &pipeline.sample(2, 64, 64, 3))
        .unwrap_err();
    assert!(
        error.to_string().contains("does not fit in a 8x8 image"),
        "{error}"
    );
    let fitting = pipeline.sample(2, 8, 8, 3);
    assert!(pipeline.apply(images(), &fitting).is_ok());
    let with = |edit: fn(&mut supcon_augment::SampleParams)| {
        let mut params = fitting.clone();
        edit(&mut params[1]);
        match pipeline.apply(images(), &params) {
            Err(AugmentError::BadParams { index: 1, why }) => why,
            other => panic!("{other:?}"),
        }
    };
    assert!(with(|p| p.crop.width = 0).contains("is empty"));
    assert!(with(|p| p.crop.left = usize::MAX).contains("does not fit"));
    assert!(with(|p| p.blur_sigma = Some(f32::NAN)).contains("blur sigma NaN"));
    let jitter = supcon_augment::JitterParams {
        brightness: 1.0,
        contrast: 1.0,
        saturation: 1.0,
        hue: 0.0,
        order: [0, 1, 2, 3],
    };
    let mut params = fitting.clone();
    params[0].jitter = Some(jitter);
    assert!(pipeline.apply(images(), &params).is_ok());
    for (bad, want) in [
        (
            supcon_augment::JitterParams {
                order: [0, 1, 1, 3],
                ..jitter
            },
            "not a permutation",
        ),
        (
            supcon_augment::JitterParams {
                contrast: -1.0,
                ..jitter
            },
            "contrast factor -1",
        ),
        (
            supcon_augment::JitterParams { hue: 0.7, ..jitter },
            "hue shift 0.7",
        ),
    ] {
        params[0].jitter = Some(bad);
        let error = pipeline.apply(images(), &params).unwrap_err().to_string();
        assert!(error.contains(want), "{error}");
        assert!(error.starts_with("parameter set 0:"), "{error}");
    }
}
