//! The elementwise stage of the blocked SupCon loss ([`row_blocks`](crate::row_blocks)) for
//! devices whose tensors live in host memory (Burn's flex and ndarray): two passes over each
//! row of logits, with a vectorised exponential, instead of a dozen tensor operations over the
//! block, and the gradient written over the logits (no second `[rows, columns]` buffer).
//!
//! For row `i` (anchor `start + i`, whose own column is excluded from every sum), with weights
//! `w_ij` and `W_i = sum_j w_ij`, `m_i = max_{j != self} l_ij`, `S_i = sum_{j != self}
//! exp(l_ij - m_i)`:
//!
//! ```text
//! loss_i = -s * (sum_j w_ij l_ij / W_i - m_i - ln S_i)          (0 when W_i <= 1e-6)
//! g_ij   = a_i exp(l_ij - m_i) - c_i w_ij                        (0 on the self column)
//! ```
//!
//! with `s = T / T_base`, `f = s / anchors`, `a_i = f / S_i` and `c_i = f / W_i` (both 0 for a
//! row without positives). The first pass finds `m_i`, `S_i`, `W_i` and the loss; the second
//! writes `g`. When the block is every anchor against exactly the anchors, the logits are
//! symmetric (`l_ji = l_ij`) and the caller wants `G + G^T`, whose entries need no transpose:
//!
//! ```text
//! (G + G^T)_ij = a_i exp(l_ij - m_i) + a_j exp(l_ij - m_j) - c_i w_ij - c_j w_ji
//! ```
//!
//! NaN logits give a NaN loss (the maximum skips them, the exponential keeps them). Rows are
//! split over rayon's global pool (Burn flex's own: right after a product its threads are still
//! awake, where threads of our own would compete with them); the losses are summed in row order,
//! so the value does not depend on how many threads there are.

/// Which columns are positives of a row.
pub(crate) enum HostWeights {
    /// Column `j` is a positive of row `i` when `keys[j] == keys[i]` (anchors are the first
    /// columns); symmetric.
    Keys(Vec<i64>),
    /// The user's `[batch, batch]` mask, row-major, tiled over the batch's views; columns from
    /// `batch_columns` on (the memory) have weight 0.
    Mask {
        /// The mask's values.
        mask: Vec<f32>,
        /// The mask transposed (the weights `w_ji` of a row, for `G + G^T`); empty when no
        /// symmetric gradient is asked for.
        transposed: Vec<f32>,
        /// Its side.
        batch: usize,
        /// Views times batch.
        batch_columns: usize,
    },
}

impl HostWeights {
    /// The weights of a `[batch, batch]` mask (row-major) tiled over `views` views, followed by
    /// memory columns of weight 0; with `transposed`, the mask's transpose too (for [`run`]'s
    /// symmetric gradient).
    pub(crate) fn mask(mask: Vec<f32>, batch: usize, views: usize, transposed: bool) -> Self {
        let mut mask_t = vec![0.0; if transposed { mask.len() } else { 0 }];
        if transposed {
            for i in 0..batch {
                for j in 0..batch {
                    mask_t[j * batch + i] = mask[i * batch + j];
                }
            }
        }
        let transposed = mask_t;
        Self::Mask {
            mask,
            transposed,
            batch,
            batch_columns: views * batch,
        }
    }

    /// Writes the weights `w_{anchor, j}` into `row` (`columns` long), or with `transposed`
    /// the weights `w_{j, anchor}`.
    #[inline(always)]
    fn fill(&self, anchor: usize, row: &mut [f32], transposed: bool) {
        match self {
            Self::Keys(keys) => {
                let key = keys[anchor];
                for (w, &k) in row.iter_mut().zip(keys) {
                    *w = if k == key { 1.0 } else { 0.0 };
                }
            }
            Self::Mask {
                mask,
                transposed: mask_t,
                batch,
                batch_columns,
            } => {
                let sample = anchor % batch;
                debug_assert!(!transposed || !mask_t.is_empty(), "built without transpose");
                let values = if transposed { mask_t } else { mask };
                let source = &values[sample * batch..(sample + 1) * batch];
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
    /// Columns of the contrast set.
    pub columns: usize,
    /// The first row's anchor index (its own column).
    pub start: usize,
    /// The positives.
    pub weights: &'a HostWeights,
    /// `1 / T`: the block holds the products `z_i . c_j`, the logits are these times it (so
    /// that the symmetric block's logits are exactly symmetric, as the products are).
    pub inverse_temperature: f32,
    /// `T / T_base`.
    pub scale: f32,
    /// `scale / anchors`: the gradient of the mean over all anchors.
    pub grad_factor: f32,
}

/// What the first pass keeps of each row for the second, structure of arrays (the symmetric
/// gradient reads them along a row).
struct RowTerms {
    /// The row's largest product `p_i = m_i / t` (for every row, with positives or not; 0
    /// where it is not finite). Exponents are computed as `(p_ij - p_i) t`: the difference of
    /// nearby products is exact, so the largest term is exactly `exp(0)` and the others are
    /// accurate relative to their exponent, at any temperature. (`p_ij t - m_i` in one fused
    /// operation leaves the rounding of `m_i`, half a unit in its last place, in every
    /// exponent: a thousand at `T = 1e-10`.)
    max: Vec<f32>,
    /// `a_i = f / S_i`, 0 without positives.
    exp_scale: Vec<f32>,
    /// `c_i = f / W_i`, 0 without positives.
    weight_scale: Vec<f32>,
}

/// The loss of each row of `logits` (`[rows, columns]`, row-major); with `gradient` the logits
/// are overwritten by the loss's gradient with respect to them, `G`, or by `G + G^T` when
/// `symmetric` (the block is every anchor against exactly the anchors: `start == 0`, `rows ==
/// columns`, symmetric logits).
pub(crate) fn run(
    block: &Block<'_>,
    logits: &mut [f32],
    gradient: bool,
    symmetric: bool,
) -> Vec<f64> {
    run_on(Isa::detect(), block, logits, gradient, symmetric)
}

/// [`run`] with the passes compiled for `isa`, which the processor must support.
fn run_on(
    isa: Isa,
    block: &Block<'_>,
    logits: &mut [f32],
    gradient: bool,
    symmetric: bool,
) -> Vec<f64> {
    let columns = block.columns.max(1);
    let rows = logits.len() / columns;
    debug_assert!(!symmetric || (block.start == 0 && rows == block.columns));
    let mut losses = vec![0.0f64; rows];
    let mut max = vec![0.0f32; rows];
    let mut exp_scale = vec![0.0f32; rows];
    let mut weight_scale = vec![0.0f32; rows];
    let parts = Parts::new(rows, columns);
    {
        let logits = &*logits;
        parts.run(
            (
                &mut losses[..],
                &mut max[..],
                &mut exp_scale[..],
                &mut weight_scale[..],
            ),
            |first, out| first_pass_on(isa, block, logits, first, out),
        );
    }
    if gradient {
        let terms = RowTerms {
            max,
            exp_scale,
            weight_scale,
        };
        parts.run(logits, |first, rows_out| {
            second_pass_on(isa, block, &terms, first, rows_out, symmetric);
        });
    }
    losses
}

/// Rows per thread below which one thread does the whole block.
const ROWS_PER_THREAD: usize = 16;

/// How the rows are split over rayon's threads: `per_part` rows each.
struct Parts {
    per_part: usize,
    columns: usize,
    count: usize,
}

impl Parts {
    fn new(rows: usize, columns: usize) -> Self {
        let count = rayon::current_num_threads()
            .min(rows / ROWS_PER_THREAD)
            .max(1);
        Self {
            per_part: rows.div_ceil(count).max(1),
            columns,
            count,
        }
    }

    /// Calls `f(first_row, piece)` on consecutive pieces of `out`, one task each.
    fn run<O: Split + Send>(&self, out: O, f: impl Fn(usize, O) + Sync) {
        if self.count == 1 {
            f(0, out);
            return;
        }
        let mut pieces = Vec::with_capacity(self.count);
        let mut rest = out;
        while rest.rows(self.columns) > self.per_part {
            let (piece, tail) = rest.split_rows(self.per_part, self.columns);
            pieces.push(piece);
            rest = tail;
        }
        let f = &f;
        let last_first = pieces.len() * self.per_part;
        rayon::scope(|scope| {
            for (i, piece) in pieces.into_iter().enumerate() {
                scope.spawn(move |_| f(i * self.per_part, piece));
            }
            f(last_first, rest);
        });
    }
}

/// An output that splits by rows.
trait Split: Sized {
    fn rows(&self, columns: usize) -> usize;
    fn split_rows(self, rows: usize, columns: usize) -> (Self, Self);
}

impl Split for &mut [f32] {
    fn rows(&self, columns: usize) -> usize {
        self.len() / columns
    }
    fn split_rows(self, rows: usize, columns: usize) -> (Self, Self) {
        self.split_at_mut(rows * columns)
    }
}

impl Split for FirstPassOut<'_> {
    fn rows(&self, _columns: usize) -> usize {
        self.0.len()
    }
    fn split_rows(self, rows: usize, _columns: usize) -> (Self, Self) {
        let (a0, a1) = self.0.split_at_mut(rows);
        let (b0, b1) = self.1.split_at_mut(rows);
        let (c0, c1) = self.2.split_at_mut(rows);
        let (d0, d1) = self.3.split_at_mut(rows);
        ((a0, b0, c0, d0), (a1, b1, c1, d1))
    }
}

/// How `a * b + c` is computed: one fused instruction in the versions compiled for AVX2 and
/// FMA, a multiply and an add elsewhere (where `f32::mul_add` would be a call to libm).
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// `a * b + c` in one instruction (only inside functions compiled with FMA).
struct Fused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// `a * b + c` as two operations.
struct Separate;

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The per-row outputs of the first pass: losses and the three terms.
type FirstPassOut<'a> = (&'a mut [f64], &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// The instruction sets the passes are compiled for, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// AVX-512 (foundation), with AVX2 and FMA: the exponentials sixteen at a time.
    Avx512,
    /// AVX2 and FMA: eight at a time.
    Avx2,
    /// Whatever the build targets (a multiply and an add for `a * b + c`).
    Baseline,
}

impl Isa {
    /// The best this processor runs. The AVX-512 and AVX2 versions give the same bits: they
    /// differ in vector width only, never in the operations or the order of the sums (see
    /// [`exp_sum`]), so a run's numbers do not depend on which of the two the processor has.
    /// (Without FMA, `a * b + c` rounds twice: the last bits differ.)
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            if fma && std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if fma {
                return Self::Avx2;
            }
        }
        Self::Baseline
    }
}

/// [`first_pass`] compiled for `isa`, which the processor must support.
fn first_pass_on(isa: Isa, block: &Block<'_>, logits: &[f32], first: usize, out: FirstPassOut<'_>) {
    match isa {
        // SAFETY: `isa` was detected on this processor.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { first_pass_avx512(block, logits, first, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { first_pass_avx2(block, logits, first, out) },
        _ => first_pass::<Separate>(block, logits, first, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn first_pass_avx512(block: &Block<'_>, logits: &[f32], first: usize, out: FirstPassOut<'_>) {
    first_pass::<Fused>(block, logits, first, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn first_pass_avx2(block: &Block<'_>, logits: &[f32], first: usize, out: FirstPassOut<'_>) {
    first_pass::<Fused>(block, logits, first, out);
}

/// Rows `first..first + losses.len()`: their losses and terms.
#[inline(always)]
fn first_pass<M: MulAdd>(
    block: &Block<'_>,
    logits: &[f32],
    first: usize,
    (losses, max, exp_scale, weight_scale): FirstPassOut<'_>,
) {
    let columns = block.columns;
    let mut weights = vec![0.0f32; columns];
    for (offset, loss) in losses.iter_mut().enumerate() {
        let row = first + offset;
        let anchor = block.start + row;
        let logits = &logits[row * columns..(row + 1) * columns];
        block.weights.fill(anchor, &mut weights, false);
        weights[anchor] = 0.0;
        let (before, after) = (&logits[..anchor], &logits[anchor + 1..]);
        let (w_before, w_after) = (&weights[..anchor], &weights[anchor + 1..]);
        let count = sum(w_before) + sum(w_after);
        let t = block.inverse_temperature;
        let row_max = max_of(before).max(max_of(after));
        // Every row keeps its own maximum: the symmetric gradient evaluates `exp(l_ij - m_j)`
        // for rows `j` without positives too (times 0), which must stay finite. Minus infinity
        // (a row with no other column, or only NaN) becomes 0.
        let row_max = if row_max.is_finite() { row_max } else { 0.0 };
        max[offset] = row_max;
        if count <= 1e-6 {
            // No positive: no term, no gradient.
            *loss = 0.0;
            (exp_scale[offset], weight_scale[offset]) = (0.0, 0.0);
            continue;
        }
        let weighted = (dot::<M>(w_before, before) + dot::<M>(w_after, after)) * t;
        let total = exp_sum::<M>(before, t, row_max) + exp_sum::<M>(after, t, row_max);
        let log_denominator = f64::from(row_max) * f64::from(t) + f64::from(total).ln();
        *loss =
            -f64::from(block.scale) * (f64::from(weighted) / f64::from(count) - log_denominator);
        exp_scale[offset] = block.grad_factor / total;
        weight_scale[offset] = block.grad_factor / count;
    }
}

/// [`second_pass`] compiled for `isa`, which the processor must support.
fn second_pass_on(
    isa: Isa,
    block: &Block<'_>,
    terms: &RowTerms,
    first: usize,
    out: &mut [f32],
    symmetric: bool,
) {
    match isa {
        // SAFETY: `isa` was detected on this processor.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { second_pass_avx512(block, terms, first, out, symmetric) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { second_pass_avx2(block, terms, first, out, symmetric) },
        _ => second_pass::<Separate>(block, terms, first, out, symmetric),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn second_pass_avx512(
    block: &Block<'_>,
    terms: &RowTerms,
    first: usize,
    out: &mut [f32],
    symmetric: bool,
) {
    second_pass::<Fused>(block, terms, first, out, symmetric);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn second_pass_avx2(
    block: &Block<'_>,
    terms: &RowTerms,
    first: usize,
    out: &mut [f32],
    symmetric: bool,
) {
    second_pass::<Fused>(block, terms, first, out, symmetric);
}

/// Overwrites rows `first..` of the logits (`out`) with their gradient, `G`, or `G + G^T`
/// when `symmetric`.
#[inline(always)]
fn second_pass<M: MulAdd>(
    block: &Block<'_>,
    terms: &RowTerms,
    first: usize,
    out: &mut [f32],
    symmetric: bool,
) {
    let columns = block.columns;
    let t = block.inverse_temperature;
    let mut weights = vec![0.0f32; columns];
    // Keys are symmetric (`w_ji = w_ij`, the row itself); a mask's transposed row is filled
    // apart.
    let mut weights_t = match (symmetric, block.weights) {
        (true, HostWeights::Mask { .. }) => vec![0.0f32; columns],
        _ => Vec::new(),
    };
    for (offset, row_out) in out.chunks_exact_mut(columns).enumerate() {
        let row = first + offset;
        let anchor = block.start + row;
        let (a, c, m) = (
            terms.exp_scale[row],
            terms.weight_scale[row],
            terms.max[row],
        );
        if !symmetric {
            if a == 0.0 {
                row_out.fill(0.0);
                continue;
            }
            block.weights.fill(anchor, &mut weights, false);
            for (g, &w) in row_out.iter_mut().zip(&weights) {
                *g = M::mul_add(a, exp_nonpositive::<M>((*g - m) * t), -c * w);
            }
        } else {
            block.weights.fill(anchor, &mut weights, false);
            let weights_t = if weights_t.is_empty() {
                &weights
            } else {
                block.weights.fill(anchor, &mut weights_t, true);
                &weights_t
            };
            let column_terms = row_out
                .iter_mut()
                .zip(&terms.max)
                .zip(&terms.exp_scale)
                .zip(&terms.weight_scale)
                .zip(weights.iter().zip(weights_t));
            for ((((g, &m_j), &a_j), &c_j), (&w, &w_t)) in column_terms {
                let l = *g;
                let own = M::mul_add(a, exp_nonpositive::<M>((l - m) * t), -(c * w + c_j * w_t));
                *g = M::mul_add(a_j, exp_nonpositive::<M>((l - m_j) * t), own);
            }
        }
        row_out[anchor] = 0.0;
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
fn dot<M: MulAdd>(x: &[f32], y: &[f32]) -> f32 {
    let (xc, x_rest) = x.as_chunks::<LANES>();
    let (yc, y_rest) = y.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (a, b) in xc.iter().zip(yc) {
        for k in 0..LANES {
            acc[k] = M::mul_add(a[k], b[k], acc[k]);
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

/// `sum_j exp((x[j] - shift) * scale)`. The exponentials are computed two chunks at a time (one
/// AVX-512 register) and added to the accumulators chunk by chunk, in the same order as one
/// chunk at a time: the sum does not depend on the vector width.
#[inline(always)]
fn exp_sum<M: MulAdd>(x: &[f32], scale: f32, shift: f32) -> f32 {
    let (pairs, odd) = x.as_chunks::<{ 2 * LANES }>();
    let (chunks, rest) = odd.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for pair in pairs {
        let mut e = [0.0f32; 2 * LANES];
        for k in 0..2 * LANES {
            e[k] = exp_nonpositive::<M>((pair[k] - shift) * scale);
        }
        for k in 0..LANES {
            acc[k] += e[k];
        }
        for k in 0..LANES {
            acc[k] += e[LANES + k];
        }
    }
    for chunk in chunks {
        for k in 0..LANES {
            acc[k] += exp_nonpositive::<M>((chunk[k] - shift) * scale);
        }
    }
    let rest: f32 = rest
        .iter()
        .map(|&a| exp_nonpositive::<M>((a - shift) * scale))
        .sum();
    acc.iter().sum::<f32>() + rest
}

/// `exp(x)` for `x <= 0` (NaN stays NaN), within about 1 unit in the last place: `x = k ln 2 +
/// r` with `|r| <= ln 2 / 2` (ln 2 in two parts, Cody and Waite), `exp(r)` by its Taylor
/// polynomial of degree 7 (truncation below 6e-9), `2^k` written into the exponent bits.
/// Below -87 (where `exp` leaves the normal numbers) it returns `exp(-87)`, about 1.6e-38:
/// every row holds a 1 (its maximum), so the difference is far below float32's resolution.
/// Callers pass `(l - m) t` with `m` the largest `l` of the row, never above 0 but on the
/// symmetric gradient's diagonal, which is overwritten afterwards (above 0 the bit arithmetic
/// below overflows).
#[inline(always)]
fn exp_nonpositive<M: MulAdd>(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    // The rounded sum holds k in its low mantissa bits: 2^k comes from integer operations
    // alone, without a float-to-integer conversion (which does not vectorise).
    let shifted = M::mul_add(x, LOG2_E, ROUND);
    let k = shifted - ROUND;
    let k_bits = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = M::mul_add(-k, LN2_LO, M::mul_add(-k, LN2_HI, x));
    let mut p = 1.0 / 5040.0;
    for coefficient in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = M::mul_add(p, r, coefficient);
    }
    let scale = f32::from_bits((k_bits.wrapping_add(127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst_ulp<M: MulAdd>() -> f64 {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let got = f64::from(exp_nonpositive::<M>(x));
            let want = f64::from(x).exp();
            let ulp = f64::from(f32::EPSILON) * want;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(exp_nonpositive::<M>(f32::NAN).is_nan());
        assert_eq!(exp_nonpositive::<M>(0.0), 1.0);
        assert!(exp_nonpositive::<M>(-1000.0) < 2e-38);
        worst
    }

    #[test]
    fn the_exponential_is_within_two_ulp_of_the_standard_one() {
        let separate = worst_ulp::<Separate>();
        assert!(separate <= 2.0, "{separate} ulp");
        // `f32::mul_add` here is the exact fused operation, in software or not.
        let fused = worst_ulp::<Fused>();
        assert!(fused <= 2.0, "{fused} ulp");
    }

    /// Deterministic values in [-1, 1).
    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| ((i as f32 + 0.5) * 0.618_034 + seed as f32 * 0.1).sin())
            .collect()
    }

    /// [`run_on`]'s passes compiled for no particular processor, with `Fused` multiply-adds
    /// (`f32::mul_add`, exact whether in hardware or software), one thread.
    fn run_fused(block: &Block<'_>, logits: &mut [f32], symmetric: bool) -> Vec<f64> {
        let rows = logits.len() / block.columns;
        let mut losses = vec![0.0f64; rows];
        let (mut max, mut a, mut c) = (vec![0.0; rows], vec![0.0; rows], vec![0.0; rows]);
        first_pass::<Fused>(block, logits, 0, (&mut losses, &mut max, &mut a, &mut c));
        let terms = RowTerms {
            max,
            exp_scale: a,
            weight_scale: c,
        };
        second_pass::<Fused>(block, &terms, 0, logits, symmetric);
        losses
    }

    /// The vector instruction sets with FMA that this processor runs.
    fn supported() -> Vec<Isa> {
        let best = Isa::detect();
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .skip_while(|&isa| isa != best)
            .collect()
    }

    #[test]
    fn avx512_and_avx2_give_the_same_bits() {
        // Column counts around the pair (16) and chunk (8) widths, so that every tail is taken;
        // large and small temperatures; both gradients. The reference is the portable version
        // with fused multiply-adds (what AVX2 compiles, in scalar code).
        let sets = supported();
        for n in [1, 7, 8, 15, 16, 17, 24, 33, 64, 77] {
            let mut logits = vec![0.0f32; n * n];
            let raw = values(n * n, 3 * n as u32);
            for i in 0..n {
                for j in 0..n {
                    logits[i * n + j] = raw[i * n + j] + raw[j * n + i];
                }
            }
            let keys: Vec<i64> = (0..n as i64).map(|i| i % 4).collect();
            let weights = HostWeights::Keys(keys);
            for inverse_temperature in [1.0, 14.285_714, 1e4] {
                let block = whole(&weights, n, inverse_temperature, 1.0 / n as f32);
                for symmetric in [false, true] {
                    let mut want = logits.clone();
                    let want_losses = run_fused(&block, &mut want, symmetric);
                    for &isa in &sets {
                        let mut got = logits.clone();
                        let losses = run_on(isa, &block, &mut got, true, symmetric);
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(losses, want_losses, "{isa:?}, n {n}");
                        assert_eq!(bits(&got), bits(&want), "{isa:?}, n {n}");
                    }
                }
            }
        }
        eprintln!("instruction sets compared: {sets:?}");
    }

    #[test]
    fn the_symmetric_gradient_is_g_plus_its_transpose() {
        // Symmetric logits, labels with a sample that has no positive, and a weighted,
        // non-symmetric mask; sizes over and under the per-thread split.
        for n in [5, 40, 70] {
            let mut logits = vec![0.0f32; n * n];
            let raw = values(n * n, n as u32);
            for i in 0..n {
                for j in 0..n {
                    logits[i * n + j] = 4.0 * (raw[i * n + j] + raw[j * n + i]);
                }
            }
            let keys: Vec<i64> = (0..n as i64)
                .map(|i| if i == 0 { 99 } else { i % 3 })
                .collect();
            let batch = n;
            let mask: Vec<f32> = values(batch * batch, 7)
                .iter()
                .map(|v| v.max(0.0) * 2.0)
                .collect();
            for weights in [
                HostWeights::Keys(keys),
                HostWeights::mask(mask, batch, 1, true),
            ] {
                let block = Block {
                    columns: n,
                    start: 0,
                    weights: &weights,
                    inverse_temperature: 2.0,
                    scale: 1.4,
                    grad_factor: 0.1,
                };
                let mut g = logits.clone();
                let losses = run(&block, &mut g, true, false);
                let mut sym = logits.clone();
                let sym_losses = run(&block, &mut sym, true, true);
                assert_eq!(losses, sym_losses);
                let largest = g.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(largest > 0.0);
                for i in 0..n {
                    for j in 0..n {
                        let want = g[i * n + j] + g[j * n + i];
                        let got = sym[i * n + j];
                        assert!(
                            (got - want).abs() <= 1e-6 * largest,
                            "{n}: {i},{j}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// A block of every row against every column (start 0), scale 1.
    fn whole(
        weights: &HostWeights,
        columns: usize,
        inverse_temperature: f32,
        grad_factor: f32,
    ) -> Block<'_> {
        Block {
            columns,
            start: 0,
            weights,
            inverse_temperature,
            scale: 1.0,
            grad_factor,
        }
    }

    #[test]
    fn a_row_without_positives_has_no_loss_and_no_gradient() {
        let weights = HostWeights::Keys(vec![0, 1, 1]);
        let block = whole(&weights, 3, 1.0, 1.0);
        let mut logits = vec![0.0, 0.5, -0.5, 0.5, 0.0, 0.2, -0.5, 0.2, 0.0];
        let losses = run(&block, &mut logits, true, false);
        assert_eq!(losses[0], 0.0);
        assert!(losses[1] > 0.0);
        assert_eq!(&logits[..3], &[0.0; 3]);
        // Row 1: softmax over columns 0 and 2 minus the positive (column 2).
        let (e0, e2) = ((0.5f32 - 0.5).exp(), (0.2f32 - 0.5).exp());
        let want = [e0 / (e0 + e2), 0.0, e2 / (e0 + e2) - 1.0];
        for (got, want) in logits[3..6].iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn a_row_without_positives_gives_no_nan_in_the_symmetric_gradient() {
        // Large logits (unnormalised features): the terms of row 0, which has no positive, must
        // still be evaluated at its own maximum, where the exponential stays finite.
        let weights = HostWeights::Keys(vec![0, 1, 1]);
        let block = whole(&weights, 3, 1.0, 1.0 / 3.0);
        let logits = vec![0.0, 88.8, 88.5, 88.8, 0.0, 80.0, 88.5, 80.0, 0.0];
        let mut g = logits.clone();
        run(&block, &mut g, true, false);
        let mut sym = logits;
        run(&block, &mut sym, true, true);
        for i in 0..3 {
            for j in 0..3 {
                let want = g[i * 3 + j] + g[j * 3 + i];
                let got = sym[i * 3 + j];
                assert!((got - want).abs() <= 1e-6, "{i},{j}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn the_products_are_scaled_by_the_inverse_temperature() {
        let weights = HostWeights::Keys(vec![0, 1, 0, 1]);
        let products = values(16, 3);
        let block = |inverse_temperature| whole(&weights, 4, inverse_temperature, 0.25);
        let mut scaled: Vec<f32> = products.iter().map(|p| p * 3.0).collect();
        let want = run(&block(1.0), &mut scaled, true, false);
        let mut got_grad = products.clone();
        let got = run(&block(3.0), &mut got_grad, true, false);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        for (g, w) in got_grad.iter().zip(&scaled) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
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
        assert!((dot::<Separate>(&x, &y) - want_dot).abs() < 1e-5);
        assert!((dot::<Fused>(&x, &y) - want_dot).abs() < 1e-5);
        assert_eq!(max_of(&x), want_max);
        assert_eq!(max_of(&[]), f32::NEG_INFINITY);
        let want_exp_sum: f32 = x.iter().map(|a| ((a - 1.0) * 0.5).exp()).sum();
        assert!((exp_sum::<Separate>(&x, 0.5, 1.0) - want_exp_sum).abs() < 1e-5);
        assert!((exp_sum::<Fused>(&x, 0.5, 1.0) - want_exp_sum).abs() < 1e-5);
    }
}
