//! The elementwise stage of the blocked SupCon loss ([`row_blocks`](crate::row_blocks)) for
//! devices whose tensors live in host memory (Burn's flex and ndarray): a few passes over each
//! row of logits, with a vectorised exponential, instead of a dozen tensor operations over the
//! block.
//!
//! For row `i` (anchor `start + i`, whose own column is excluded from every sum), with weights
//! `w_ij` and `W_i = sum_j w_ij`, `m_i = max_{j != self} l_ij`, `S_i = sum_{j != self}
//! exp(l_ij - m_i)`:
//!
//! ```text
//! loss_i = -s * (sum_j w_ij l_ij / W_i - m_i - ln S_i)          (0 when W_i <= 1e-6)
//! g_ij   = f * (exp(l_ij - m_i) / S_i - w_ij / W_i)              (0 on the self column)
//! ```
//!
//! with `s = T / T_base` and `f = s / anchors`. NaN logits give a NaN loss (the maximum skips
//! them, the exponential keeps them). Rows are split over the machine's cores; the losses are
//! summed in row order, so the value does not depend on how many there are.

/// Which columns are positives of a row.
pub(crate) enum HostWeights {
    /// Column `j` is a positive of row `i` when `keys[j] == keys[i]` (anchors are the first
    /// columns).
    Keys(Vec<i64>),
    /// The user's `[batch, batch]` mask, row-major, tiled over the batch's views; columns from
    /// `batch_columns` on (the memory) have weight 0.
    Mask {
        /// The mask's values.
        mask: Vec<f32>,
        /// Its side.
        batch: usize,
        /// Views times batch.
        batch_columns: usize,
    },
}

impl HostWeights {
    /// Writes the weights of anchor `anchor` into `row` (`columns` long).
    #[inline(always)]
    fn fill(&self, anchor: usize, row: &mut [f32]) {
        match self {
            Self::Keys(keys) => {
                let key = keys[anchor];
                for (w, &k) in row.iter_mut().zip(keys) {
                    *w = if k == key { 1.0 } else { 0.0 };
                }
            }
            Self::Mask {
                mask,
                batch,
                batch_columns,
            } => {
                let sample = anchor % batch;
                let source = &mask[sample * batch..(sample + 1) * batch];
                let (tiled, memory) = row.split_at_mut(*batch_columns);
                for view in tiled.chunks_mut(*batch) {
                    view.copy_from_slice(source);
                }
                memory.fill(0.0);
            }
        }
    }
}

/// One block of rows of logits and what the stage needs besides.
pub(crate) struct Block<'a> {
    /// `[rows, columns]`, row-major.
    pub logits: &'a [f32],
    /// Columns of the contrast set.
    pub columns: usize,
    /// The first row's anchor index (its own column).
    pub start: usize,
    /// The positives.
    pub weights: &'a HostWeights,
    /// `T / T_base`.
    pub scale: f32,
    /// `scale / anchors`: the gradient of the mean over all anchors.
    pub grad_factor: f32,
}

/// Rows per thread below which one thread does the whole block.
const ROWS_PER_THREAD: usize = 16;

/// The loss of each row, and with `gradient` the loss's gradient with respect to the logits
/// (`[rows, columns]`, empty without).
pub(crate) fn run(block: &Block<'_>, gradient: bool) -> (Vec<f64>, Vec<f32>) {
    let rows = block.logits.len() / block.columns.max(1);
    let mut losses = vec![0.0f64; rows];
    let mut grad = vec![0.0f32; if gradient { rows * block.columns } else { 0 }];
    let threads = cores().min(rows / ROWS_PER_THREAD).max(1);
    let per_thread = rows.div_ceil(threads);
    if threads == 1 {
        rows_dispatch(block, 0, &mut losses, &mut grad, gradient);
        return (losses, grad);
    }
    let columns = if gradient { block.columns } else { 0 };
    std::thread::scope(|scope| {
        let mut grad_parts = grad.chunks_mut((per_thread * columns).max(1));
        for (part, losses) in losses.chunks_mut(per_thread).enumerate() {
            let grad = if gradient {
                grad_parts.next().expect("one gradient part per loss part")
            } else {
                &mut []
            };
            scope.spawn(move || rows_dispatch(block, part * per_thread, losses, grad, gradient));
        }
    });
    (losses, grad)
}

/// The cores this process may use, asked once (on Linux the answer reads the CPU affinity and
/// cgroup quota, too slow to repeat for every block of every step).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// [`rows`] compiled for AVX2 and FMA where the processor has them.
fn rows_dispatch(
    block: &Block<'_>,
    first: usize,
    losses: &mut [f64],
    grad: &mut [f32],
    gradient: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the processor supports the features the function is compiled for.
        unsafe { rows_avx2(block, first, losses, grad, gradient) };
        return;
    }
    rows(block, first, losses, grad, gradient);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn rows_avx2(
    block: &Block<'_>,
    first: usize,
    losses: &mut [f64],
    grad: &mut [f32],
    gradient: bool,
) {
    rows(block, first, losses, grad, gradient);
}

/// Rows `first..first + losses.len()` of the block.
#[inline(always)]
fn rows(block: &Block<'_>, first: usize, losses: &mut [f64], grad: &mut [f32], gradient: bool) {
    let columns = block.columns;
    let mut weights = vec![0.0f32; columns];
    let mut exps = vec![0.0f32; columns];
    for (offset, loss) in losses.iter_mut().enumerate() {
        let row = first + offset;
        let anchor = block.start + row;
        let logits = &block.logits[row * columns..(row + 1) * columns];
        block.weights.fill(anchor, &mut weights);
        weights[anchor] = 0.0;
        let (before, after) = (&logits[..anchor], &logits[anchor + 1..]);
        let (w_before, w_after) = (&weights[..anchor], &weights[anchor + 1..]);
        let count = sum(w_before) + sum(w_after);
        let out = if gradient {
            &mut grad[offset * columns..(offset + 1) * columns]
        } else {
            &mut exps[..]
        };
        if count <= 1e-6 {
            // No positive: no term, no gradient.
            *loss = 0.0;
            out.fill(0.0);
            continue;
        }
        let weighted = dot(w_before, before) + dot(w_after, after);
        let max = max_of(before).max(max_of(after));
        let (out_before, rest) = out.split_at_mut(anchor);
        let (out_self, out_after) = rest.split_at_mut(1);
        out_self[0] = 0.0;
        let total = exp_shifted(before, max, out_before) + exp_shifted(after, max, out_after);
        let log_denominator = f64::from(max) + f64::from(total).ln();
        *loss =
            -f64::from(block.scale) * (f64::from(weighted) / f64::from(count) - log_denominator);
        if gradient {
            let a = block.grad_factor / total;
            let b = block.grad_factor / count;
            for (g, &w) in out.iter_mut().zip(&weights) {
                *g = a * *g - b * w;
            }
        }
    }
}

/// `g <- g + g^T` for a square `[n, n]` row-major matrix, in place, tile by tile.
pub(crate) fn add_transpose(g: &mut [f32], n: usize) {
    const TILE: usize = 32;
    for i0 in (0..n).step_by(TILE) {
        for j0 in (i0..n).step_by(TILE) {
            for i in i0..(i0 + TILE).min(n) {
                let start = if i0 == j0 { i } else { j0 };
                for j in start..(j0 + TILE).min(n) {
                    let sum = g[i * n + j] + g[j * n + i];
                    g[i * n + j] = sum;
                    g[j * n + i] = sum;
                }
            }
        }
    }
}

/// Lanes of the reductions: independent accumulators the compiler keeps in one vector register.
const LANES: usize = 8;

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let (chunks, rest) = x.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for chunk in chunks {
        for k in 0..LANES {
            acc[k] += chunk[k];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let (xc, x_rest) = x.as_chunks::<LANES>();
    let (yc, y_rest) = y.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (a, b) in xc.iter().zip(yc) {
        for k in 0..LANES {
            acc[k] += a[k] * b[k];
        }
    }
    let rest: f32 = x_rest.iter().zip(y_rest).map(|(a, b)| a * b).sum();
    acc.iter().sum::<f32>() + rest
}

/// The maximum, skipping NaN; minus infinity for an empty slice.
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let (chunks, rest) = x.as_chunks::<LANES>();
    let mut acc = [f32::NEG_INFINITY; LANES];
    for chunk in chunks {
        for k in 0..LANES {
            acc[k] = if chunk[k] > acc[k] { chunk[k] } else { acc[k] };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// `out[j] = exp(x[j] - shift)`, and their sum (two loops: a plain map vectorises reliably).
#[inline(always)]
fn exp_shifted(x: &[f32], shift: f32, out: &mut [f32]) -> f32 {
    for (o, &a) in out.iter_mut().zip(x) {
        *o = exp_nonpositive(a - shift);
    }
    sum(out)
}

/// `exp(x)` for `x <= 0` (NaN stays NaN), within about 1 unit in the last place: `x = k ln 2 +
/// r` with `|r| <= ln 2 / 2` (ln 2 in two parts, Cody and Waite), `exp(r)` by its Taylor
/// polynomial of degree 7 (truncation below 6e-9), `2^k` written into the exponent bits.
/// Below -87 (where `exp` leaves the normal numbers) it returns `exp(-87)`, about 1.6e-38:
/// every row holds a 1 (its maximum), so the difference is far below float32's resolution.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    // The rounded sum holds k in its low mantissa bits: 2^k comes from integer operations
    // alone, without a float-to-integer conversion (which does not vectorise).
    let shifted = x * LOG2_E + ROUND;
    let k = shifted - ROUND;
    let k_bits = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits((k_bits.wrapping_add(127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exponential_is_within_two_ulp_of_the_standard_one() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let got = f64::from(exp_nonpositive(x));
            let want = f64::from(x).exp();
            let ulp = f64::from(f32::EPSILON) * want;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) < 2e-38);
    }

    #[test]
    fn add_transpose_adds_every_pair_once() {
        for n in [1, 5, 33, 70] {
            let g: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut got = g.clone();
            add_transpose(&mut got, n);
            for i in 0..n {
                for j in 0..n {
                    assert_eq!(got[i * n + j], g[i * n + j] + g[j * n + i], "{n}: {i},{j}");
                }
            }
        }
    }

    #[test]
    fn reductions_cover_every_element() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin()).collect();
        let y: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).cos()).collect();
        let want_sum: f32 = x.iter().sum();
        let want_dot: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        let want_max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert!((sum(&x) - want_sum).abs() < 1e-5);
        assert!((dot(&x, &y) - want_dot).abs() < 1e-5);
        assert_eq!(max_of(&x), want_max);
        assert_eq!(max_of(&[]), f32::NEG_INFINITY);
        let mut out = vec![0.0; 37];
        let total = exp_shifted(&x, 1.0, &mut out);
        for (o, a) in out.iter().zip(&x) {
            assert!((o - (a - 1.0).exp()).abs() < 1e-6);
        }
        assert!((total - out.iter().sum::<f32>()).abs() < 1e-5);
    }
}
