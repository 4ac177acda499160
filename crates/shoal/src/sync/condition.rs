//! [`Condition`]: a condition variable shared between processes.
//!
//! The in-segment state is a sequence word that waiters sleep on and notifiers bump,
//! plus a count of sleepers so that a notify nobody waits for costs no system call.
// Shared-memory layout or FFI code: its state shared through a raw pointer into the mapping (the crate denies unsafe code elsewhere).
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shm::Segment;
use crate::sync::lock::wrap;
use crate::sync::primitive::Primitive;
use crate::sync::raw_lock::Acquired;
use crate::sync::{Lock, LockResult, RLock, SyncError, TryLockError};
use crate::sys::{self, Deadline, WaitOutcome};

/// The in-segment state of a condition.
#[repr(C)]
struct CondState {
    /// Bumped by every notify; waiters sleep while it holds the value they read.
    seq: AtomicU32,
    /// Threads between "about to sleep" and "woke up". A waiter killed while asleep
    /// leaves it too high, which only costs later notifies a wake call.
    sleepers: AtomicU32,
}

const _: () = {
    assert!(offset_of!(CondState, seq) == 0);
    assert!(offset_of!(CondState, sleepers) == 4);
};

/// The lock under a condition: one of the two lock flavours.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum CondLock {
    Lock(Lock),
    RLock(RLock),
}

struct Shared {
    seg: Arc<Segment>,
    state: NonNull<CondState>,
}

// SAFETY: `state` points into `seg`, mapped while `Shared` lives; the state is made of
// atomics only.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// A condition variable shared between threads and processes (Python's
/// `multiprocessing.Condition`), over a [`RLock`] (the default) or a [`Lock`].
///
/// Take the lock with [`acquire`](Condition::acquire), then [`wait`](Condition::wait)
/// (which releases the lock while asleep and takes it back before returning) until
/// another thread or process changes the shared state and calls
/// [`notify`](Condition::notify) or [`notify_all`](Condition::notify_all).
///
/// `wait` may return without a notify (a *spurious* wake-up, as with every futex-based
/// condition variable, or because a notify raced with the start of the wait): always
/// re-check the state, or use [`wait_for`](Condition::wait_for), which does.
///
/// When a holder of the lock dies, the next thread to take it (including a waiter that
/// wakes up) gets [`crate::sync::OwnerDied`] carrying its guard.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let cond = shoal::Condition::new()?;
/// let ready = Arc::new(AtomicBool::new(false));
/// let (c2, r2) = (cond.clone(), Arc::clone(&ready));
/// let t = std::thread::spawn(move || {
///     let _g = c2.acquire().unwrap();
///     r2.store(true, Ordering::SeqCst);
///     c2.notify_all();
/// });
/// let g = cond.acquire().unwrap();
/// let (g, ok) = cond
///     .wait_for(g, || ready.load(Ordering::SeqCst), Some(Duration::from_secs(10)))
///     .unwrap();
/// assert!(ok);
/// drop(g);
/// t.join().unwrap();
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    shared: Arc<Shared>,
    lock: CondLock,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

/// Proof that the calling thread holds a [`Condition`]'s lock; releases (one level of)
/// it when dropped.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let cond = shoal::Condition::new()?;
/// let guard = cond.acquire().unwrap();
/// // `wait` takes the guard (releasing the lock while asleep) and gives it back.
/// let (guard, timed_out) = cond.wait_timeout(guard, Duration::from_millis(1)).unwrap();
/// assert!(timed_out);
/// drop(guard); // released
/// let other = cond.clone();
/// let free = std::thread::spawn(move || other.acquire_timeout(Duration::ZERO).is_ok());
/// assert!(free.join().unwrap());
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        // Fails only in a fork child that copied the guard (see `LockGuard`).
        let _ = match &self.cond.lock {
            CondLock::Lock(l) => l.release(),
            CondLock::RLock(r) => r.release(),
        };
    }
}

impl ConditionGuard<'_> {
    /// Releases the lock (one level of an RLock) now; the same as dropping the guard.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let cond = shoal::Condition::new()?;
    /// let g = cond.acquire().unwrap();
    /// g.release();
    /// let other = cond.clone();
    /// let free = std::thread::spawn(move || other.acquire_timeout(Duration::ZERO).is_ok());
    /// assert!(free.join().unwrap()); // another thread could take the lock
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn release(self) {
        drop(self);
    }
}

impl Condition {
    /// Creates a condition over a new [`RLock`].
    ///
    /// # Errors
    /// When a segment cannot be created ([`SyncError::Shm`]).
    ///
    /// # Examples
    /// ```
    /// let cond = shoal::Condition::new()?;
    /// let _g = cond.acquire().unwrap();
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new() -> Result<Condition, SyncError> {
        Condition::build(CondLock::RLock(RLock::new()?))
    }

    /// Creates a condition over an existing [`Lock`] (shared with other users of it).
    ///
    /// # Errors
    /// When a segment cannot be created ([`SyncError::Shm`]).
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::Lock::new()?;
    /// let cond = shoal::Condition::with_lock(lock.clone())?;
    /// let _g = cond.acquire().unwrap();
    /// assert!(lock.is_locked());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn with_lock(lock: Lock) -> Result<Condition, SyncError> {
        Condition::build(CondLock::Lock(lock))
    }

    /// Creates a condition over an existing [`RLock`].
    ///
    /// # Errors
    /// When a segment cannot be created ([`SyncError::Shm`]).
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// let cond = shoal::Condition::with_rlock(lock.clone())?;
    /// let _g = cond.acquire().unwrap();
    /// assert_eq!(lock.depth(), 1);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn with_rlock(lock: RLock) -> Result<Condition, SyncError> {
        Condition::build(CondLock::RLock(lock))
    }

    fn build(lock: CondLock) -> Result<Condition, SyncError> {
        let seg = Primitive::Condition.create(std::mem::size_of::<CondState>())?;
        Ok(Condition::from_segment(seg, lock))
    }

    fn from_segment(seg: Arc<Segment>, lock: CondLock) -> Condition {
        // The payload is 64-byte aligned and at least size_of::<CondState>() long.
        let state = NonNull::new(seg.payload_ptr().cast::<CondState>())
            .expect("a mapped segment has a non-null payload");
        Condition {
            shared: Arc::new(Shared { seg, state }),
            lock,
        }
    }

    fn state(&self) -> &CondState {
        // SAFETY: `state` points at a CondState (atomics only) inside the mapping that
        // `shared` keeps alive as long as `self`.
        unsafe { self.shared.state.as_ref() }
    }

    fn guard(&self) -> ConditionGuard<'_> {
        ConditionGuard {
            cond: self,
            _not_send: PhantomData,
        }
    }

    fn lock_raw(
        &self,
        wait: bool,
        deadline: Deadline,
    ) -> Result<Acquired, crate::sync::raw_lock::Busy> {
        match &self.lock {
            CondLock::Lock(l) => l.raw().lock(wait, deadline),
            CondLock::RLock(r) => r.lock_raw(wait, deadline),
        }
    }

    /// Takes the condition's lock, waiting as long as it takes.
    ///
    /// # Errors
    /// [`crate::sync::OwnerDied`] (with the guard) when the previous holder died.
    ///
    /// # Examples
    /// ```
    /// let cond = shoal::Condition::new()?;
    /// let g = cond.acquire().unwrap();
    /// g.release();
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire(&self) -> LockResult<ConditionGuard<'_>> {
        match self.lock_raw(true, Deadline::NEVER) {
            Ok(acquired) => wrap(acquired, self.guard()),
            Err(_) => unreachable!("an acquire without deadline cannot fail"),
        }
    }

    /// Takes the condition's lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TryLockError::Timeout`] or [`TryLockError::OwnerDied`] (with the guard).
    ///
    /// # Examples
    /// ```
    /// let cond = shoal::Condition::new()?;
    /// let g = cond.acquire_timeout(std::time::Duration::from_millis(10)).unwrap();
    /// # drop(g);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ConditionGuard<'_>, TryLockError<ConditionGuard<'_>>> {
        crate::sync::lock::wrap_try(self.lock_raw(true, Deadline::after(timeout)), || {
            self.guard()
        })
    }

    /// Releases the lock, sleeps until notified, and takes the lock back.
    ///
    /// May wake spuriously: re-check the condition (or use
    /// [`wait_for`](Condition::wait_for)).
    ///
    /// # Errors
    /// [`crate::sync::OwnerDied`] (with the guard) when a holder of the lock died while
    /// this thread slept.
    ///
    /// # Panics
    /// When `guard` belongs to another condition.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let cond = shoal::Condition::new()?;
    /// let done = Arc::new(AtomicBool::new(false));
    /// let (c2, d2) = (cond.clone(), Arc::clone(&done));
    /// let t = std::thread::spawn(move || {
    ///     let _g = c2.acquire().unwrap();
    ///     d2.store(true, Ordering::SeqCst);
    ///     c2.notify(1);
    /// });
    /// let mut g = cond.acquire().unwrap();
    /// while !done.load(Ordering::SeqCst) {
    ///     g = cond.wait(g).unwrap(); // may wake spuriously: loop
    /// }
    /// drop(g);
    /// t.join().unwrap();
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn wait<'a>(&'a self, guard: ConditionGuard<'a>) -> LockResult<ConditionGuard<'a>> {
        match self.wait_until(guard, Deadline::NEVER) {
            Ok((g, _)) => Ok(g),
            Err(d) => Err(d.map(|(g, _)| g)),
        }
    }

    /// Like [`wait`](Condition::wait), but sleeps at most `timeout`; the flag is true when
    /// the time passed (the lock is held again in every case).
    ///
    /// # Errors
    /// [`crate::sync::OwnerDied`] as for [`wait`](Condition::wait).
    ///
    /// # Panics
    /// When `guard` belongs to another condition.
    ///
    /// # Examples
    /// ```
    /// let cond = shoal::Condition::new()?;
    /// let g = cond.acquire().unwrap();
    /// let (_g, timed_out) = cond.wait_timeout(g, std::time::Duration::from_millis(5)).unwrap();
    /// assert!(timed_out);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn wait_timeout<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
        timeout: Duration,
    ) -> LockResult<(ConditionGuard<'a>, bool)> {
        self.wait_until(guard, Deadline::after(timeout))
    }

    /// Waits until `pred` returns true or `timeout` passes (`None`: no limit), checking it
    /// first and after every wake-up with the lock held (Python's `wait_for`). Returns the
    /// guard and the last value of `pred`.
    ///
    /// # Errors
    /// [`crate::sync::OwnerDied`] as for [`wait`](Condition::wait), with the guard and the
    /// predicate's value at that point.
    ///
    /// # Panics
    /// When `guard` belongs to another condition.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let cond = shoal::Condition::new()?;
    /// let g = cond.acquire().unwrap();
    /// // Nobody makes the predicate true: the wait ends with the time-out.
    /// let (g, ok) = cond.wait_for(g, || false, Some(Duration::from_millis(10))).unwrap();
    /// assert!(!ok);
    /// // A predicate that already holds returns at once, even without a time-out.
    /// let (_g, ok) = cond.wait_for(g, || true, None).unwrap();
    /// assert!(ok);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn wait_for<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> LockResult<(ConditionGuard<'a>, bool)> {
        let deadline = Deadline::from_timeout(timeout);
        let mut guard = guard;
        loop {
            if pred() {
                return Ok((guard, true));
            }
            if deadline.expired() {
                return Ok((guard, false));
            }
            guard = match self.wait_until(guard, deadline) {
                Ok((g, _)) => g,
                Err(died) => return Err(died.map(|(g, _)| (g, pred()))),
            };
        }
    }

    fn wait_until<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
        deadline: Deadline,
    ) -> LockResult<(ConditionGuard<'a>, bool)> {
        assert!(
            Arc::ptr_eq(&guard.cond.shared, &self.shared)
                || guard.cond.shared.state == self.shared.state,
            "a condition was waited on with the guard of another condition"
        );
        // The guard's release is done by hand below, all levels at once.
        std::mem::forget(guard);
        let state = self.state();
        // Count ourselves before reading the sequence: a notifier that bumps it after our
        // read then sees us (both SeqCst), so it cannot skip the wake call.
        state.sleepers.fetch_add(1, Ordering::SeqCst);
        let seq = state.seq.load(Ordering::SeqCst);
        let depth = match &self.lock {
            CondLock::Lock(l) => l.release().map(|()| 1).unwrap_or(0),
            CondLock::RLock(r) => r.release_all().unwrap_or(0),
        };
        let outcome = sys::futex_wait(&state.seq, seq, deadline).unwrap_or(WaitOutcome::Woken);
        state.sleepers.fetch_sub(1, Ordering::SeqCst);
        let acquired = match &self.lock {
            CondLock::Lock(l) => match l.raw().lock(true, Deadline::NEVER) {
                Ok(a) => a,
                Err(_) => unreachable!("an acquire without deadline cannot fail"),
            },
            CondLock::RLock(r) => r.restore(depth),
        };
        wrap(acquired, (self.guard(), outcome == WaitOutcome::TimedOut))
    }

    /// [`wait_timeout`](Condition::wait_timeout) for a caller that holds the lock
    /// without a guard (Python style: the guard was given up with [`std::mem::forget`],
    /// and the lock is released by hand later). Returns whether it was notified before
    /// the timeout (`None`: no limit).
    ///
    /// # Errors
    /// [`NotHeld`](crate::sync::NotHeld) (carried as `Err(None)`) when the calling
    /// thread does not hold the lock; `Err(Some(died))` when the lock came back from a
    /// holder that died while this caller slept (the lock is held again either way).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let cond = shoal::Condition::new()?;
    /// assert!(cond.wait_held(Some(Duration::ZERO)).is_err()); // not held
    /// std::mem::forget(cond.acquire().unwrap());
    /// assert_eq!(cond.wait_held(Some(Duration::from_millis(1))).ok(), Some(false));
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn wait_held(
        &self,
        timeout: Option<Duration>,
    ) -> Result<bool, Option<crate::sync::OwnerDied<()>>> {
        let held = match &self.lock {
            CondLock::Lock(l) => l.is_held(),
            CondLock::RLock(r) => r.depth() > 0,
        };
        if !held {
            return Err(None);
        }
        match self.wait_until(self.guard(), Deadline::from_timeout(timeout)) {
            Ok((g, timed_out)) => {
                std::mem::forget(g);
                Ok(!timed_out)
            }
            Err(died) => Err(Some(died.map(|(g, _)| std::mem::forget(g)))),
        }
    }

    /// Wakes up to `n` waiters (in any process). Waking nobody is not an error.
    ///
    /// Python requires the lock to be held here; shoal does not, but a notify without the
    /// lock can slip between a waiter's check of the state and its sleep.
    ///
    /// # Examples
    /// ```
    /// let cond = shoal::Condition::new()?;
    /// cond.notify(1); // nobody waits: nothing happens
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn notify(&self, n: u32) {
        let state = self.state();
        state.seq.fetch_add(1, Ordering::SeqCst);
        if state.sleepers.load(Ordering::SeqCst) > 0 {
            sys::futex_wake(&state.seq, n);
        }
    }

    /// Wakes every waiter.
    ///
    /// # Examples
    /// ```
    /// let cond = shoal::Condition::new()?;
    /// cond.notify_all();
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn notify_all(&self) {
        self.notify(u32::MAX);
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    fd: u32,
    lock: CondLock,
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            fd: Primitive::Condition.export_fd(&self.shared.seg)?,
            lock: self.lock.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Condition, D::Error> {
        let wire = Wire::deserialize(d)?;
        let seg = Primitive::Condition.import_fd(wire.fd, std::mem::size_of::<CondState>())?;
        Ok(Condition::from_segment(seg, wire.lock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};
    use crate::sync::watchdog;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    #[test]
    fn wait_timeout_times_out_after_the_timeout() {
        watchdog(|| {
            for cond in [
                Condition::new().unwrap(),
                Condition::with_lock(Lock::new().unwrap()).unwrap(),
            ] {
                let g = cond.acquire().unwrap();
                let start = Instant::now();
                let (g, timed_out) = cond.wait_timeout(g, Duration::from_millis(30)).unwrap();
                assert!(timed_out);
                assert!(start.elapsed() >= Duration::from_millis(30));
                let start = Instant::now();
                let (g, ok) = cond
                    .wait_for(g, || false, Some(Duration::from_millis(30)))
                    .unwrap();
                assert!(!ok);
                assert!(start.elapsed() >= Duration::from_millis(30));
                drop(g);
            }
        });
    }

    #[test]
    fn notify_wakes_waiters_and_rlock_depth_is_restored() {
        watchdog(|| {
            let cond = Condition::new().unwrap();
            let flag = Arc::new(AtomicBool::new(false));
            let mut threads = Vec::new();
            for _ in 0..3 {
                let (c, f) = (cond.clone(), Arc::clone(&flag));
                threads.push(std::thread::spawn(move || {
                    let g = c.acquire().unwrap();
                    let g2 = c.acquire().unwrap(); // depth 2, restored after the wait
                    let (g2, ok) = c
                        .wait_for(
                            g2,
                            || f.load(Ordering::SeqCst),
                            Some(Duration::from_secs(20)),
                        )
                        .unwrap();
                    assert!(ok);
                    let CondLock::RLock(r) = &c.lock else {
                        unreachable!()
                    };
                    assert_eq!(r.depth(), 2);
                    drop((g2, g));
                }));
            }
            std::thread::sleep(Duration::from_millis(20));
            {
                let _g = cond.acquire().unwrap();
                flag.store(true, Ordering::SeqCst);
                cond.notify(1);
                cond.notify_all();
            }
            for t in threads {
                t.join().unwrap();
            }
        });
    }

    #[test]
    fn handoff_round_trip() {
        let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
        let enc = encode(&cond).unwrap();
        assert_eq!(enc.fds.len(), 2);
        let back: Condition = decode(&enc.bytes, enc.fds).unwrap();
        let g = back.acquire().unwrap();
        let CondLock::Lock(l) = &cond.lock else {
            unreachable!()
        };
        assert!(l.is_locked());
        back.notify_all();
        drop(g);
        let enc = encode(&Lock::new().unwrap()).unwrap();
        assert!(decode::<Condition>(&enc.bytes, enc.fds).is_err());
    }
}
