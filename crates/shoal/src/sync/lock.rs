//! [`Lock`]: a mutual-exclusion lock shared between processes that survives its holder's
//! death.
#![deny(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sync::primitive::Primitive;
use crate::sync::raw_lock::{Acquired, Busy, RawLock};
use crate::sync::{LockResult, NotHeld, OwnerDied, SyncError, TryLockError};
use crate::sys::Deadline;

/// A lock shared between threads and processes (Python's `multiprocessing.Lock`).
///
/// The lock lives in an anonymous shared segment; clones are handles to the same lock,
/// and a `Lock` passed as a [`crate::process`] argument reaches the child as the same
/// lock. It is *robust*: when a holder dies while holding it (even by `SIGKILL`), the
/// next acquirer gets the guard inside an [`OwnerDied`] error at once, instead of
/// waiting forever. The lock is then usable as before.
///
/// Unlike Python's, the lock belongs to the thread that took it: only that thread can
/// release it ([`NotHeld`] otherwise), and [`LockGuard`] cannot move to another thread.
/// It is not re-entrant: a second acquire by the holder waits for itself (use
/// [`crate::RLock`]).
///
/// # Examples
/// ```
/// use shoal::Lock;
///
/// let lock = Lock::new()?;
/// {
///     let _guard = lock.acquire().unwrap_or_else(|died| died.into_inner());
///     assert!(lock.is_locked());
/// } // released here
/// assert!(!lock.is_locked());
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    raw: RawLock,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("holder", &self.raw.holder())
            .finish()
    }
}

/// Proof that the calling thread holds a [`Lock`]; releases it when dropped.
///
/// # Examples
/// ```
/// let lock = shoal::Lock::new()?;
/// {
///     let _guard = lock.acquire().unwrap();
///     assert!(lock.try_acquire().is_err()); // held (and not re-entrant)
/// } // released here
/// assert!(lock.try_acquire().is_ok());
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    /// The holder is a thread: the guard must stay on it.
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Fails only in the child of a fork that copied the guard: the lock belongs to the
        // parent's thread, and stays with it.
        let _ = self.lock.raw.unlock();
    }
}

impl LockGuard<'_> {
    /// Releases the lock now (Python's `release()`); the same as dropping the guard.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::Lock::new()?;
    /// let g = lock.acquire().unwrap();
    /// g.release();
    /// assert!(!lock.is_locked());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn release(self) {
        drop(self);
    }
}

/// Turns a raw outcome into the public result shapes.
pub(crate) fn wrap<G>(acquired: Acquired, guard: G) -> LockResult<G> {
    match acquired {
        Acquired::Clean => Ok(guard),
        Acquired::OwnerDied { tid, pid } => Err(OwnerDied::new(guard, tid, pid)),
    }
}

pub(crate) fn wrap_try<G>(
    result: Result<Acquired, Busy>,
    guard: impl FnOnce() -> G,
) -> Result<G, TryLockError<G>> {
    match result {
        Ok(acquired) => wrap(acquired, guard()).map_err(TryLockError::OwnerDied),
        Err(Busy::WouldBlock) => Err(TryLockError::WouldBlock),
        Err(Busy::Timeout) => Err(TryLockError::Timeout),
    }
}

impl Lock {
    /// Creates an unlocked lock in a new anonymous shared segment.
    ///
    /// # Errors
    /// When the segment cannot be created ([`SyncError::Shm`]).
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::Lock::new()?;
    /// let other_handle = lock.clone(); // the same lock
    /// # drop(other_handle);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new() -> Result<Lock, SyncError> {
        Ok(Lock {
            raw: RawLock::new(Primitive::Lock, 0)?,
        })
    }

    /// Creates an unlocked lock in the new named segment `name`, for an object that
    /// unrelated processes open by name (the lock of a named [`crate::Value`]).
    pub(crate) fn create_named(name: &str) -> Result<Lock, SyncError> {
        Ok(Lock {
            raw: RawLock::create_named(Primitive::Lock, name, 0)?,
        })
    }

    /// [`Lock::create_named`] whose name outlives this handle: its owner removes it (a
    /// shared container's lock, removed by the container's creating process only).
    pub(crate) fn create_named_detached(name: &str) -> Result<Lock, SyncError> {
        Ok(Lock {
            raw: RawLock::create_named_detached(Primitive::Lock, name, 0)?,
        })
    }

    /// Opens the lock in the named segment `name`.
    pub(crate) fn open_named(name: &str) -> Result<Lock, SyncError> {
        Ok(Lock {
            raw: RawLock::open_named(Primitive::Lock, name, 0)?,
        })
    }

    fn guard(&self) -> LockGuard<'_> {
        LockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Waits until the lock is free and takes it.
    ///
    /// # Errors
    /// [`OwnerDied`] (holding the guard: the lock *is* taken) when the previous holder
    /// died while holding the lock.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::Lock::new()?;
    /// let guard = lock.acquire().expect("nobody died holding it");
    /// guard.release();
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire(&self) -> LockResult<LockGuard<'_>> {
        match self.raw.lock(true, Deadline::NEVER) {
            Ok(acquired) => wrap(acquired, self.guard()),
            // A wait without deadline neither times out nor gives up.
            Err(_) => unreachable!("an acquire without deadline cannot fail"),
        }
    }

    /// Takes the lock if it is free, without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] when it is held; [`TryLockError::OwnerDied`] (with
    /// the guard) when its previous holder died holding it.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::TryLockError;
    ///
    /// let lock = shoal::Lock::new()?;
    /// let held = lock.try_acquire().unwrap();
    /// let again = std::thread::scope(|s| s.spawn(|| lock.try_acquire().is_err()).join().unwrap());
    /// assert!(again);
    /// drop(held);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn try_acquire(&self) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        wrap_try(self.raw.lock(false, Deadline::NEVER), || self.guard())
    }

    /// Waits at most `timeout` for the lock.
    ///
    /// # Errors
    /// [`TryLockError::Timeout`] when the time passed; [`TryLockError::OwnerDied`] (with
    /// the guard) when its previous holder died holding it.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let lock = shoal::Lock::new()?;
    /// let guard = lock.acquire_timeout(Duration::from_millis(10)).unwrap();
    /// # drop(guard);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        wrap_try(self.raw.lock(true, Deadline::after(timeout)), || {
            self.guard()
        })
    }

    /// Releases a lock the calling thread holds without a guard (the guard was given up
    /// with [`std::mem::forget`], Python style).
    ///
    /// # Errors
    /// [`NotHeld`] when the calling thread does not hold the lock.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::Lock::new()?;
    /// assert!(lock.release().is_err()); // not held
    /// std::mem::forget(lock.acquire().unwrap());
    /// lock.release()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(&self) -> Result<(), NotHeld> {
        self.raw.unlock().map_err(|holder| NotHeld {
            what: "lock",
            holder,
        })
    }

    /// Whether some live thread holds the lock (a snapshot: it may change at once).
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::Lock::new()?;
    /// let g = lock.acquire().unwrap();
    /// assert!(lock.is_locked());
    /// drop(g);
    /// assert!(!lock.is_locked());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Whether the calling thread holds the lock.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::Lock::new()?;
    /// assert!(!lock.is_held());
    /// let g = lock.acquire().unwrap();
    /// assert!(lock.is_held());
    /// let other = lock.clone();
    /// assert!(!std::thread::spawn(move || other.is_held()).join().unwrap());
    /// drop(g);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn is_held(&self) -> bool {
        self.raw.held_by(&crate::sys::current_thread())
    }

    pub(crate) fn raw(&self) -> &RawLock {
        &self.raw
    }
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Primitive::Lock.serialize(self.raw.segment(), s)
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lock, D::Error> {
        Ok(Lock {
            raw: RawLock::deserialize(d, Primitive::Lock, 0)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::handoff::{decode, encode};
    use crate::sys::test_fork::{fork_then_park, kill_and_reap};
    use std::sync::mpsc;
    use std::time::Instant;

    /// Runs `body` on a thread and fails the test when it does not finish in 30 s.
    pub(crate) fn watchdog<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let _ = tx.send(body());
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(v) => {
                let _ = t.join();
                v
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::panic::resume_unwind(t.join().unwrap_err())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test hung for 30 s"),
        }
    }

    #[test]
    fn release_errors_name_the_holder() {
        watchdog(|| {
            let lock = Lock::new().unwrap();
            assert_eq!(lock.release().unwrap_err().holder(), None);
            let g = lock.acquire().unwrap();
            let l2 = lock.clone();
            let err = std::thread::spawn(move || l2.release().unwrap_err())
                .join()
                .unwrap();
            assert_eq!(err.holder(), Some(crate::sys::current_tid()));
            assert!(err.to_string().contains("does not hold"), "{err}");
            g.release();
            assert!(!lock.is_locked());
        });
    }

    #[test]
    fn thread_exit_while_holding_gives_owner_died_once() {
        watchdog(|| {
            let lock = Lock::new().unwrap();
            let l2 = lock.clone();
            let tid = std::thread::spawn(move || {
                std::mem::forget(l2.acquire().unwrap());
                crate::sys::current_tid()
            })
            .join()
            .unwrap();
            let died = lock.acquire().unwrap_err();
            assert_eq!(died.thread_id(), Some(tid));
            assert!(
                died.to_string().contains(&format!("thread {tid}")),
                "{died}"
            );
            let guard = died.into_inner();
            assert!(lock.is_locked());
            drop(guard);
            assert!(lock.try_acquire().is_ok());
        });
    }

    #[test]
    fn sigkilled_holder_process_gives_owner_died_quickly() {
        watchdog(|| {
            let lock = Lock::new().unwrap();
            let l2 = lock.clone();
            let child = fork_then_park(move || std::mem::forget(l2.acquire())).unwrap();
            let start = Instant::now();
            while !lock.is_locked() {
                assert!(start.elapsed() < Duration::from_secs(20));
                std::thread::sleep(Duration::from_millis(1));
            }
            kill_and_reap(child);
            match lock.acquire_timeout(Duration::from_secs(20)) {
                Err(TryLockError::OwnerDied(d)) => {
                    assert_eq!(d.process_id(), Some(child));
                    drop(d.into_inner());
                }
                other => panic!("expected OwnerDied, got {other:?}"),
            }
            assert!(lock.acquire().is_ok());
        });
    }

    #[test]
    fn sigkill_wakes_a_sleeping_waiter() {
        watchdog(|| {
            let lock = Lock::new().unwrap();
            let l2 = lock.clone();
            let child = fork_then_park(move || std::mem::forget(l2.acquire())).unwrap();
            let start = Instant::now();
            while !lock.is_locked() {
                assert!(start.elapsed() < Duration::from_secs(20));
                std::thread::sleep(Duration::from_millis(1));
            }
            let l3 = lock.clone();
            let waiter = std::thread::spawn(move || {
                let died = matches!(
                    l3.acquire_timeout(Duration::from_secs(20)),
                    Err(TryLockError::OwnerDied(_))
                );
                (died, Instant::now())
            });
            // Let the waiter go to sleep on the futex first.
            std::thread::sleep(Duration::from_millis(50));
            let killed_at = Instant::now();
            kill_and_reap(child);
            let (died, woke_at) = waiter.join().unwrap();
            assert!(died);
            eprintln!(
                "death reported {:?} after the kill",
                woke_at.saturating_duration_since(killed_at)
            );
        });
    }

    #[test]
    fn try_and_timeout_forms() {
        watchdog(|| {
            let lock = Lock::new().unwrap();
            let g = lock.acquire().unwrap();
            let l2 = lock.clone();
            let (try_res, timed, waited) = std::thread::spawn(move || {
                let t = matches!(l2.try_acquire(), Err(TryLockError::WouldBlock));
                let start = Instant::now();
                let r = matches!(
                    l2.acquire_timeout(Duration::from_millis(50)),
                    Err(TryLockError::Timeout)
                );
                (t, r, start.elapsed())
            })
            .join()
            .unwrap();
            assert!(try_res && timed);
            assert!(waited >= Duration::from_millis(50));
            drop(g);
        });
    }

    #[test]
    fn handoff_round_trip_and_wrong_kind() {
        let lock = Lock::new().unwrap();
        let enc = encode(&lock).unwrap();
        let back: Lock = decode(&enc.bytes, enc.fds).unwrap();
        let g = back.acquire().unwrap();
        assert!(lock.is_locked());
        drop(g);
        assert!(crate::codec::encode(&lock).is_err());
        let shm = crate::SharedMemory::new(8).unwrap();
        let enc = encode(&shm).unwrap();
        let err = decode::<Lock>(&enc.bytes, enc.fds).unwrap_err();
        assert!(err.to_string().contains("raw"), "{err}");
        let r = crate::sync::RLock::new().unwrap();
        let enc = encode(&r).unwrap();
        let err = decode::<Lock>(&enc.bytes, enc.fds).unwrap_err();
        assert!(
            err.to_string()
                .contains("holds a re-entrant lock, not a lock"),
            "{err}"
        );
    }
}
