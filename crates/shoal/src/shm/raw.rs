//! Copies between private buffers and memory other processes may write concurrently.
// Shared-memory layout or FFI code: raw copies in and out of the mapping (the crate denies unsafe code elsewhere).
#![allow(unsafe_code)]

/// Copies `out.len()` bytes from `base + offset` into `out`.
///
/// The bytes may change while we read (another process's write); that is a data race
/// only in the sense of torn *values*, never of memory safety, because `u8` has no
/// invalid bit patterns and the copy goes through raw pointers without creating
/// references to the shared bytes.
///
/// # Safety
/// `base + offset .. base + offset + out.len()` lies inside one live mapping, and `out`
/// is not part of it.
pub(crate) unsafe fn copy_out(base: *mut u8, offset: usize, out: &mut [u8]) {
    // SAFETY: the caller guarantees the range is inside the mapping behind `base` and
    // that `out`, a private buffer, does not overlap it.
    unsafe { std::ptr::copy_nonoverlapping(base.add(offset), out.as_mut_ptr(), out.len()) }
}

/// Copies `data` to `base + offset`. See [`copy_out`] for why a concurrent reader in
/// another process is no memory-safety problem.
///
/// # Safety
/// `base + offset .. base + offset + data.len()` lies inside one live, writable
/// mapping, and `data` is not part of it.
pub(crate) unsafe fn copy_in(base: *mut u8, offset: usize, data: &[u8]) {
    // SAFETY: the caller guarantees the range is inside the writable mapping behind
    // `base` and that `data`, a private buffer, does not overlap it.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(offset), data.len()) }
}
