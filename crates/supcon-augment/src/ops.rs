//! The augmentation operations on a batch `[N, C, H, W]` of floats in `[0, 1]`, each with
//! explicit per-sample parameters. [`ViewPipeline`](crate::ViewPipeline) draws the parameters and
//! calls these; they are public for tests and for pipelines of one's own.

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};

use crate::CropBox;

/// ITU-R BT.601 luma weights (as PIL's `convert("L")`).
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// A `[N, 1, 1, 1]` tensor of per-sample values, to broadcast over images.
fn per_sample(values: &[f32], device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len(), 1, 1, 1]),
        device,
    )
}

/// Crops and resizes every image, `[B, C, H, W]`, to `boxes.len()` outputs
/// `[boxes.len(), C, out_h, out_w]`: output `r` is image `r % B` cropped to `boxes[r]`, resized
/// with bilinear interpolation (`torch.nn.functional.interpolate` semantics: `align_corners =
/// False`, source coordinates clamped to the image) and mirrored left-right where `flips[r]`.
/// So `V * B` boxes make `V` views of the batch, view by view, without copying it first.
///
/// Bilinear resizing is separable: each output is `A_y[r] · image · A_x[r]ᵀ`, with interpolation
/// matrices of two non-zeros a row built on the host; two batched matrix products do the batch.
///
/// # Panics
/// If `boxes.len()` is not a positive multiple of `B` or `flips.len() != boxes.len()` (the
/// pipeline guarantees both).
pub fn resized_crop(
    images: Tensor<4>,
    boxes: &[CropBox],
    flips: &[bool],
    out: [usize; 2],
) -> Tensor<4> {
    let [batch, channels, height, width] = images.dims();
    assert!(!boxes.is_empty() && boxes.len().is_multiple_of(batch) && flips.len() == boxes.len());
    let views = boxes.len() / batch;
    let [out_h, out_w] = out;
    let device = images.device();
    let (mut rows, mut columns) = (Vec::new(), Vec::new());
    for (b, &flip) in boxes.iter().zip(flips) {
        rows.extend(interpolation_matrix(b.top, b.height, height, out_h, false));
        columns.extend(interpolation_matrix_transposed(
            b.left, b.width, width, out_w, flip,
        ));
    }
    let a_y = Tensor::<5>::from_data(
        TensorData::new(rows, [views, batch, 1, out_h, height]),
        &device,
    );
    let a_x_t = Tensor::<5>::from_data(
        TensorData::new(columns, [views, batch, 1, width, out_w]),
        &device,
    );
    let x = images.reshape([1, batch, channels, height, width]);
    let resized = a_y.matmul(x.matmul(a_x_t));
    resized.reshape([views * batch, channels, out_h, out_w])
}

/// `[out, size]` row-major: output `o` of a window (`start`, `length`) of an axis of `size`
/// pixels interpolates source `start + (o + 0.5) length / out - 0.5`, clamped to the axis.
fn interpolation_matrix(
    start: usize,
    length: usize,
    size: usize,
    out: usize,
    flip: bool,
) -> Vec<f32> {
    let mut matrix = vec![0.0f32; out * size];
    for o in 0..out {
        let read = if flip { out - 1 - o } else { o };
        let source = (start as f64 + (read as f64 + 0.5) * length as f64 / out as f64 - 0.5)
            .clamp(0.0, (size - 1) as f64);
        let first = source.floor() as usize;
        let second = (first + 1).min(size - 1);
        let fraction = (source - first as f64) as f32;
        matrix[o * size + first] += 1.0 - fraction;
        matrix[o * size + second] += fraction;
    }
    matrix
}

/// The transpose of [`interpolation_matrix`], `[size, out]`. Built on the host: multiplying by
/// `Tensor::transpose` of the untransposed matrix instead made two SupCon views of 256 images
/// take 99.6 ms instead of 61-78 ms on flex.
fn interpolation_matrix_transposed(
    start: usize,
    length: usize,
    size: usize,
    out: usize,
    flip: bool,
) -> Vec<f32> {
    let matrix = interpolation_matrix(start, length, size, out, flip);
    let mut transposed = vec![0.0f32; size * out];
    for o in 0..out {
        for s in 0..size {
            transposed[s * out + o] = matrix[o * size + s];
        }
    }
    transposed
}

/// `clamp(x * factor, 0, 1)` per sample (torchvision `adjust_brightness`).
pub fn adjust_brightness(images: Tensor<4>, factors: &[f32]) -> Tensor<4> {
    let device = images.device();
    (images * per_sample(factors, &device)).clamp(0.0, 1.0)
}

/// The luma `[N, 1, H, W]` of RGB images (the image itself when single-channel).
pub fn luma(images: Tensor<4>) -> Tensor<4> {
    let [n, channels, h, w] = images.dims();
    if channels == 1 {
        return images;
    }
    let weights = Tensor::<4>::from_data(
        TensorData::new(LUMA.to_vec(), [1, 3, 1, 1]),
        &images.device(),
    );
    (images * weights).sum_dim(1).reshape([n, 1, h, w])
}

/// `clamp(c x + (1 - c) mean(luma(x)), 0, 1)` per sample, the mean over the whole image
/// (torchvision `adjust_contrast`).
pub fn adjust_contrast(images: Tensor<4>, factors: &[f32]) -> Tensor<4> {
    let [n, _, h, w] = images.dims();
    let device = images.device();
    let mean = luma(images.clone())
        .reshape([n, h * w])
        .mean_dim(1)
        .reshape([n, 1, 1, 1]);
    blend(images, mean, per_sample(factors, &device))
}

/// `clamp(s x + (1 - s) luma(x), 0, 1)` per sample (torchvision `adjust_saturation`); single
/// channel images are returned unchanged.
pub fn adjust_saturation(images: Tensor<4>, factors: &[f32]) -> Tensor<4> {
    if images.dims()[1] == 1 {
        return images;
    }
    let device = images.device();
    let grey = luma(images.clone());
    blend(images, grey, per_sample(factors, &device))
}

/// `clamp(f x + (1 - f) other, 0, 1)`.
fn blend(images: Tensor<4>, other: Tensor<4>, factor: Tensor<4>) -> Tensor<4> {
    let rest = factor.clone().neg().add_scalar(1.0);
    (images * factor + other * rest).clamp(0.0, 1.0)
}

/// Rotates the hue by `shifts` turns per sample, through HSV as torchvision's `adjust_hue`
/// defines it (`_rgb2hsv`, shift, `_hsv2rgb`). Samples with shift 0, and single-channel images,
/// are returned unchanged (no round trip).
///
/// HSV back to RGB uses the closed form `c_n = v - v s clamp(min(k, 4 - k), 0, 1)` with
/// `k = (n + 6h) mod 6` and `n = 5, 3, 1` for red, green, blue, which equals torchvision's
/// six-sector table for `s, v` in `[0, 1]`.
pub fn adjust_hue(images: Tensor<4>, shifts: &[f32]) -> Tensor<4> {
    let [n, channels, h, w] = images.dims();
    if channels == 1 || shifts.iter().all(|&s| s == 0.0) {
        return images;
    }
    let device = images.device();
    let channel = |c: usize| images.clone().narrow(1, c, 1);
    let (r, g, b) = (channel(0), channel(1), channel(2));
    let value = images.clone().max_dim(1);
    let range = value.clone() - images.clone().min_dim(1);
    let grey = range.clone().equal_elem(0.0);
    let saturation = range.clone() / value.clone().mask_fill(grey.clone(), 1.0);
    let divisor = range.mask_fill(grey, 1.0);
    // Six times the hue: red is the maximum first, then green, then blue (torchvision's order).
    let ratio = |a: &Tensor<4>, b: &Tensor<4>| (a.clone() - b.clone()) / divisor.clone();
    let hue6 = ratio(&r, &g).add_scalar(4.0);
    let hue6 = hue6.mask_where(
        value.clone().equal(g.clone()),
        ratio(&b, &r).add_scalar(2.0),
    );
    let hue6 = hue6.mask_where(value.clone().equal(r), ratio(&g, &b));
    let hue = (hue6.div_scalar(6.0).add_scalar(1.0).remainder_scalar(1.0)
        + per_sample(shifts, &device))
    .remainder_scalar(1.0);

    let offsets = Tensor::<4>::from_data(
        TensorData::new(vec![5.0f32, 3.0, 1.0], [1, 3, 1, 1]),
        &device,
    );
    let k = (hue.mul_scalar(6.0) + offsets).remainder_scalar(6.0); // [n, 3, h, w]
    let ramp = k.clone().min_pair(k.neg().add_scalar(4.0)).clamp(0.0, 1.0);
    let rotated = value.clone() - (value * saturation) * ramp;

    let shifted: Vec<bool> = shifts.iter().map(|&s| s != 0.0).collect();
    let shifted = Tensor::<4, Bool>::from_data(TensorData::new(shifted, [n, 1, 1, 1]), &device)
        .expand([n, channels, h, w]);
    images.mask_where(shifted, rotated)
}

/// Replaces the selected RGB images by their luma in all three channels (torchvision
/// `RandomGrayscale` keeps the channel count); single-channel images are unchanged.
pub fn grayscale(images: Tensor<4>, selected: &[bool]) -> Tensor<4> {
    let [n, channels, h, w] = images.dims();
    if channels == 1 || !selected.contains(&true) {
        return images;
    }
    let device = images.device();
    let grey = luma(images.clone()).expand([n, channels, h, w]);
    let selected =
        Tensor::<4, Bool>::from_data(TensorData::new(selected.to_vec(), [n, 1, 1, 1]), &device)
            .expand([n, channels, h, w]);
    images.mask_where(selected, grey)
}

/// The 1-D Gaussian kernel of `size` taps (odd) and `sigma` pixels, normalised to sum 1
/// (torchvision `_get_gaussian_kernel1d`); `sigma` `None` gives the identity kernel.
pub fn gaussian_kernel(size: usize, sigma: Option<f32>) -> Vec<f32> {
    let half = (size / 2) as f32;
    match sigma {
        None => (0..size)
            .map(|i| if i == size / 2 { 1.0 } else { 0.0 })
            .collect(),
        Some(sigma) => {
            let raw: Vec<f32> = (0..size)
                .map(|i| (-0.5 * ((i as f32 - half) / sigma).powi(2)).exp())
                .collect();
            let sum: f32 = raw.iter().sum();
            raw.into_iter().map(|v| v / sum).collect()
        }
    }
}

/// Blurs each image with its own Gaussian (`None`: unchanged), kernel `size` (odd), reflect
/// padding (torchvision `gaussian_blur`). A separable, grouped convolution: one group per image
/// channel.
pub fn gaussian_blur(images: Tensor<4>, sigmas: &[Option<f32>], size: usize) -> Tensor<4> {
    let [n, channels, h, w] = images.dims();
    if sigmas.iter().all(Option::is_none) {
        return images;
    }
    let device = images.device();
    let taps: Vec<f32> = sigmas
        .iter()
        .flat_map(|&s| {
            let kernel = gaussian_kernel(size, s);
            (0..channels).flat_map(move |_| kernel.clone())
        })
        .collect();
    let groups = n * channels;
    let horizontal =
        Tensor::<4>::from_data(TensorData::new(taps.clone(), [groups, 1, 1, size]), &device);
    let vertical = Tensor::<4>::from_data(TensorData::new(taps, [groups, 1, size, 1]), &device);
    let pad = size / 2;
    let x = images
        .reshape([1, groups, h, w])
        .pad([(pad, pad), (pad, pad)], PadMode::Reflect);
    let x = conv2d(
        x,
        horizontal,
        None,
        ConvOptions::new([1, 1], [0, 0], [1, 1], groups),
    );
    let x = conv2d(
        x,
        vertical,
        None,
        ConvOptions::new([1, 1], [0, 0], [1, 1], groups),
    );
    x.reshape([n, channels, h, w])
}

/// `(x - mean[c]) / std[c]`.
pub fn normalize(images: Tensor<4>, mean: &[f64], std: &[f64]) -> Tensor<4> {
    let channels = mean.len();
    let device = images.device();
    let column = |v: &[f64]| {
        let values: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::<4>::from_data(TensorData::new(values, [1, channels, 1, 1]), &device)
    };
    (images - column(mean)) / column(std)
}
