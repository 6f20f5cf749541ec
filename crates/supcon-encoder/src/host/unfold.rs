//! The unfolded input of a 2-D convolution (im2col): for a convolution of `x` `[B, Ci, H, W]`
//! by a `[Co, Ci, kh, kw]` kernel, `cols[(i, p, q), (b, y, z)] = x[b, i, y sh + p dh - ph,
//! z sw + q dw - pw]`, zero where the kernel reaches into the padding; `[Ci kh kw, B Oh Ow]`
//! row-major, so that the convolution is `w' cols` and its weight gradient `dy' cols^T`
//! (`w'` the kernel as `[Co, Ci kh kw]`, `dy'` the output gradient as `[Co, B Oh Ow]`).

use burn::tensor::ops::ConvOptions;

use super::parallel::for_rows;

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

    /// The geometry of `x` `[B, Ci, H, W]` convolved with `weight` `[Co, Ci, kh, kw]`; `None`
    /// when the kernel, dilated, is larger than the padded input (no output).
    pub(crate) fn of_forward(
        x: &[usize],
        weight: &[usize],
        options: &ConvOptions<2>,
    ) -> Option<Self> {
        let side = |d: usize| {
            let padded = x[2 + d] + options.padding[d].0 + options.padding[d].1;
            let reach = options.dilation[d] * (weight[2 + d] - 1) + 1;
            (padded >= reach).then(|| (padded - reach) / options.stride[d] + 1)
        };
        let output = [weight[0], side(0)?, side(1)?];
        Some(Self::new(
            x,
            &output_shape(x[0], output),
            [weight[2], weight[3]],
            options,
        ))
    }

    /// Rows of the unfolded input: `Ci kh kw`.
    pub(crate) fn patch(&self) -> usize {
        self.input[0] * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per image: `Oh Ow`.
    pub(crate) fn positions(&self) -> usize {
        self.output[1] * self.output[2]
    }
}

/// The unfolded input of images `first..first + images`: `[Ci kh kw, images Oh Ow]`.
pub(crate) fn unfold(x: &[f32], g: &Geometry, first: usize, images: usize) -> Vec<f32> {
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
                        let start = ((z_lo * g.stride[1]) as isize + column_offset) as usize;
                        gather_strided(&mut out[z_lo..z_hi], &line[start..], g.stride[1]);
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

/// `[batch, channels, height, width]` as a shape slice for [`Geometry::new`].
fn output_shape(batch: usize, output: [usize; 3]) -> [usize; 4] {
    [batch, output[0], output[1], output[2]]
}

/// `out[k] = source[k stride]`; strides 1 and 2 (the common ones) written so that the compiler
/// can vectorise them.
fn gather_strided(out: &mut [f32], source: &[f32], stride: usize) {
    let n = out.len();
    if n == 0 {
        return;
    }
    let source = &source[..(n - 1) * stride + 1];
    match stride {
        1 => out.copy_from_slice(source),
        2 => {
            // Pairs as arrays: no bounds check per element (0.53-0.65 against 0.81-0.90 ns an
            // element on rows of 14-16). `source` is `2n - 1` long: `n - 1` pairs, then the
            // last element.
            let (pairs, last) = source.as_chunks::<2>();
            for (o, pair) in out.iter_mut().zip(pairs) {
                *o = pair[0];
            }
            out[n - 1] = last[0];
        }
        _ => {
            for (o, &v) in out.iter_mut().zip(source.iter().step_by(stride)) {
                *o = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_strided_takes_every_stride_th_element() {
        let source: Vec<f32> = (0..64).map(|i| i as f32).collect();
        for stride in 1..4 {
            for n in 0..20 {
                let mut out = vec![-1.0; n];
                gather_strided(&mut out, &source, stride);
                let want: Vec<f32> = (0..n).map(|k| (k * stride) as f32).collect();
                assert_eq!(out, want, "stride {stride}, {n} elements");
            }
        }
    }

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
