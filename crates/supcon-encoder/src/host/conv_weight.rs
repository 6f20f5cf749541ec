//! The weight gradient of a 2-D convolution as one matrix product per group of images, as
//! PyTorch's CPU backend computes it.
//!
//! For a convolution of `x` `[B, Ci, H, W]` by `w` `[Co, Ci, kh, kw]` (one group) with output
//! gradient `dy` `[B, Co, Oh, Ow]`:
//!
//! `dw[o, (i, p, q)] = Σ_b Σ_(y, z) dy[b, o, y, z] x[b, i, y sh + p dh - ph, z sw + q dw - pw]`
//!
//! that is `dw = dy' cols'`, with `dy'` the output gradient as `[Co, B Oh Ow]` and `cols` the
//! unfolded input (im2col) as `[Ci kh kw, B Oh Ow]`, zero where the kernel reaches into the
//! padding. Burn's default instead runs a convolution of `x` whose kernel is `dy`, whose cost
//! follows the feature map rather than the weight (issue 16, docs/cpu-profile.md). The images
//! are taken a group at a time so that `cols` stays near [`COLUMN_ELEMENTS`].

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Shape, TensorData};

use super::parallel::for_rows;

/// About how many elements the unfolded input of one group of images holds (64 MiB of f32).
const COLUMN_ELEMENTS: usize = 1 << 24;

/// The geometry of one convolution, as the unfolding needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// Input channels, height and width.
    pub input: [usize; 3],
    /// Output channels, height and width.
    pub output: [usize; 3],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride, dilation and leading padding, each (height, width).
    pub stride: [usize; 2],
    /// Dilation (height, width).
    pub dilation: [usize; 2],
    /// Padding before the first row and column.
    pub padding: [usize; 2],
}

impl Geometry {
    /// The geometry of `x` `[B, Ci, H, W]` convolved with a `kernel` to `output_grad`'s shape.
    pub(crate) fn new(
        x: &[usize],
        output_grad: &[usize],
        kernel: [usize; 2],
        options: &ConvOptions<2>,
    ) -> Self {
        Self {
            input: [x[1], x[2], x[3]],
            output: [output_grad[1], output_grad[2], output_grad[3]],
            kernel,
            stride: options.stride,
            dilation: options.dilation,
            padding: options.padding_begin(),
        }
    }

    /// Rows of the unfolded input: `Ci kh kw`.
    fn patch(&self) -> usize {
        self.input[0] * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per image: `Oh Ow`.
    fn positions(&self) -> usize {
        self.output[1] * self.output[2]
    }
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
    let xs = x.as_slice::<f32>().expect("contiguous float32 input");
    let dys = output_grad
        .as_slice::<f32>()
        .expect("contiguous float32 output gradient");
    let per_image = geometry.patch() * geometry.positions();
    let group = (COLUMN_ELEMENTS / per_image.max(1)).clamp(1, batch);
    let mut total: Option<FlexTensor> = None;
    for first in (0..batch).step_by(group) {
        let images = group.min(batch - first);
        let columns = images * geometry.positions();
        let cols = unfold(xs, &geometry, first, images);
        let dy = gather_output_grad(dys, &geometry, batch, first, images);
        let cols = FlexTensor::from_data(TensorData::new(
            cols,
            Shape::new([geometry.patch(), columns]),
        ));
        let dy = FlexTensor::from_data(TensorData::new(
            dy,
            Shape::new([geometry.output[0], columns]),
        ));
        let part = Flex::float_matmul(dy, Flex::float_transpose(cols));
        total = Some(match total {
            None => part,
            Some(sum) => Flex::float_add(sum, part),
        });
    }
    let total = total.expect("a batch of at least one image");
    let [ci, _, _] = geometry.input;
    Flex::float_reshape(
        total,
        Shape::new([
            geometry.output[0],
            ci,
            geometry.kernel[0],
            geometry.kernel[1],
        ]),
    )
}

/// The unfolded input of images `first..first + images`: `[Ci kh kw, images Oh Ow]`.
fn unfold(x: &[f32], g: &Geometry, first: usize, images: usize) -> Vec<f32> {
    let [ci, h, w] = g.input;
    let [_, oh, ow] = g.output;
    let [kh, kw] = g.kernel;
    let row_len = images * oh * ow;
    let mut cols = vec![0.0f32; g.patch() * row_len];
    for_rows(
        &mut cols,
        row_len,
        g.patch() * row_len,
        |first_row, rows| {
            for (r, row) in rows.chunks_exact_mut(row_len).enumerate() {
                let patch_row = first_row + r;
                let channel = patch_row / (kh * kw);
                let (p, q) = ((patch_row / kw) % kh, patch_row % kw);
                // Columns z whose input column z sw + q dw - pw lies in [0, w).
                let column_offset = (q * g.dilation[1]) as isize - g.padding[1] as isize;
                let (z_lo, z_hi) = valid_range(ow, g.stride[1], column_offset, w);
                for b in 0..images {
                    let plane = &x[((first + b) * ci + channel) * h * w..][..h * w];
                    for y in 0..oh {
                        let out = &mut row[(b * oh + y) * ow..][..ow];
                        let input_row =
                            (y * g.stride[0] + p * g.dilation[0]) as isize - g.padding[0] as isize;
                        if input_row < 0 || input_row >= h as isize || z_lo >= z_hi {
                            continue;
                        }
                        let line = &plane[input_row as usize * w..][..w];
                        let start = (z_lo * g.stride[1]) as isize + column_offset;
                        if g.stride[1] == 1 {
                            let start = start as usize;
                            out[z_lo..z_hi].copy_from_slice(&line[start..start + (z_hi - z_lo)]);
                        } else {
                            for (k, o) in out[z_lo..z_hi].iter_mut().enumerate() {
                                *o = line[start as usize + k * g.stride[1]];
                            }
                        }
                    }
                }
            }
        },
    );
    cols
}

/// The output positions `z` in `0..len` with `z stride + offset` in `0..size`, as a range.
fn valid_range(len: usize, stride: usize, offset: isize, size: usize) -> (usize, usize) {
    let stride = stride as isize;
    // Smallest z with z stride + offset >= 0.
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) + stride - 1) / stride
    };
    // Largest z with z stride + offset <= size - 1, plus one.
    let last = size as isize - 1 - offset;
    let hi = if last < 0 { 0 } else { last / stride + 1 };
    let lo = (lo as usize).min(len);
    (lo, (hi as usize).clamp(lo, len))
}

/// The output gradient of images `first..first + images` as `[Co, images Oh Ow]`.
fn gather_output_grad(
    dy: &[f32],
    g: &Geometry,
    batch: usize,
    first: usize,
    images: usize,
) -> Vec<f32> {
    let co = g.output[0];
    let positions = g.positions();
    debug_assert_eq!(dy.len(), batch * co * positions);
    let row_len = images * positions;
    let mut out = vec![0.0f32; co * row_len];
    for_rows(&mut out, row_len, co * row_len, |first_row, rows| {
        for (r, row) in rows.chunks_exact_mut(row_len).enumerate() {
            let channel = first_row + r;
            for b in 0..images {
                let source = &dy[((first + b) * co + channel) * positions..][..positions];
                row[b * positions..(b + 1) * positions].copy_from_slice(source);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_keeps_the_input_inside() {
        for len in 1..6 {
            for stride in 1..4 {
                for offset in -4isize..4 {
                    for size in 1..8 {
                        let (lo, hi) = valid_range(len, stride, offset, size);
                        for z in 0..len {
                            let inside = (0..size as isize)
                                .contains(&(z as isize * stride as isize + offset));
                            assert_eq!(
                                inside,
                                (lo..hi).contains(&z),
                                "{len} {stride} {offset} {size} {z}"
                            );
                        }
                    }
                }
            }
        }
    }
}
