//! Each augmentation operation against a straightforward per-pixel implementation on small
//! images, and the identities: parameters that change nothing change nothing.

mod common;

use burn::prelude::*;
use common::*;
use supcon_augment::CropBox;
use supcon_augment::ops;

fn device() -> Device {
    Device::flex()
}

#[test]
fn neutral_parameters_leave_images_unchanged() {
    let device = device();
    let input = Images::random([3, 3, 7, 5], 1);
    let x = || input.tensor(&device);
    let full = vec![CropBox::full(7, 5); 3];
    let same =
        |t: Tensor<4>, what| assert_images_close(&Images::from_tensor(t), &input, 1e-6, what);
    same(
        ops::resized_crop(x(), &full, &[false; 3], [7, 5]),
        "crop of the whole image",
    );
    let flipped = ops::resized_crop(x(), &full, &[true; 3], [7, 5]);
    same(
        ops::resized_crop(flipped, &full, &[true; 3], [7, 5]),
        "flip twice",
    );
    same(ops::adjust_brightness(x(), &[1.0; 3]), "brightness 1");
    same(ops::adjust_contrast(x(), &[1.0; 3]), "contrast 1");
    same(ops::adjust_saturation(x(), &[1.0; 3]), "saturation 1");
    same(ops::adjust_hue(x(), &[0.0; 3]), "hue 0");
    same(ops::grayscale(x(), &[false; 3]), "no grayscale");
    same(ops::gaussian_blur(x(), &[None; 3], 3), "no blur");
    same(ops::normalize(x(), &[0.0; 3], &[1.0; 3]), "mean 0, std 1");
    // A full turn of hue is the identity up to the HSV round trip.
    let turned = Images::from_tensor(ops::adjust_hue(x(), &[0.5; 3]));
    let back = Images::from_tensor(ops::adjust_hue(turned.tensor(&device), &[0.5; 3]));
    assert_images_close(&back, &input, 1e-5, "hue +0.5 twice");
}

#[test]
fn resized_crop_matches_bilinear_interpolation() {
    let device = device();
    let input = Images::random([3, 2, 9, 8], 2);
    let boxes = [
        CropBox {
            top: 1,
            left: 2,
            height: 5,
            width: 4,
        },
        CropBox {
            top: 0,
            left: 0,
            height: 9,
            width: 8,
        },
        CropBox {
            top: 3,
            left: 1,
            height: 6,
            width: 7,
        },
    ];
    let flips = [false, true, true];
    let out = [6, 6];
    let got = Images::from_tensor(ops::resized_crop(
        input.tensor(&device),
        &boxes,
        &flips,
        out,
    ));
    let want = Images::from_fn([3, 2, 6, 6], |n, c, y, x| {
        let b = boxes[n];
        let x = if flips[n] { 5 - x } else { x };
        let sy = b.top as f64 + (y as f64 + 0.5) * b.height as f64 / 6.0 - 0.5;
        let sx = b.left as f64 + (x as f64 + 0.5) * b.width as f64 / 6.0 - 0.5;
        bilinear(&input, n, c, sy, sx)
    });
    assert_images_close(&got, &want, 1e-5, "resized crop");
}

#[test]
fn color_operations_match_their_per_pixel_definitions() {
    let device = device();
    let input = Images::random([2, 3, 4, 5], 3);
    let x = || input.tensor(&device);
    let factors = [0.6f32, 1.3];

    let want = Images::from_fn(input.shape, |n, c, y, x| {
        (input.at(n, c, y, x) * factors[n]).clamp(0.0, 1.0)
    });
    assert_images_close(
        &Images::from_tensor(ops::adjust_brightness(x(), &factors)),
        &want,
        1e-6,
        "brightness",
    );

    let grey = |n: usize, y: usize, x: usize| {
        luma(
            input.at(n, 0, y, x),
            input.at(n, 1, y, x),
            input.at(n, 2, y, x),
        )
    };
    let mean = |n: usize| {
        (0..4)
            .flat_map(|y| (0..5).map(move |x| (y, x)))
            .map(|(y, x)| grey(n, y, x))
            .sum::<f32>()
            / 20.0
    };
    let want = Images::from_fn(input.shape, |n, c, y, x| {
        (factors[n] * input.at(n, c, y, x) + (1.0 - factors[n]) * mean(n)).clamp(0.0, 1.0)
    });
    assert_images_close(
        &Images::from_tensor(ops::adjust_contrast(x(), &factors)),
        &want,
        1e-5,
        "contrast",
    );

    let want = Images::from_fn(input.shape, |n, c, y, x| {
        (factors[n] * input.at(n, c, y, x) + (1.0 - factors[n]) * grey(n, y, x)).clamp(0.0, 1.0)
    });
    assert_images_close(
        &Images::from_tensor(ops::adjust_saturation(x(), &factors)),
        &want,
        1e-5,
        "saturation",
    );

    let shifts = [0.1f32, -0.07];
    let want = Images::from_fn(input.shape, |n, c, y, x| {
        rotate_hue(
            [
                input.at(n, 0, y, x),
                input.at(n, 1, y, x),
                input.at(n, 2, y, x),
            ],
            shifts[n],
        )[c]
    });
    assert_images_close(
        &Images::from_tensor(ops::adjust_hue(x(), &shifts)),
        &want,
        1e-5,
        "hue",
    );

    let want = Images::from_fn(input.shape, |n, c, y, x| {
        if n == 1 {
            grey(n, y, x)
        } else {
            input.at(n, c, y, x)
        }
    });
    assert_images_close(
        &Images::from_tensor(ops::grayscale(x(), &[false, true])),
        &want,
        1e-6,
        "grayscale",
    );

    let (mean_c, std_c) = ([0.5, 0.4, 0.3], [0.2, 0.25, 0.3]);
    let want = Images::from_fn(input.shape, |n, c, y, x| {
        (input.at(n, c, y, x) - mean_c[c] as f32) / std_c[c] as f32
    });
    assert_images_close(
        &Images::from_tensor(ops::normalize(x(), &mean_c, &std_c)),
        &want,
        1e-5,
        "normalize",
    );
}

#[test]
fn hue_handles_grey_pure_and_saturated_pixels() {
    // Grey pixels (max = min), pure primaries and values at 0 and 1: the definitions' edge cases.
    let pixels = [
        [0.5, 0.5, 0.5],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0],
        [0.2, 0.9, 0.9],
    ];
    let input = Images::from_fn([1, 3, 1, pixels.len()], |_, c, _, x| pixels[x][c]);
    for shift in [0.1f32, 0.25, -0.4] {
        let got = Images::from_tensor(ops::adjust_hue(input.tensor(&device()), &[shift]));
        let want = Images::from_fn(input.shape, |_, c, _, x| rotate_hue(pixels[x], shift)[c]);
        assert_images_close(&got, &want, 1e-5, &format!("hue {shift}"));
    }
}

#[test]
fn single_channel_images_skip_saturation_hue_and_grayscale() {
    let device = device();
    let input = Images::random([2, 1, 4, 4], 4);
    let same = |t: Tensor<4>, what| assert_images_close(&Images::from_tensor(t), &input, 0.0, what);
    same(
        ops::adjust_saturation(input.tensor(&device), &[0.2, 1.7]),
        "saturation",
    );
    same(ops::adjust_hue(input.tensor(&device), &[0.3, -0.2]), "hue");
    same(
        ops::grayscale(input.tensor(&device), &[true, true]),
        "grayscale",
    );
    // Contrast blends with the image's own mean.
    let mean = |n| (0..16).map(|i| input.data[n * 16 + i]).sum::<f32>() / 16.0;
    let want = Images::from_fn(input.shape, |n, c, y, x| {
        (0.5 * input.at(n, c, y, x) + 0.5 * mean(n)).clamp(0.0, 1.0)
    });
    assert_images_close(
        &Images::from_tensor(ops::adjust_contrast(input.tensor(&device), &[0.5, 0.5])),
        &want,
        1e-6,
        "contrast",
    );
}

#[test]
fn gaussian_blur_matches_direct_convolution_with_reflect_padding() {
    let device = device();
    let input = Images::random([2, 3, 6, 7], 5);
    let sigmas = [Some(0.8f32), Some(1.7)];
    let size = 5;
    let got = Images::from_tensor(ops::gaussian_blur(input.tensor(&device), &sigmas, size));
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let i = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        i as usize
    };
    let want = Images::from_fn(input.shape, |n, c, y, x| {
        let sigma = f64::from(sigmas[n].unwrap());
        let weights: Vec<f64> = (0..size)
            .map(|i| (-0.5 * ((i as f64 - 2.0) / sigma).powi(2)).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        for (dy, wy) in weights.iter().enumerate() {
            for (dx, wx) in weights.iter().enumerate() {
                let yy = reflect(y as isize + dy as isize - 2, 6);
                let xx = reflect(x as isize + dx as isize - 2, 7);
                acc += wy * wx * f64::from(input.at(n, c, yy, xx));
            }
        }
        (acc / (total * total)) as f32
    });
    assert_images_close(&got, &want, 1e-5, "blur");
}
