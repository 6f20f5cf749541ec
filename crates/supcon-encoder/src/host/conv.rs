//! A 2-D convolution (one group) and its weight gradient as matrix products with the unfolded
//! input ([`super::unfold`]), a group of images at a time so that the unfolded input stays near
//! [`COLUMN_ELEMENTS`], as PyTorch's CPU backend computes them:
//!
//! - forward: `y_b = w' cols_b`, `w'` the kernel as `[Co, Ci kh kw]`;
//! - weight gradient: `dw = Σ_b dy'_b cols_b^T` (or, by shape, its transpose `cols dy'^T`),
//!   `dy'` the output gradient as `[Co, B Oh Ow]`, that is
//!   `dw[o, (i, p, q)] = Σ_b Σ_(y, z) dy[b, o, y, z] x[b, i, y sh + p dh - ph, z sw + q dw - pw]`.
//!
//! Burn's default weight gradient instead runs a convolution of `x` whose kernel is `dy`, whose
//! cost follows the feature map rather than the weight (issue 16, docs/cpu-profile.md). Flex's
//! own forward is as fast at stride 1 and kept there, but for stems; this one is taken for
//! strided convolutions, where flex's is up to 3.6x behind PyTorch's.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::Shape;

use super::parallel::for_rows;
use super::unfold::{Geometry, unfold};
use super::{f32s, flex_tensor};

/// About how many elements the unfolded input of one group of images holds (64 MiB of f32).
const COLUMN_ELEMENTS: usize = 1 << 24;

/// Images per group for `geometry`, out of `batch`.
fn group_size(geometry: &Geometry, batch: usize) -> usize {
    let per_image = geometry.patch() * geometry.positions();
    (COLUMN_ELEMENTS / per_image.max(1)).clamp(1, batch)
}

/// `y` `[B, Co, Oh, Ow]` of float32 `x` and `weight` on flex, one group.
pub(crate) fn forward(
    x: FlexTensor,
    weight: FlexTensor,
    geometry: Geometry,
    batch: usize,
) -> FlexTensor {
    let x = x.to_contiguous();
    let xs = f32s(&x);
    let co = geometry.output[0];
    let kernel = Flex::float_reshape(weight, Shape::new([co, geometry.patch()]));
    let positions = geometry.positions();
    let mut y = vec![0.0f32; batch * co * positions];
    let group = group_size(&geometry, batch);
    for first in (0..batch).step_by(group) {
        let images = group.min(batch - first);
        let cols = unfold(xs, &geometry, first, images);
        let cols = flex_tensor(cols, Shape::new([geometry.patch(), images * positions]));
        // [Co, images Oh Ow], channel-major: each image's rows move to their place in y.
        let part = Flex::float_matmul(kernel.clone(), cols);
        let part = f32s(&part);
        let out = &mut y[first * co * positions..(first + images) * co * positions];
        let work = out.len();
        for_rows(out, positions, work, |first_row, rows| {
            for (r, row) in rows.chunks_exact_mut(positions).enumerate() {
                let (b, o) = ((first_row + r) / co, (first_row + r) % co);
                row.copy_from_slice(&part[(o * images + b) * positions..][..positions]);
            }
        });
    }
    let [_, oh, ow] = geometry.output;
    flex_tensor(y, Shape::new([batch, co, oh, ow]))
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
    let xs = f32s(&x);
    let dys = f32s(&output_grad);
    let group = group_size(&geometry, batch);
    let (patch, co) = (geometry.patch(), geometry.output[0]);
    // Which way round the product goes. gemm wants the right-hand operand row-major: as
    // `dy' cols^T` it repacks `cols`, as `(cols dy'^T)^T` it does not, but the output gradient
    // is gathered transposed and the result transposed back. The second wins where the columns
    // outnumber the patch rows and those the output channels (the 3x3 convolutions with
    // outputs of 14x14 and more at a batch of 256, 16x16 and more at 64: 1.2-1.9x faster; as
    // fast or faster at 7x7 and 8x8), the first on small maps with wide kernels (512 channels
    // at 4x4: 1.2x) and on narrow patches (the stem: 1.15x). docs/cpu-profile.md, second round.
    let transposed = group * geometry.positions() >= patch && patch >= co;
    let mut total: Option<FlexTensor> = None;
    for first in (0..batch).step_by(group) {
        let images = group.min(batch - first);
        let columns = images * geometry.positions();
        let cols = unfold(xs, &geometry, first, images);
        let cols = flex_tensor(cols, Shape::new([patch, columns]));
        let dy = gather_output_grad(dys, &geometry, batch, first, images, transposed);
        let part = if transposed {
            Flex::float_matmul(cols, flex_tensor(dy, Shape::new([columns, co])))
        } else {
            let dy = flex_tensor(dy, Shape::new([co, columns]));
            Flex::float_matmul(dy, Flex::float_transpose(cols))
        };
        total = Some(match total {
            None => part,
            Some(sum) => Flex::float_add(sum, part),
        });
    }
    let total = total.expect("a batch of at least one image");
    let total = if transposed {
        Flex::float_transpose(total)
    } else {
        total
    };
    let [ci, _, _] = geometry.input;
    Flex::float_reshape(
        total,
        Shape::new([co, ci, geometry.kernel[0], geometry.kernel[1]]),
    )
}

/// The output gradient of images `first..first + images` as `[Co, images Oh Ow]` or, where
/// `transposed`, as `[images Oh Ow, Co]` (each image's `[Co, Oh Ow]` block transposed).
fn gather_output_grad(
    dy: &[f32],
    g: &Geometry,
    batch: usize,
    first: usize,
    images: usize,
    transposed: bool,
) -> Vec<f32> {
    let co = g.output[0];
    let positions = g.positions();
    debug_assert_eq!(dy.len(), batch * co * positions);
    let work = images * co * positions;
    let mut out = vec![0.0f32; work];
    if transposed {
        let image_len = co * positions;
        for_rows(&mut out, image_len, work, |first_image, block| {
            for (n, image) in block.chunks_exact_mut(image_len).enumerate() {
                let source = &dy[(first + first_image + n) * image_len..][..image_len];
                for (o, channel) in source.chunks_exact(positions).enumerate() {
                    for (position, &v) in channel.iter().enumerate() {
                        image[position * co + o] = v;
                    }
                }
            }
        });
    } else {
        let row_len = images * positions;
        for_rows(&mut out, row_len, work, |first_row, rows| {
            for (r, row) in rows.chunks_exact_mut(row_len).enumerate() {
                let channel = first_row + r;
                for b in 0..images {
                    let source = &dy[((first + b) * co + channel) * positions..][..positions];
                    row[b * positions..(b + 1) * positions].copy_from_slice(source);
                }
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use burn::tensor::ops::ConvOptions;

    use super::*;

    /// Both layouts of the gathered output gradient, for a group that does not start at the
    /// first image.
    #[test]
    fn gathers_a_later_group_in_both_layouts() {
        // x [3, 1, 2, 2] by a 1x1 kernel of 2 outputs: dy [3, 2, 2, 2], 4 positions.
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let g = Geometry::of_forward(&[3, 1, 2, 2], &[2, 1, 1, 1], &options).unwrap();
        let dy: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let value = |b: usize, o: usize, p: usize| dy[(b * 2 + o) * 4 + p];
        let plain = gather_output_grad(&dy, &g, 3, 1, 2, false);
        let transposed = gather_output_grad(&dy, &g, 3, 1, 2, true);
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
}
