//! Futex wait and wake on 32-bit words that may be shared between processes.
//!
//! The words are used *without* `FUTEX_PRIVATE_FLAG`: the kernel then keys a waiter by
//! the physical page behind the word, so a waiter in one process is woken by a wake in
//! another process that maps the same segment at a different address.

use std::io;
use std::sync::atomic::AtomicU32;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A point in time after which a blocking call gives up; `None` waits forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// Never expires.
    pub(crate) const NEVER: Deadline = Deadline(None);

    /// Expires `timeout` from now. A timeout too large to represent never expires.
    /// A zero timeout has expired already, without reading the clock (every
    /// non-blocking attempt makes one: the clock would cost as much as the attempt).
    pub(crate) fn after(timeout: Duration) -> Deadline {
        if timeout.is_zero() {
            return Deadline::passed();
        }
        Deadline(Instant::now().checked_add(timeout))
    }

    /// A deadline that has passed: the first time this process asked for one.
    fn passed() -> Deadline {
        static PAST: OnceLock<Instant> = OnceLock::new();
        Deadline(Some(*PAST.get_or_init(Instant::now)))
    }

    /// `None` waits forever, `Some(t)` expires `t` from now.
    pub(crate) fn from_timeout(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::NEVER, Deadline::after)
    }

    /// Time left, `None` when the deadline never expires; zero once it has passed.
    pub(crate) fn remaining(self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired(self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

/// How a [`futex_wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken by a wake, a signal, or spuriously; or the word no longer held `expected`.
    /// The caller re-checks its condition in every case.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `word` holds `expected`, at most until `deadline`.
///
/// `EINTR` and `EAGAIN` (the word changed before the sleep) count as [`WaitOutcome::Woken`]:
/// callers always loop on their own condition.
///
/// # Errors
/// Only an unexpected `errno` from the kernel (for example `EFAULT`), which would mean
/// the word is not mapped.
pub(crate) fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Deadline,
) -> io::Result<WaitOutcome> {
    let remaining = deadline.remaining();
    if remaining == Some(Duration::ZERO) {
        return Ok(WaitOutcome::TimedOut);
    }
    let ts = remaining.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (it is a live
    // reference); `ts_ptr` is null or points at a timespec on this stack frame. FUTEX_WAIT
    // reads both and writes neither.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if ret == 0 {
        return Ok(WaitOutcome::Woken);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(WaitOutcome::Woken),
        Some(libc::ETIMEDOUT) => Ok(WaitOutcome::TimedOut),
        _ => Err(err),
    }
}

/// Wakes up to `n` waiters sleeping on `word` (in any process); returns how many woke.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key; it reads no memory
    // that is not a valid live u32.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    // FUTEX_WAKE fails only for a bad address, which a reference rules out.
    ret.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn wait_returns_at_once_when_value_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(
            futex_wait(&w, 0, Deadline::NEVER).unwrap(),
            WaitOutcome::Woken
        );
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        let start = Instant::now();
        let out = futex_wait(&w, 0, Deadline::after(Duration::from_millis(20))).unwrap();
        assert_eq!(out, WaitOutcome::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wake_releases_a_waiter() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                futex_wait(&w2, 0, Deadline::after(Duration::from_secs(10))).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::Release);
        futex_wake(&w, 1);
        t.join().unwrap();
    }

    #[test]
    fn deadline_arithmetic() {
        assert_eq!(Deadline::NEVER.remaining(), None);
        assert!(!Deadline::NEVER.expired());
        assert!(Deadline::after(Duration::ZERO).expired());
        assert_eq!(Deadline::from_timeout(None), Deadline::NEVER);
    }
}
