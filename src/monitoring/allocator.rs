//! Giving the allocator's free memory back to the OS. glibc's malloc keeps
//! what a burst freed inside its arenas (one per thread that allocated), and
//! returns only the free space at the very top of each, so after a burst of
//! concurrent turns valor stayed at the burst's peak RSS for as long as it
//! ran (`examples/load`). `malloc_trim(0)` walks every arena and hands whole
//! free pages back (`MADV_DONTNEED`); live allocations are untouched.
//!
//! The one `unsafe` block in valor: a call into glibc that takes no
//! pointers. Elsewhere (musl, other systems) this does nothing.

/// Return free heap pages to the OS; true when glibc gave any back. Walks
/// and locks every arena in turn, so call it from a blocking thread at a
/// quiet moment (the housekeeping task does, after turns stop).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // Declared here rather than through the `libc` crate: a new dependency
    // changes every valor symbol's name and so the link order file.
    unsafe extern "C" {
        /// glibc: `int malloc_trim(size_t pad)`.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: `malloc_trim` takes a size and no pointers, and glibc holds
    // each arena's lock while it trims, so it is safe beside any allocation.
    unsafe { malloc_trim(0) == 1 }
}

/// Return free heap pages to the OS: nothing to do off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}
