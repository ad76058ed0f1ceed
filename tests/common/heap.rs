//! Heap in use, for the tests that check memory comes back after calls or worker rebuilds.

/// Bytes glibc's malloc holds in use (every arena's allocated chunks plus mapped chunks), in MB;
/// `None` off glibc, which has no such statistic.
pub fn heap_in_use_mb() -> Option<f64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// `struct mallinfo2` of <malloc.h> (glibc ≥ 2.33).
        #[repr(C)]
        struct MallInfo2 {
            arena: usize,
            ordblks: usize,
            smblks: usize,
            hblks: usize,
            hblkhd: usize,
            usmblks: usize,
            fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            keepcost: usize,
        }
        extern "C" {
            fn mallinfo2() -> MallInfo2;
        }
        // SAFETY: mallinfo2 only reads the allocator's statistics under its locks.
        let m = unsafe { mallinfo2() };
        Some((m.uordblks + m.hblkhd) as f64 / (1024.0 * 1024.0))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}
