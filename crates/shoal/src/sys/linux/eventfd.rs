//! `eventfd` readiness descriptors: a counter the kernel can report as readable to
//! `epoll`, `poll`, tokio or asyncio, used by channels to say "there may be data".

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::errno::{cvt, retry};

/// Creates a non-blocking, close-on-exec eventfd with a zero counter.
///
/// # Errors
/// When the kernel refuses a new descriptor (`EMFILE`, `ENFILE`, `ENOMEM`).
pub(crate) fn eventfd_create() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes two integers and touches no memory of ours.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: eventfd just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to the counter, making the descriptor readable.
///
/// A full counter (`EAGAIN`, after 2^64 - 2 signals nobody drained) is not an error:
/// the descriptor is readable already, which is all a signal means.
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: `one` is a live u64 on this stack frame; write reads exactly 8 bytes of it.
    let ret =
        retry(|| unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) as isize });
    match ret {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// Resets the counter to zero; returns whether it was signalled.
///
/// # Errors
/// Only for a descriptor that is not an eventfd.
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut value: u64 = 0;
    // SAFETY: `value` is a live u64 on this stack frame; read writes at most 8 bytes.
    let ret = retry(|| unsafe {
        libc::read(fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) as isize
    });
    match ret {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Registers `fd` (a readiness eventfd) with the current tokio reactor, for reading.
///
/// # Errors
/// When the reactor refuses the descriptor (`ENOMEM`, `ENOSPC`).
///
/// # Panics
/// Outside a tokio runtime with its IO driver enabled.
#[cfg(feature = "tokio")]
pub(crate) fn eventfd_async(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    use tokio::io::{unix::AsyncFd, Interest};
    // SAFETY: the `AsyncFd` takes ownership of `fd`, an `OwnedFd`: the descriptor is
    // open and names the same file description until the `AsyncFd` drops it, and
    // `as_raw_fd` of an `OwnedFd` always returns that same number.
    let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
    Ok(afd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn readable(fd: BorrowedFd<'_>) -> bool {
        super::super::poll_readable(&[fd], Some(std::time::Duration::ZERO)).unwrap()[0]
    }

    #[test]
    fn signal_makes_readable_and_drain_resets() {
        let fd = eventfd_create().unwrap();
        assert!(!readable(fd.as_fd()));
        assert!(!eventfd_drain(fd.as_fd()).unwrap());
        eventfd_signal(fd.as_fd()).unwrap();
        eventfd_signal(fd.as_fd()).unwrap();
        assert!(readable(fd.as_fd()));
        assert!(eventfd_drain(fd.as_fd()).unwrap());
        assert!(!readable(fd.as_fd()));
    }
}
