//! Allocator settings for processes that train or sample.
//!
//! A training step allocates and frees a few hundred tensors of up to a few MiB. With glibc's
//! defaults many of those become fresh `mmap`s that are unmapped on free, so every step faults
//! the same pages in again and the kernel zeroes them; that cost 5-9% of a step at the
//! `netshare` sizes. Raising the mmap and trim thresholds keeps freed buffers in the heap for
//! the next step. The setting is process-wide, so only binaries call it.

/// Keeps large freed buffers in the process heap for reuse (glibc on Linux; elsewhere nothing).
/// Call once at the start of `main`, before worker threads start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes allocator parameters; glibc serialises it against allocation,
    // and the arguments are valid parameter numbers with non-negative byte counts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
