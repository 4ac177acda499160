//! Copies between private buffers and memory other processes may write concurrently.
// Shared-memory layout or FFI code: raw copies in and out of the mapping (the crate denies unsafe code elsewhere).
#![allow(unsafe_code)]

/// Copies `out.len()` bytes from `base + offset` into `out`.
///
/// The caller checked the range against the segment. The bytes may change while we read
/// (another process's write); that is a data race only in the sense of torn *values*,
/// never of memory safety, because `u8` has no invalid bit patterns and the copy goes
/// through raw pointers without creating references to the shared bytes.
pub(crate) fn copy_out(base: *mut u8, offset: usize, out: &mut [u8]) {
    // SAFETY: the caller checked `offset + out.len()` against the mapping behind `base`;
    // `out` is a private buffer that cannot overlap a shared mapping.
    unsafe { std::ptr::copy_nonoverlapping(base.add(offset), out.as_mut_ptr(), out.len()) }
}

/// Copies `data` to `base + offset`. See [`copy_out`] for why this is sound.
pub(crate) fn copy_in(base: *mut u8, offset: usize, data: &[u8]) {
    // SAFETY: the caller checked `offset + data.len()` against the mapping behind `base`;
    // `data` is a private buffer that cannot overlap a shared mapping.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(offset), data.len()) }
}
