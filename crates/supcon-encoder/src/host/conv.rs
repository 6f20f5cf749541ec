//! A 2-D convolution (one group) and its weight gradient as matrix products with the unfolded
//! input ([`super::unfold`]), as PyTorch's CPU backend computes them, image by image (a few at
//! once on small maps, [`MIN_COLUMNS`]): each core unfolds its images into a buffer that stays
//! in its cache.
//!
//! - forward: `y_b = w' cols_b`, `w'` the kernel as `[Co, Ci kh kw]`, written straight into `y`;
//! - weight gradient: `dw = Σ_b dy'_b cols_b^T` (or, by shape, its transpose `Σ_b cols_b
//!   dy'_b^T`), `dy'_b` image `b`'s output gradient as `[Co, Oh Ow]`, each core summing over
//!   its images, then the cores' sums added; that is
//!   `dw[o, (i, p, q)] = Σ_b Σ_(y, z) dy[b, o, y, z] x[b, i, y sh + p dh - ph, z sw + q dw - pw]`.
//!
//! Burn's default weight gradient instead runs a convolution of `x` whose kernel is `dy`, whose
//! cost follows the feature map rather than the weight (issue 16, docs/cpu-profile.md). Image by
//! image beat both flex's forward (a channels-last copy, then unfolded tiles) and this module's
//! previous products over large groups of images (whose unfolded input went to memory and
//! back): on an AVX-512 Xeon, `cargo xtask ops`, the ResNet-18 step's forward convolutions took
//! 360 ms against 570 and its weight gradients 520 against 740-1,090; the small CNN's 51
//! against 109 and 49-66 against 110-144.

use burn::backend::flex::FlexTensor;
use burn::tensor::Shape;

use super::parallel::{cores, for_rows};
use super::unfold::{Geometry, fold_images, unfold_images};
use super::{f32s, flex_tensor};

/// Columns (output positions) per product, at least: on smaller maps several images go into one
/// product. `cargo xtask ops` on an AVX-512 Xeon, the forward image by image against 64
/// columns: 512 x 4x4 (16 positions) 40 against 22 ms, 256->512 8x8 stride 2 20 against 11;
/// 128 and 256 columns were no faster.
const MIN_COLUMNS: usize = 64;

/// Images per product for maps of `positions`, out of `batch`.
fn images_per_product(positions: usize, batch: usize) -> usize {
    MIN_COLUMNS.div_ceil(positions.max(1)).clamp(1, batch)
}

/// The largest weight (`Co Ci kh kw` values) whose gradient is summed transposed.
const TRANSPOSED_WEIGHT: usize = 1 << 20;

/// Calls `f(first_image, images, parallelism)` on pieces of `out` (whole images of
/// `image_len` values), one piece a core with single-threaded products; with fewer images than
/// cores, on all of `out` at once, each product on all the cores.
fn over_cores(
    out: &mut [f32],
    image_len: usize,
    f: impl Fn(usize, &mut [f32], gemm::Parallelism) + Sync,
) {
    if out.len() / image_len.max(1) < cores() {
        f(0, out, gemm::Parallelism::Rayon(0));
    } else {
        let work = out.len();
        for_rows(out, image_len, work, |first, images| {
            f(first, images, gemm::Parallelism::None)
        });
    }
}

/// `y` `[B, Co, Oh, Ow]` of float32 `x` and `weight` on flex, one group.
pub(crate) fn forward(
    x: FlexTensor,
    weight: FlexTensor,
    geometry: Geometry,
    batch: usize,
) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let (xs, kernel) = (f32s(&x), f32s(&weight));
    let (co, patch, positions) = (geometry.output[0], geometry.patch(), geometry.positions());
    let image_len = co * positions;
    let mut y = vec![0.0f32; batch * image_len];
    // More than one image per product go through a small buffer.
    let per_product = images_per_product(positions, batch);
    let images_from = |first: usize, images: &mut [f32], parallelism: gemm::Parallelism| {
        let mut cols = Vec::new();
        let mut part = Vec::new();
        for (g, group) in images.chunks_mut(per_product * image_len).enumerate() {
            let count = group.len() / image_len;
            let columns = count * positions;
            if cols.len() != patch * columns {
                // The padding's entries are never written: zero them once per size.
                cols = vec![0.0f32; patch * columns];
            }
            let image = first + g * per_product;
            unfold_images(xs, &geometry, image, count, &mut cols);
            let direct = count == 1;
            if !direct {
                part.resize(co * columns, 0.0);
            }
            let out = if direct { &mut *group } else { &mut part[..] };
            // SAFETY: `out` is `[Co, columns]`, `kernel` `[Co, patch]` and `cols` `[patch,
            // columns]`, all row-major and as long as the strides say.
            unsafe {
                gemm::gemm(
                    co,
                    columns,
                    patch,
                    out.as_mut_ptr(),
                    1,
                    columns as isize,
                    false,
                    kernel.as_ptr(),
                    1,
                    patch as isize,
                    cols.as_ptr(),
                    1,
                    columns as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
            if !direct {
                // [Co, count Oh Ow] to count images of [Co, Oh Ow].
                for (n, image) in group.chunks_exact_mut(image_len).enumerate() {
                    for (o, row) in image.chunks_exact_mut(positions).enumerate() {
                        row.copy_from_slice(&part[o * columns + n * positions..][..positions]);
                    }
                }
            }
        }
    };
    over_cores(&mut y, image_len, images_from);
    let [_, oh, ow] = geometry.output;
    flex_tensor(y, Shape::new([batch, co, oh, ow]))
}

/// `dx` `[B, Ci, H, W]` for float32 `weight` and `output_grad` on flex, one group: `dcols_b =
/// w'^T dy'_b`, folded back onto the input ([`fold_images`], the adjoint of the unfolding).
pub(crate) fn input_gradient(
    weight: FlexTensor,
    output_grad: FlexTensor,
    geometry: Geometry,
    batch: usize,
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let output_grad = output_grad.to_contiguous();
    let dys = f32s(&output_grad);
    let (co, patch, positions) = (geometry.output[0], geometry.patch(), geometry.positions());
    // `w'^T` as `[patch, Co]`, row-major: gemm reads it far faster than `w'` transposed
    // through strides (`cargo xtask ops` on an AVX-512 Xeon, ResNet-18's 512 x 4x4 input
    // gradient: see docs/cpu-profile.md), and the copy is once per operation.
    let kernel_t = transpose(f32s(&weight), co, patch);
    let [ci, h, w] = geometry.input;
    let (image_len, input_len) = (co * positions, ci * h * w);
    let per_product = images_per_product(positions, batch);
    let mut dx = vec![0.0f32; batch * input_len];
    let images_from = |first: usize, images: &mut [f32], parallelism: gemm::Parallelism| {
        let mut dcols = Vec::new();
        let mut dy = Vec::new();
        for (g, group) in images.chunks_mut(per_product * input_len).enumerate() {
            let count = group.len() / input_len;
            let columns = count * positions;
            dcols.resize(patch * columns, 0.0);
            let image = first + g * per_product;
            let source = &dys[image * image_len..(image + count) * image_len];
            let dy = if count == 1 {
                source
            } else {
                gather_output_grad(source, co, positions, false, &mut dy);
                &dy[..]
            };
            // SAFETY: `dcols` is `[patch, columns]`, `kernel_t` `[patch, Co]` and `dy` `[Co,
            // columns]`, row-major and as long as the strides say.
            unsafe {
                gemm::gemm(
                    patch,
                    columns,
                    co,
                    dcols.as_mut_ptr(),
                    1,
                    columns as isize,
                    false,
                    kernel_t.as_ptr(),
                    1,
                    co as isize,
                    dy.as_ptr(),
                    1,
                    columns as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
            fold_images(&mut dcols, &geometry, count, group);
        }
    };
    over_cores(&mut dx, input_len, images_from);
    flex_tensor(dx, Shape::new([batch, ci, h, w]))
}

/// `dw` `[Co, Ci, kh, kw]` for float32 `x` and `output_grad` on flex, one group.
pub(crate) fn weight_gradient(
    x: FlexTensor,
    output_grad: FlexTensor,
    geometry: Geometry,
    batch: usize,
) -> FlexTensor {
    let x = x.to_contiguous();
    let output_grad = output_grad.to_contiguous();
    let (xs, dys) = (f32s(&x), f32s(&output_grad));
    let (co, patch, positions) = (geometry.output[0], geometry.patch(), geometry.positions());
    let image_len = co * positions;
    let per_product = images_per_product(positions, batch);
    // Which way round the product goes: `dw^T += cols dy'^T` (the output gradient gathered
    // transposed, the sum transposed back at the end) where the patch has at least as many
    // rows as there are output channels and the weight is not too large, `dw += dy' cols^T`
    // elsewhere. `cargo xtask ops` on an AVX-512 Xeon (ms, transposed against not): 64 x 32x32
    // 30 against 53, 32->64 28x28 stride 2 17-19 against 17-26, 128 x 16x16 28-30 against
    // 33-34; the stems 7 against 3, 512 x 4x4 (a weight of 2.4 Mi values) 47 against 33-42.
    let transposed = patch >= co && co * patch <= TRANSPOSED_WEIGHT;
    let sum_images = |first: usize, images: usize, parallelism: gemm::Parallelism| {
        let mut sum = vec![0.0f32; co * patch];
        let mut cols = Vec::new();
        let mut dy = Vec::new();
        for group_first in (first..first + images).step_by(per_product) {
            let count = per_product.min(first + images - group_first);
            let columns = count * positions;
            if cols.len() != patch * columns {
                // The padding's entries are never written: zero them once per size.
                cols = vec![0.0f32; patch * columns];
            }
            unfold_images(xs, &geometry, group_first, count, &mut cols);
            let source = &dys[group_first * image_len..(group_first + count) * image_len];
            let dy = if count == 1 && !transposed {
                source
            } else {
                gather_output_grad(source, co, positions, transposed, &mut dy);
                &dy[..]
            };
            // SAFETY: `sum` is `[Co, patch]` (or `[patch, Co]`), `dy` `[Co, columns]` (or
            // `[columns, Co]`) and `cols` `[patch, columns]`, row-major and as long as the
            // strides say.
            unsafe {
                let (m, n) = if transposed { (patch, co) } else { (co, patch) };
                let (lhs, lhs_rs, rhs, rhs_cs, rhs_rs) = if transposed {
                    (cols.as_ptr(), columns, dy.as_ptr(), 1, co)
                } else {
                    (dy.as_ptr(), columns, cols.as_ptr(), columns, 1)
                };
                gemm::gemm(
                    m,
                    n,
                    columns,
                    sum.as_mut_ptr(),
                    1,
                    n as isize,
                    true,
                    lhs,
                    1,
                    lhs_rs as isize,
                    rhs,
                    rhs_cs as isize,
                    rhs_rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
        sum
    };
    let total = if batch < cores() {
        // Fewer images than cores: one after the other, each product on all of them.
        sum_images(0, batch, gemm::Parallelism::Rayon(0))
    } else {
        // One sum a core, each over its consecutive images.
        let per_core = batch.div_ceil(cores());
        let mut sums = vec![Vec::new(); batch.div_ceil(per_core)];
        for_rows(&mut sums, 1, xs.len(), |first_core, piece| {
            for (k, sum) in piece.iter_mut().enumerate() {
                let first = (first_core + k) * per_core;
                *sum = sum_images(first, per_core.min(batch - first), gemm::Parallelism::None);
            }
        });
        let mut sums = sums.into_iter();
        let mut total = sums.next().expect("a batch of at least one image");
        for sum in sums {
            total.iter_mut().zip(&sum).for_each(|(t, v)| *t += v);
        }
        total
    };
    let dw = if transposed {
        transpose(&total, patch, co)
    } else {
        total
    };
    let [ci, _, _] = geometry.input;
    flex_tensor(
        dw,
        Shape::new([co, ci, geometry.kernel[0], geometry.kernel[1]]),
    )
}

/// `matrix` (`[rows, columns]`, row-major) transposed, as `[columns, rows]`, over the cores.
fn transpose(matrix: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; matrix.len()];
    for_rows(&mut out, rows, matrix.len(), |first, lines| {
        transpose_lines(matrix, rows, columns, first, lines);
    });
    out
}

/// Lines `first..` of `matrix` (`[rows, columns]`) transposed, into `lines` (whole lines of
/// `rows`): bands of 16 rows at a time, so that the reads stay in a few cache lines.
fn transpose_lines(matrix: &[f32], rows: usize, columns: usize, first: usize, lines: &mut [f32]) {
    const BAND: usize = 16;
    debug_assert_eq!(matrix.len(), rows * columns);
    for band in (0..rows).step_by(BAND) {
        let band = band..(band + BAND).min(rows);
        for (j, line) in lines.chunks_exact_mut(rows).enumerate() {
            let column = first + j;
            for (i, v) in band.clone().zip(&mut line[band.clone()]) {
                *v = matrix[i * columns + column];
            }
        }
    }
}

/// The output gradient of a group of images (`source`, blocks of `[Co, positions]`) into `out`
/// as `[Co, images positions]` or, where `transposed`, as `[images positions, Co]`.
fn gather_output_grad(
    source: &[f32],
    co: usize,
    positions: usize,
    transposed: bool,
    out: &mut Vec<f32>,
) {
    out.resize(source.len(), 0.0);
    let columns = source.len() / co;
    let images = source.chunks_exact(co * positions);
    if transposed {
        for (image, lines) in images.zip(out.chunks_exact_mut(co * positions)) {
            transpose_lines(image, co, positions, 0, lines);
        }
        return;
    }
    for (n, image) in images.enumerate() {
        for (o, channel) in image.chunks_exact(positions).enumerate() {
            out[o * columns + n * positions..][..positions].copy_from_slice(channel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both layouts of the gathered output gradient, for a group of two images after the first.
    #[test]
    fn gathers_a_group_in_both_layouts() {
        // dy [3, 2, 2, 2]: 2 output channels, 4 positions.
        let dy: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let value = |b: usize, o: usize, p: usize| dy[(b * 2 + o) * 4 + p];
        let (mut plain, mut transposed) = (Vec::new(), vec![-1.0; 3]);
        gather_output_grad(&dy[8..], 2, 4, false, &mut plain);
        gather_output_grad(&dy[8..], 2, 4, true, &mut transposed);
        assert_eq!((plain.len(), transposed.len()), (16, 16));
        for b in 0..2 {
            for o in 0..2 {
                for p in 0..4 {
                    let want = value(1 + b, o, p);
                    assert_eq!(plain[o * 8 + b * 4 + p], want);
                    assert_eq!(transposed[(b * 4 + p) * 2 + o], want);
                }
            }
        }
    }

    /// Small and large (split over threads, rows not a multiple of the band) matrices.
    #[test]
    fn transposes_by_bands() {
        let small: Vec<f32> = (0..6).map(|i| i as f32).collect();
        assert_eq!(transpose(&small, 2, 3), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let (rows, columns) = (37, 1_001);
        let matrix: Vec<f32> = (0..rows * columns).map(|i| i as f32).collect();
        let t = transpose(&matrix, rows, columns);
        for i in 0..rows {
            for j in 0..columns {
                assert_eq!(t[j * rows + i], matrix[i * columns + j], "({i}, {j})");
            }
        }
    }

    #[test]
    fn small_maps_share_a_product() {
        assert_eq!(images_per_product(16, 256), 4);
        assert_eq!(images_per_product(49, 256), 2);
        assert_eq!(images_per_product(64, 256), 1);
        assert_eq!(images_per_product(1, 3), 3);
    }
}
