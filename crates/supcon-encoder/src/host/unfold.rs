//! The unfolded input of a 2-D convolution (im2col): for a convolution of `x` `[B, Ci, H, W]`
//! by a `[Co, Ci, kh, kw]` kernel, `cols[(i, p, q), (b, y, z)] = x[b, i, y sh + p dh - ph,
//! z sw + q dw - pw]`, zero where the kernel reaches into the padding; `[Ci kh kw, B Oh Ow]`
//! row-major, so that the convolution is `w' cols` and its weight gradient `dy' cols^T`
//! (`w'` the kernel as `[Co, Ci kh kw]`, `dy'` the output gradient as `[Co, B Oh Ow]`).

use burn::tensor::ops::ConvOptions;

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

    /// Whether the geometry is aligned: dilation 1 and the input exactly `stride` times the
    /// output in each direction (every 3x3 convolution with padding 1, stride 1 or 2 on maps
    /// of even size, the 1x1 stride-2 shortcuts, the 7x7 stride-2 stem on 224 pixels: all of a
    /// ResNet's convolutions). The input plane then splits into `stride[0] stride[1]` phase
    /// planes of the output's size, `phase(φr, φc)[j, k] = x[j sh + φr, k sw + φc]`, and each
    /// kernel tap's row of the unfolded input is one shifted copy of one phase plane, its
    /// padding columns set apart ([`Tap`]). With stride 1 (the output the input's size) the only
    /// phase plane is the input plane itself.
    fn aligned(&self) -> bool {
        self.dilation == [1, 1]
            && self.input[1] == self.stride[0] * self.output[1]
            && self.input[2] == self.stride[1] * self.output[2]
    }

    /// Phase planes of an aligned geometry: `stride[0] stride[1]`.
    fn phases(&self) -> usize {
        self.stride[0] * self.stride[1]
    }

    /// The kernel taps `(p, q)` of an aligned geometry, row by row of the kernel: row `(i, p,
    /// q)` of the unfolded input is tap `p kw + q` of channel `i`.
    fn taps(&self) -> Vec<Tap> {
        let [kh, kw] = self.kernel;
        (0..kh * kw).map(|t| self.tap(t / kw, t % kw)).collect()
    }

    /// Tap `(p, q)` of an aligned geometry: input row `y sh + p - ph` is row `y + dy` of phase
    /// `φr` with `p - ph = dy sh + φr` (`0 <= φr < sh`), and the same for columns.
    fn tap(&self, p: usize, q: usize) -> Tap {
        let [_, h, w] = self.output;
        let split = |offset: isize, stride: usize| {
            let stride = stride as isize;
            (
                offset.div_euclid(stride),
                offset.rem_euclid(stride) as usize,
            )
        };
        let (dy, phase_row) = split(p as isize - self.padding[0] as isize, self.stride[0]);
        let (dz, phase_column) = split(q as isize - self.padding[1] as isize, self.stride[1]);
        let (h_, w_) = (h as isize, w as isize);
        let shift = dy * w_ + dz;
        // Output rows whose source row `y + dy` lies in the plane (none where the tap lies
        // wholly in the padding).
        let (first, end) = (dy.max(0) - dy, h_ - dy.max(0));
        let rows = if first < end && dz.abs() < w_ {
            first as usize..end as usize
        } else {
            0..0
        };
        // The copy: positions of `rows` whose source `k + shift` lies in the plane.
        let copy = if rows.is_empty() {
            0..0
        } else {
            let start = (rows.start * w) as isize;
            let end = (rows.end * w) as isize;
            start.max(-shift) as usize..end.min(h_ * w_ - shift) as usize
        };
        // The columns of each row whose source falls outside it (padding).
        let padding = if rows.is_empty() {
            0..0
        } else if dz < 0 {
            0..(-dz) as usize
        } else {
            (w_ - dz) as usize..w
        };
        Tap {
            phase: phase_row * self.stride[1] + phase_column,
            shift: if rows.is_empty() { 0 } else { shift },
            rows,
            copy,
            padding,
        }
    }
}

/// One kernel tap `(p, q)` of an aligned geometry ([`Geometry::aligned`]): output position `k`
/// of a plane reads position `k + shift` of phase plane `phase` of the same channel, for `k` in
/// the `rows`' block except the `padding` columns of each row (zero there); `copy` is the block
/// clipped to the positions whose source lies in the plane (the clipped ones are padding
/// columns too).
struct Tap {
    phase: usize,
    rows: std::ops::Range<usize>,
    shift: isize,
    copy: std::ops::Range<usize>,
    padding: std::ops::Range<usize>,
}

impl Tap {
    /// The positions of the phase plane that [`copy`](Self::copy) reads: `copy` shifted.
    fn source(&self) -> std::ops::Range<usize> {
        let start = (self.copy.start as isize + self.shift) as usize;
        start..start + self.copy.len()
    }

    /// Zeroes the padding columns of the tap's rows in `plane` (rows of `width`): column by
    /// column down the rows, as there are only a few (a call to `memset` per row cost more).
    fn zero_padding(&self, plane: &mut [f32], width: usize) {
        let start = self.rows.start * width;
        for z in self.padding.clone() {
            for v in plane[start + z..]
                .iter_mut()
                .step_by(width)
                .take(self.rows.len())
            {
                *v = 0.0;
            }
        }
    }
}

/// The unfolded input of images `first..first + images`, `[Ci kh kw, images Oh Ow]`, written
/// into `cols` on the calling thread. Only the entries inside the input are written: the
/// padding's stay as they are, so a buffer zeroed once serves every group of images of the same
/// size and geometry.
pub(crate) fn unfold_images(
    x: &[f32],
    g: &Geometry,
    first: usize,
    images: usize,
    cols: &mut [f32],
) {
    debug_assert_eq!(cols.len(), g.patch() * images * g.positions());
    let [ci, h, w] = g.input;
    let [_, oh, ow] = g.output;
    let [kh, kw] = g.kernel;
    let row_len = images * oh * ow;
    if g.aligned() {
        let (plane_len, positions, taps) = (h * w, oh * ow, g.taps());
        let mut phases = vec![0.0f32; if g.phases() > 1 { plane_len } else { 0 }];
        for channel in 0..ci {
            let rows = &mut cols[channel * taps.len() * row_len..][..taps.len() * row_len];
            for b in 0..images {
                let plane = &x[((first + b) * ci + channel) * plane_len..][..plane_len];
                let source = if phases.is_empty() {
                    plane
                } else {
                    split_phases(plane, g, &mut phases);
                    &phases[..]
                };
                for (tap, row) in taps.iter().zip(rows.chunks_exact_mut(row_len)) {
                    let out = &mut row[b * positions..][..positions];
                    let phase = &source[tap.phase * positions..][..positions];
                    out[tap.copy.clone()].copy_from_slice(&phase[tap.source()]);
                    tap.zero_padding(out, ow);
                }
            }
        }
        return;
    }
    for (patch_row, row) in cols.chunks_exact_mut(row_len).enumerate() {
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
}

/// Where each line of a phase plane comes from in an input plane of aligned geometry `g`: the
/// offset of its first element in the input plane (the rest follow `stride[1]` apart) and its
/// offset in the phase planes (`φr sw + φc` the index of phase `(φr, φc)`, planes one after
/// the other), `Ow` elements.
fn phase_lines(g: &Geometry) -> impl Iterator<Item = (usize, usize)> {
    let [_, h, w] = g.input;
    let [_, oh, ow] = g.output;
    let [sh, sw] = g.stride;
    (0..h).flat_map(move |input_row| {
        let (j, phase_row) = (input_row / sh, input_row % sh);
        (0..sw).map(move |phase_column| {
            let phase = phase_row * sw + phase_column;
            (input_row * w + phase_column, phase * oh * ow + j * ow)
        })
    })
}

/// The phase planes of `plane` (an input plane of aligned geometry `g`) into `phases`.
fn split_phases(plane: &[f32], g: &Geometry, phases: &mut [f32]) {
    let (ow, sw) = (g.output[2], g.stride[1]);
    for (input, phase) in phase_lines(g) {
        gather_strided(&mut phases[phase..][..ow], &plane[input..], sw);
    }
}

/// The adjoint of [`split_phases`]: adds each phase plane's entries to `plane`'s.
fn merge_phases(phases: &[f32], g: &Geometry, plane: &mut [f32]) {
    let (ow, sw) = (g.output[2], g.stride[1]);
    for (input, phase) in phase_lines(g) {
        plane[input..]
            .iter_mut()
            .step_by(sw)
            .zip(&phases[phase..][..ow])
            .for_each(|(t, &v)| *t += v);
    }
}

/// The adjoint of [`unfold_images`]: adds each entry of `cols` (`[Ci kh kw, images Oh Ow]`) to
/// the input element it was taken from, in `x` (the `images` images' `[images, Ci, H, W]`).
/// This is the convolution's input gradient from the gradient of the unfolded input.
/// Where the geometry is aligned ([`Geometry::aligned`]), the entries of `cols` that fall in
/// the padding are zeroed on the way (each tap's row is then added to its phase plane in one
/// piece).
pub(crate) fn fold_images(cols: &mut [f32], g: &Geometry, images: usize, x: &mut [f32]) {
    let [ci, h, w] = g.input;
    let [_, oh, ow] = g.output;
    let [kh, kw] = g.kernel;
    let row_len = images * oh * ow;
    debug_assert_eq!(cols.len(), g.patch() * row_len);
    debug_assert_eq!(x.len(), images * ci * h * w);
    if g.aligned() {
        let (plane_len, positions, taps) = (h * w, oh * ow, g.taps());
        let mut phases = vec![0.0f32; if g.phases() > 1 { plane_len } else { 0 }];
        for channel in 0..ci {
            let rows = &mut cols[channel * taps.len() * row_len..][..taps.len() * row_len];
            for b in 0..images {
                let plane = &mut x[(b * ci + channel) * plane_len..][..plane_len];
                let target = if phases.is_empty() {
                    &mut plane[..]
                } else {
                    phases.fill(0.0);
                    &mut phases[..]
                };
                for (tap, row) in taps.iter().zip(rows.chunks_exact_mut(row_len)) {
                    let source = &mut row[b * positions..][..positions];
                    tap.zero_padding(source, ow);
                    let phase = &mut target[tap.phase * positions..][..positions];
                    phase[tap.source()]
                        .iter_mut()
                        .zip(&source[tap.copy.clone()])
                        .for_each(|(t, &v)| *t += v);
                }
                if !phases.is_empty() {
                    merge_phases(&phases, g, plane);
                }
            }
        }
        return;
    }
    for (patch_row, row) in cols.chunks_exact(row_len).enumerate() {
        let channel = patch_row / (kh * kw);
        let (p, q) = ((patch_row / kw) % kh, patch_row % kw);
        let column_offset = (q * g.dilation[1]) as isize - g.padding[1] as isize;
        let (z_lo, z_hi) = valid_range(ow, g.stride[1], column_offset, w);
        if z_lo >= z_hi {
            continue;
        }
        let start = ((z_lo * g.stride[1]) as isize + column_offset) as usize;
        for b in 0..images {
            let plane = &mut x[(b * ci + channel) * h * w..][..h * w];
            for y in 0..oh {
                let input_row =
                    (y * g.stride[0] + p * g.dilation[0]) as isize - g.padding[0] as isize;
                if input_row < 0 || input_row >= h as isize {
                    continue;
                }
                let source = &row[(b * oh + y) * ow..][z_lo..z_hi];
                let line = &mut plane[input_row as usize * w..][start..];
                match g.stride[1] {
                    1 => line.iter_mut().zip(source).for_each(|(t, &v)| *t += v),
                    stride => line
                        .iter_mut()
                        .step_by(stride)
                        .zip(source)
                        .for_each(|(t, &v)| *t += v),
                }
            }
        }
    }
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

    /// A convolution's geometry: input `[Ci, H, W]`, kernel, stride, padding, dilation.
    type Case = ([usize; 3], [usize; 2], [usize; 2], [usize; 2], [usize; 2]);

    /// Same-size geometries (stride and dilation 1, the output the input's size: 3x3, 5x5,
    /// 7x7 larger than the map, 1x1), then a valid (unpadded) 3x3, strided, dilated and
    /// asymmetric ones.
    const GEOMETRIES: [Case; 10] = [
        ([2, 5, 6], [3, 3], [1, 1], [1, 1], [1, 1]),
        ([2, 4, 4], [5, 5], [1, 1], [2, 2], [1, 1]),
        ([1, 2, 2], [7, 7], [1, 1], [3, 3], [1, 1]),
        ([2, 1, 1], [7, 7], [1, 1], [3, 3], [1, 1]),
        ([3, 1, 1], [3, 3], [1, 1], [1, 1], [1, 1]),
        ([2, 3, 4], [1, 1], [1, 1], [0, 0], [1, 1]),
        ([2, 5, 5], [3, 3], [1, 1], [0, 0], [1, 1]),
        ([3, 7, 7], [3, 3], [2, 2], [1, 1], [1, 1]),
        ([2, 8, 5], [1, 1], [2, 2], [0, 0], [1, 1]),
        ([1, 9, 9], [3, 2], [3, 2], [2, 0], [2, 1]),
    ];

    /// The geometry of `images` images of `case` convolved to 4 channels, and their shape.
    fn geometry(case: Case, images: usize) -> (Geometry, [usize; 4]) {
        let (input, kernel, stride, padding, dilation) = case;
        let options = ConvOptions::new(stride, padding, dilation, 1);
        let x_shape = [images, input[0], input[1], input[2]];
        let g =
            Geometry::of_forward(&x_shape, &[4, input[0], kernel[0], kernel[1]], &options).unwrap();
        (g, x_shape)
    }

    /// The unfolding against its definition, entry by entry, on the general path and on the
    /// same-size one (whose rows are shifted copies of the planes), twice into the same buffer.
    #[test]
    fn unfold_matches_its_definition() {
        for case in GEOMETRIES {
            assert_unfolds_as_defined(&geometry(case, 3).0);
        }
    }

    /// `<unfold(x), c> = <x, fold(c)>` for every geometry tried: `fold_images` is the adjoint of
    /// `unfold_images`, hence the input gradient of a convolution computed through them.
    #[test]
    fn fold_is_the_adjoint_of_unfold() {
        for case in GEOMETRIES {
            assert_fold_is_adjoint(&geometry(case, 2).0);
        }
    }

    /// Every same-size geometry of kernels up to 5x5 on maps up to 4x4, the padding split
    /// every way between the two sides (taps wholly in the padding included).
    #[test]
    fn same_size_geometries_of_every_kernel_and_padding() {
        let mut tried = 0;
        for (kh, kw, h, w) in (1..=5).flat_map(|kh| {
            (1..=5)
                .flat_map(move |kw| (1..=4).flat_map(move |h| (1..=4).map(move |w| (kh, kw, h, w))))
        }) {
            for (top, left) in (0..kh).flat_map(|t| (0..kw).map(move |l| (t, l))) {
                let padding = [(top, kh - 1 - top), (left, kw - 1 - left)];
                let options = ConvOptions::new_with_padding([1, 1], padding, [1, 1], 1);
                let g = Geometry::of_forward(&[2, 2, h, w], &[3, 2, kh, kw], &options).unwrap();
                assert!(g.aligned(), "{kh}x{kw} on {h}x{w}, {padding:?}");
                assert_unfolds_as_defined(&g);
                assert_fold_is_adjoint(&g);
                tried += 1;
            }
        }
        assert_eq!(tried, 15 * 15 * 16);
    }

    /// The ways one direction of an aligned geometry can be: stride, kernel, output size and
    /// the padding before and after (the input is `stride` times the output, so the padding
    /// adds up to between `kernel - stride` and `kernel - 1`).
    fn aligned_sides(strides: std::ops::RangeInclusive<usize>) -> Vec<[usize; 5]> {
        let mut sides = Vec::new();
        for stride in strides {
            for kernel in 1..=4 {
                for output in 1..=3 {
                    for before in 0..kernel {
                        for after in 0..kernel {
                            let total = before + after;
                            if total + stride >= kernel && total < kernel {
                                sides.push([stride, kernel, output, before, after]);
                            }
                        }
                    }
                }
            }
        }
        sides
    }

    /// Every aligned geometry with a stride of 2 or 3 in some direction, kernels up to 4x4,
    /// outputs up to 3x3 and every split of the padding: the phase planes against the
    /// definition and the adjoint identity.
    #[test]
    fn strided_aligned_geometries_of_every_kernel_and_padding() {
        let mut tried = 0;
        let sides = aligned_sides(1..=3);
        for rows in &sides {
            for columns in &sides {
                if rows[0] == 1 && columns[0] == 1 {
                    continue;
                }
                let [sh, kh, oh, top, bottom] = *rows;
                let [sw, kw, ow, left, right] = *columns;
                let padding = [(top, bottom), (left, right)];
                let options = ConvOptions::new_with_padding([sh, sw], padding, [1, 1], 1);
                let x = [2, 2, sh * oh, sw * ow];
                let g = Geometry::of_forward(&x, &[3, 2, kh, kw], &options).unwrap();
                assert_eq!(g.output[1..], [oh, ow], "{rows:?} {columns:?}");
                assert!(g.aligned(), "{rows:?} {columns:?}");
                assert_unfolds_as_defined(&g);
                assert_fold_is_adjoint(&g);
                tried += 1;
            }
        }
        assert!(tried > 10_000, "{tried}");
    }

    /// Unfolds images 1 and 2 of three (twice, different values, into one buffer) and checks
    /// every entry against `cols[(i, p, q), (b, y, z)] = x[b, i, y sh + p dh - ph, z sw + q dw -
    /// pw]`, zero outside the input.
    fn assert_unfolds_as_defined(g: &Geometry) {
        let [ci, h, w] = g.input;
        let [_, oh, ow] = g.output;
        let [kh, kw] = g.kernel;
        let mut cols = vec![0.0; g.patch() * 2 * g.positions()];
        for round in 0..2 {
            let x: Vec<f32> = (0..3 * ci * h * w)
                .map(|k| (k + round * 1000 + 1) as f32)
                .collect();
            unfold_images(&x, g, 1, 2, &mut cols);
            let row_len = 2 * oh * ow;
            for (i, p, q) in
                (0..ci).flat_map(|i| (0..kh).flat_map(move |p| (0..kw).map(move |q| (i, p, q))))
            {
                let patch_row = (i * kh + p) * kw + q;
                for (b, y, z) in
                    (0..2).flat_map(|b| (0..oh).flat_map(move |y| (0..ow).map(move |z| (b, y, z))))
                {
                    let iy = (y * g.stride[0] + p * g.dilation[0]) as isize - g.padding[0] as isize;
                    let iz = (z * g.stride[1] + q * g.dilation[1]) as isize - g.padding[1] as isize;
                    let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&iz);
                    let want = if inside {
                        x[(((1 + b) * ci + i) * h + iy as usize) * w + iz as usize]
                    } else {
                        0.0
                    };
                    let got = cols[patch_row * row_len + (b * oh + y) * ow + z];
                    assert_eq!(
                        got, want,
                        "{g:?} round {round} tap {patch_row} image {b} ({y}, {z})"
                    );
                }
            }
        }
    }

    /// `<unfold(x), c> = <x, fold(c)>` for two images of random values.
    fn assert_fold_is_adjoint(g: &Geometry) {
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let images = 2;
        let [ci, h, w] = g.input;
        let x: Vec<f32> = (0..images * ci * h * w).map(|_| next()).collect();
        let c: Vec<f32> = (0..g.patch() * images * g.positions())
            .map(|_| next())
            .collect();
        let mut cols = vec![0.0; c.len()];
        unfold_images(&x, g, 0, images, &mut cols);
        let mut folded = vec![0.0; x.len()];
        fold_images(&mut c.clone(), g, images, &mut folded);
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(&u, &v)| f64::from(u) * f64::from(v))
                .sum()
        };
        let (left, right) = (dot(&cols, &c), dot(&x, &folded));
        assert!((left - right).abs() < 1e-4, "{g:?}: {left} {right}");
        assert!(folded.iter().any(|&v| v != 0.0), "{g:?}");
    }
}
