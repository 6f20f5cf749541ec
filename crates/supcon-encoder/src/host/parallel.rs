//! Splitting a host kernel's output over the cores: contiguous pieces, one scoped thread each.

use std::sync::OnceLock;

/// Below this many elements of work a kernel runs on the calling thread: starting threads costs
/// more than it saves.
const MIN_PARALLEL_ELEMENTS: usize = 1 << 15;

/// The cores this process may use, asked once.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Calls `f(first_row, rows)` on pieces of `out`, a whole number of rows of `row_len` each,
/// spread over the cores when `work` (elements touched) is large enough. Every row is written
/// by exactly one call, so the result does not depend on the number of threads.
pub(crate) fn for_rows<T: Send>(
    out: &mut [T],
    row_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let rows = out.len() / row_len.max(1);
    let threads = if work < MIN_PARALLEL_ELEMENTS {
        1
    } else {
        cores().min(rows).max(1)
    };
    if threads == 1 {
        f(0, out);
        return;
    }
    let per_thread = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        for (i, piece) in out.chunks_mut(per_thread * row_len).enumerate() {
            scope.spawn(move || f(i * per_thread, piece));
        }
    });
}
