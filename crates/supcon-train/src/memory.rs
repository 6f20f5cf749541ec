//! The allocator the trainer and the bench install, and its one setting.
//!
//! Burn's CPU backends allocate a fresh buffer for most tensor operations. With glibc's
//! allocator every large one is a new `mmap` whose pages fault in zeroed; measured on the demo's
//! training step, that was almost a third of the time (168 images/s with glibc, 236 with mimalloc).
//! mimalloc still returns freed memory to the OS after 10 ms by default, and the next step's
//! buffers fault in again: `keep_freed_memory` turns that off (ResNet-18 training step
//! 3.65 s to 2.89 s, `cargo xtask bench --only step_resnet18_3x32x32_b64`).

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the same index in its v2 and v3
/// headers); `libmimalloc-sys` does not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory freed to mimalloc for reuse instead of returning it to the OS (purge delay -1):
/// training reuses the same buffer sizes every step. Call once at the start of `main` of a
/// binary whose global allocator is mimalloc.
pub fn keep_freed_memory() {
    // SAFETY: sets a global option of mimalloc; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
