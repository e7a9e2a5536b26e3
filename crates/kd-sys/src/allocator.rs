//! Keeping freed activation memory for reuse.
//!
//! libtorch's CPU tensors are plain `malloc` blocks, and a training step frees and
//! re-allocates the same few dozen activation buffers (tens of MB each at batch 128). glibc
//! serves blocks above its mmap threshold (128 KiB, adapting up to 32 MiB) with fresh `mmap`
//! calls and returns them with `munmap`, so every step pays the kernel to map and zero those
//! pages again (page faults show up as system time). Raising the mmap and trim thresholds
//! (`mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD)`, the same knobs as the
//! `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` environment variables) makes freed
//! buffers stay in the heap and be reused: the process keeps its peak working set instead of
//! shrinking between steps. `docs/performance.md` records the effect.

use crate::ffi;

/// Serves blocks up to `bytes` from glibc's heap and keeps up to `bytes` of freed memory;
/// returns whether glibc accepted both settings (`bytes` at most `i32::MAX`).
pub fn retain_freed_memory(bytes: usize) -> bool {
    i32::try_from(bytes).is_ok_and(|b| ffi::malloc_retain(b.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_a_gigabyte_and_refuses_what_does_not_fit_an_int() {
        assert!(retain_freed_memory(1 << 30));
        assert!(!retain_freed_memory(1 << 40));
    }
}
