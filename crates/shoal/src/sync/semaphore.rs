//! A counting semaphore shared between processes, and the raw state machine that
//! [`BoundedSemaphore`](crate::sync::BoundedSemaphore) shares with it.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shm::Segment;
use crate::sync::primitive::Primitive;
use crate::sync::spin;
use crate::sync::{ReleaseError, SyncError};
use crate::sys::{Deadline, WaitOutcome};

/// The largest count a semaphore holds (`SEM_VALUE_MAX` on Linux).
pub(crate) const MAX_VALUE: u32 = i32::MAX as u32;

/// The in-segment state of a semaphore.
///
/// | word | meaning |
/// |---|---|
/// | `count` | permits available, `0..=limit`; the futex word sleepers wait on while it is 0 |
/// | `sleepers` | threads that may be asleep on `count` (registered before their last check) |
/// | `limit` | the largest count: the initial value when bounded, [`MAX_VALUE`] otherwise |
///
/// `count` and `sleepers` form a Dekker pair: an acquirer increments `sleepers` then
/// reads `count`; a releaser increments `count` then reads `sleepers`, all `SeqCst`.
/// One of the two sees the other's write, so either the acquirer sees the permit and
/// does not sleep, or the releaser sees the sleeper and wakes it; a releaser that sees
/// no sleeper makes no system call.
#[repr(C)]
struct SemState {
    count: AtomicU32,
    sleepers: AtomicU32,
    limit: AtomicU32,
}

// SAFETY: #[repr(C)], only atomics (and padding never read): every bit pattern is a
// valid state, shared between processes only through atomic operations; alignment ≤ 64.
#[allow(unsafe_code)]
unsafe impl crate::shm::PayloadState for SemState {}

const _: () = {
    assert!(std::mem::offset_of!(SemState, count) == 0);
    assert!(std::mem::offset_of!(SemState, sleepers) == 4);
    assert!(std::mem::offset_of!(SemState, limit) == 8);
    assert!(std::mem::size_of::<SemState>() == 12);
};

/// The semaphore state machine behind [`Semaphore`] and
/// [`BoundedSemaphore`](crate::sync::BoundedSemaphore).
#[derive(Clone)]
pub(crate) struct RawSemaphore {
    seg: Arc<Segment>,
    primitive: Primitive,
}

impl RawSemaphore {
    pub(crate) fn new(primitive: Primitive, value: u32, limit: u32) -> Result<Self, SyncError> {
        if value > MAX_VALUE {
            return Err(SyncError::ValueTooLarge {
                value,
                max: MAX_VALUE,
            });
        }
        let seg = primitive.create(std::mem::size_of::<SemState>())?;
        let raw = RawSemaphore { seg, primitive };
        let st = raw.state();
        // Relaxed: the segment reaches no other process or thread before a handoff or a
        // clone, both of which synchronise.
        st.count.store(value, Ordering::Relaxed);
        st.limit.store(limit, Ordering::Relaxed);
        Ok(raw)
    }

    fn state(&self) -> &SemState {
        self.seg.state::<SemState>()
    }

    pub(crate) fn value(&self) -> u32 {
        self.state().count.load(Ordering::Relaxed)
    }

    pub(crate) fn limit(&self) -> u32 {
        self.state().limit.load(Ordering::Relaxed)
    }

    /// One attempt to take a permit; fails only when the count is 0.
    fn try_take(&self) -> bool {
        let count = &self.state().count;
        let mut c = count.load(Ordering::Relaxed);
        while c > 0 {
            match count.compare_exchange_weak(c, c - 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// A permit now, as a guard.
    pub(crate) fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.try_take().then(|| SemaphoreGuard::new(self))
    }

    /// A permit, waiting as long as it takes.
    pub(crate) fn acquire(&self) -> SemaphoreGuard<'_> {
        while !self.acquire_until(Deadline::NEVER) {}
        SemaphoreGuard::new(self)
    }

    /// A permit, waiting at most `timeout`.
    pub(crate) fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.acquire_until(Deadline::after(timeout))
            .then(|| SemaphoreGuard::new(self))
    }

    /// Takes a permit, waiting at most until `deadline`; false when it passed first.
    fn acquire_until(&self, deadline: Deadline) -> bool {
        if self.try_take() || spin::spin_until(|| self.try_take()) {
            return true;
        }
        let st = self.state();
        st.sleepers.fetch_add(1, Ordering::SeqCst);
        let taken = loop {
            // SeqCst, the second half of the Dekker pair with `release` (a relaxed load
            // could be ordered before the `sleepers` increment on weak memory models).
            if st.count.load(Ordering::SeqCst) > 0 {
                if self.try_take() {
                    break true;
                }
                continue;
            }
            // The count was 0 just now; the kernel re-checks it atomically before sleeping.
            if spin::sleep_on(&st.count, 0, deadline) == WaitOutcome::TimedOut {
                // A permit released at the very end still counts.
                break self.try_take();
            }
        };
        st.sleepers.fetch_sub(1, Ordering::SeqCst);
        taken
    }

    pub(crate) fn release(&self) -> Result<(), ReleaseError> {
        let st = self.state();
        let limit = st.limit.load(Ordering::Relaxed);
        let mut c = st.count.load(Ordering::Relaxed);
        loop {
            if c >= limit {
                return Err(match self.primitive {
                    Primitive::BoundedSemaphore => ReleaseError::OverReleased { limit },
                    _ => ReleaseError::Overflow { max: limit },
                });
            }
            match st
                .count
                .compare_exchange_weak(c, c + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        // One permit, one sleeper to wake: a woken sleeper that loses the permit to a
        // barging acquirer goes back to sleep, and the permit was used either way.
        if st.sleepers.load(Ordering::SeqCst) > 0 {
            spin::wake_one(&st.count);
        }
        Ok(())
    }

    pub(crate) fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.primitive.serialize(&self.seg, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
        primitive: Primitive,
    ) -> Result<Self, D::Error> {
        let seg = primitive.deserialize(d, std::mem::size_of::<SemState>())?;
        Ok(RawSemaphore { seg, primitive })
    }
}

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`](crate::sync::BoundedSemaphore),
/// given back when the guard is dropped.
///
/// [`forget`](SemaphoreGuard::forget) keeps the permit taken instead (to be given back
/// later with `release`, perhaps by another process).
///
/// # Examples
/// ```
/// let sem = shoal::Semaphore::new(2)?;
/// let permit = sem.acquire();
/// assert_eq!(sem.value(), 1);
/// drop(permit); // given back
/// assert_eq!(sem.value(), 2);
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[must_use = "the permit is given back at once if the guard is not kept"]
pub struct SemaphoreGuard<'a> {
    raw: &'a RawSemaphore,
}

impl<'a> SemaphoreGuard<'a> {
    pub(crate) fn new(raw: &'a RawSemaphore) -> Self {
        SemaphoreGuard { raw }
    }

    /// Keeps the permit: dropping nothing, releasing nothing.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::Semaphore;
    ///
    /// let sem = Semaphore::new(1)?;
    /// sem.acquire().forget();
    /// assert_eq!(sem.value(), 0);
    /// sem.release()?;
    /// assert_eq!(sem.value(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // A bounded semaphore refuses this release only if someone else released a
        // permit they never took; the extra permit is then already there, and a drop
        // cannot report anything, so the refusal is ignored.
        let _ = self.raw.release();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

/// A counting semaphore shared between processes (Python's
/// `multiprocessing.Semaphore`).
///
/// The count lives in shared memory; a clone is another handle on the same semaphore,
/// and so is the value a child process receives when the semaphore is passed as a
/// [`Process`](crate::process) argument. Taking a permit is one compare-and-swap when
/// one is free; otherwise the caller spins briefly, then sleeps on a futex. Releasing
/// makes a system call only when someone sleeps.
///
/// As in Python, [`release`](Semaphore::release) need not follow an acquire and may
/// raise the count above its initial value (up to `i32::MAX`); use a
/// [`BoundedSemaphore`](crate::sync::BoundedSemaphore) to catch extra releases.
///
/// Permits are not handed out in arrival order: a thread that finds a free permit takes
/// it even while others sleep (as with Python's semaphores), which keeps the fast path
/// to one compare-and-swap.
///
/// # Examples
/// ```
/// use shoal::sync::Semaphore;
///
/// let sem = Semaphore::new(2)?;
/// let a = sem.acquire();
/// let b = sem.try_acquire().expect("a second permit is free");
/// assert!(sem.try_acquire().is_none());
/// drop(a);
/// assert_eq!(sem.value(), 1);
/// # drop(b);
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    raw: RawSemaphore,
}

impl Semaphore {
    /// Creates a semaphore holding `value` permits.
    ///
    /// # Errors
    /// [`SyncError::ValueTooLarge`] above `i32::MAX`; [`SyncError::Shm`] when
    /// the shared memory cannot be created.
    ///
    /// # Examples
    /// ```
    /// let sem = shoal::sync::Semaphore::new(3)?;
    /// assert_eq!(sem.value(), 3);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new(value: u32) -> Result<Semaphore, SyncError> {
        Ok(Semaphore {
            raw: RawSemaphore::new(Primitive::Semaphore, value, MAX_VALUE)?,
        })
    }

    /// Takes a permit, waiting as long as it takes; the guard gives it back.
    ///
    /// # Examples
    /// ```
    /// let sem = shoal::sync::Semaphore::new(1)?;
    /// {
    ///     let _permit = sem.acquire();
    ///     assert_eq!(sem.value(), 0);
    /// }
    /// assert_eq!(sem.value(), 1);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.raw.acquire()
    }

    /// Takes a permit if one is free now.
    ///
    /// # Examples
    /// ```
    /// let sem = shoal::sync::Semaphore::new(0)?;
    /// assert!(sem.try_acquire().is_none());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.raw.try_acquire()
    }

    /// Takes a permit, waiting at most `timeout`; `None` when none came in time.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let sem = shoal::sync::Semaphore::new(0)?;
    /// assert!(sem.acquire_timeout(Duration::from_millis(1)).is_none());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.raw.acquire_timeout(timeout)
    }

    /// Adds a permit, waking one waiter if any sleeps. Like Python's, it need not follow
    /// an acquire.
    ///
    /// # Errors
    /// [`ReleaseError::Overflow`] when the count is already `i32::MAX`.
    ///
    /// # Examples
    /// ```
    /// let sem = shoal::sync::Semaphore::new(0)?;
    /// sem.release()?;
    /// assert_eq!(sem.value(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw.release()
    }

    /// The permits free now (another process may change it at once).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::sync::Semaphore::new(4)?.value(), 4);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn value(&self) -> u32 {
        self.raw.value()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .finish()
    }
}

impl Serialize for Semaphore {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Semaphore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Semaphore, D::Error> {
        Ok(Semaphore {
            raw: RawSemaphore::deserialize(d, Primitive::Semaphore)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};
    use crate::sync::watchdog;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Semaphore>();
        fn check_guard<T: Send + Sync>() {}
        check_guard::<SemaphoreGuard<'static>>();
    }

    #[test]
    fn counts_permits() {
        let sem = Semaphore::new(2).unwrap();
        let a = sem.try_acquire().unwrap();
        let b = sem.acquire();
        assert!(sem.try_acquire().is_none());
        assert_eq!(sem.value(), 0);
        drop(a);
        b.forget();
        assert_eq!(sem.value(), 1);
        sem.release().unwrap();
        sem.release().unwrap();
        assert_eq!(sem.value(), 3);
    }

    #[test]
    fn value_limits() {
        assert!(matches!(
            Semaphore::new(MAX_VALUE + 1),
            Err(SyncError::ValueTooLarge { .. })
        ));
        let sem = Semaphore::new(MAX_VALUE).unwrap();
        assert_eq!(
            sem.release(),
            Err(ReleaseError::Overflow { max: MAX_VALUE })
        );
    }

    #[test]
    fn timeout_waits_at_least_the_timeout() {
        watchdog(|| {
            let sem = Semaphore::new(0).unwrap();
            let start = Instant::now();
            assert!(sem.acquire_timeout(Duration::from_millis(30)).is_none());
            assert!(start.elapsed() >= Duration::from_millis(30));
        });
    }

    #[test]
    fn release_wakes_a_sleeper() {
        watchdog(|| {
            let sem = Semaphore::new(0).unwrap();
            let done = Arc::new(AtomicUsize::new(0));
            let (s2, d2) = (sem.clone(), Arc::clone(&done));
            let t = std::thread::spawn(move || {
                s2.acquire().forget();
                d2.store(1, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(done.load(Ordering::SeqCst), 0);
            sem.release().unwrap();
            t.join().unwrap();
            assert_eq!(sem.value(), 0);
            // Every sleeper deregistered: the next release makes no system call.
            assert_eq!(sem.raw.state().sleepers.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn handoff_round_trip_and_wrong_primitive() {
        let sem = Semaphore::new(5).unwrap();
        let enc = encode(&sem).unwrap();
        let back: Semaphore = decode(&enc.bytes, enc.fds).unwrap();
        back.acquire().forget();
        assert_eq!(sem.value(), 4);

        let enc = encode(&sem).unwrap();
        let err = decode::<crate::sync::Event>(&enc.bytes, enc.fds).unwrap_err();
        assert!(
            err.to_string().contains("a semaphore, not an event"),
            "{err}"
        );

        // A lock, living in the same kind of segment, is told apart by its tag.
        let lock = crate::sync::Lock::new().unwrap();
        let enc = encode(&lock).unwrap();
        let err = decode::<Semaphore>(&enc.bytes, enc.fds).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("holds a lock, not a semaphore"), "{msg}");

        let err = crate::codec::encode(&sem).unwrap_err();
        assert!(err.to_string().contains("Semaphore"), "{err}");
    }
}
