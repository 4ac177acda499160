//! [`RLock`]: a re-entrant lock shared between processes that survives its holder's death.
#![deny(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sync::lock::{wrap, wrap_try};
use crate::sync::primitive::Primitive;
use crate::sync::raw_lock::{Acquired, Busy, RawLock};
use crate::sync::{LockResult, NotHeld, SyncError, TryLockError};
use crate::sys::{self, Deadline};

/// A re-entrant lock shared between threads and processes (Python's
/// `multiprocessing.RLock`).
///
/// The thread holding it may acquire it again; it is released when every acquire has
/// been matched by a release (a dropped guard or [`RLock::release`]). Only the holder
/// can release it ([`NotHeld`] otherwise). Like [`crate::Lock`] it is robust: when a
/// holder dies, the next acquirer gets [`crate::sync::OwnerDied`] with a guard, at
/// recursion depth one.
///
/// # Examples
/// ```
/// let lock = shoal::RLock::new()?;
/// let outer = lock.acquire().unwrap();
/// let inner = lock.acquire().unwrap(); // the same thread: no deadlock
/// assert_eq!(lock.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert!(!lock.is_locked());
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    raw: RawLock,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("holder", &self.raw.holder())
            .finish()
    }
}

/// One level of a held [`RLock`]; releases that level when dropped.
///
/// # Examples
/// ```
/// let lock = shoal::RLock::new()?;
/// let first = lock.acquire().unwrap();
/// let second = lock.acquire().unwrap(); // a second level, same thread
/// assert_eq!(lock.depth(), 2);
/// drop(second);
/// assert_eq!(lock.depth(), 1);
/// drop(first);
/// assert!(!lock.is_locked());
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // Fails only in a fork child that copied the guard (see `LockGuard`).
        let _ = self.lock.release();
    }
}

impl RLockGuard<'_> {
    /// Releases this level now; the same as dropping the guard.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// let outer = lock.acquire().unwrap();
    /// let inner = lock.acquire().unwrap();
    /// inner.release();
    /// assert_eq!(lock.depth(), 1); // still held by the outer level
    /// outer.release();
    /// assert!(!lock.is_locked());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn release(self) {
        drop(self);
    }
}

impl RLock {
    /// Creates an unlocked re-entrant lock in a new anonymous shared segment.
    ///
    /// # Errors
    /// When the segment cannot be created ([`SyncError::Shm`]).
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// assert!(!lock.is_locked());
    /// let same = lock.clone(); // another handle on the same lock
    /// let _g = lock.acquire().unwrap();
    /// assert!(same.is_locked());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new() -> Result<RLock, SyncError> {
        Ok(RLock {
            raw: RawLock::new(Primitive::RLock, 0)?,
        })
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// One more level for the holder, or the raw lock taken at depth one.
    pub(crate) fn lock_raw(&self, wait: bool, deadline: Deadline) -> Result<Acquired, Busy> {
        let me = sys::current_thread();
        if self.raw.held_by(&me) {
            // Only the holder touches the count.
            self.raw.count().fetch_add(1, Ordering::Relaxed);
            return Ok(Acquired::Clean);
        }
        let acquired = self.raw.lock_as(&me, wait, deadline)?;
        // Whatever a dead holder left, the new holder starts at depth one.
        self.raw.count().store(1, Ordering::Relaxed);
        Ok(acquired)
    }

    /// Waits for the lock (or adds a level when the calling thread holds it).
    ///
    /// # Errors
    /// [`crate::sync::OwnerDied`] (holding the guard) when the previous holder died
    /// holding the lock.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// let guard = lock.acquire().unwrap_or_else(|died| died.into_inner());
    /// guard.release();
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire(&self) -> LockResult<RLockGuard<'_>> {
        match self.lock_raw(true, Deadline::NEVER) {
            Ok(acquired) => wrap(acquired, self.guard()),
            Err(_) => unreachable!("an acquire without deadline cannot fail"),
        }
    }

    /// Takes the lock (or a level) without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] when another thread holds it;
    /// [`TryLockError::OwnerDied`] (with the guard) when its previous holder died.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// let _a = lock.try_acquire().unwrap();
    /// let _b = lock.try_acquire().unwrap(); // the holder may always re-enter
    /// assert_eq!(lock.depth(), 2);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn try_acquire(&self) -> Result<RLockGuard<'_>, TryLockError<RLockGuard<'_>>> {
        wrap_try(self.lock_raw(false, Deadline::NEVER), || self.guard())
    }

    /// Waits at most `timeout` for the lock.
    ///
    /// # Errors
    /// [`TryLockError::Timeout`] when the time passed; [`TryLockError::OwnerDied`] (with
    /// the guard) when its previous holder died.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// let g = lock.acquire_timeout(std::time::Duration::from_millis(10)).unwrap();
    /// # drop(g);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<RLockGuard<'_>, TryLockError<RLockGuard<'_>>> {
        wrap_try(self.lock_raw(true, Deadline::after(timeout)), || {
            self.guard()
        })
    }

    /// Releases one level held by the calling thread (for guards given up with
    /// [`std::mem::forget`]).
    ///
    /// # Errors
    /// [`NotHeld`] when the calling thread does not hold the lock.
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// std::mem::forget(lock.acquire().unwrap());
    /// lock.release()?;
    /// assert!(lock.release().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(&self) -> Result<(), NotHeld> {
        let me = sys::current_thread();
        if !self.raw.held_by(&me) {
            return Err(NotHeld {
                what: "re-entrant lock",
                holder: self.raw.holder(),
            });
        }
        let count = self.raw.count();
        if count.load(Ordering::Relaxed) > 1 {
            count.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        count.store(0, Ordering::Relaxed);
        self.raw.unlock_as(&me).map_err(|holder| NotHeld {
            what: "re-entrant lock",
            holder,
        })
    }

    /// Releases every level held by the calling thread; returns the depth, for
    /// [`RLock::restore`]. `None` when the thread does not hold the lock.
    pub(crate) fn release_all(&self) -> Option<u32> {
        let me = sys::current_thread();
        if !self.raw.held_by(&me) {
            return None;
        }
        let depth = self.raw.count().swap(0, Ordering::Relaxed);
        self.raw.unlock_as(&me).ok()?;
        Some(depth)
    }

    /// Re-takes the lock at a depth saved by [`RLock::release_all`].
    pub(crate) fn restore(&self, depth: u32) -> Acquired {
        let acquired = match self.raw.lock(true, Deadline::NEVER) {
            Ok(a) => a,
            Err(_) => unreachable!("an acquire without deadline cannot fail"),
        };
        self.raw.count().store(depth.max(1), Ordering::Relaxed);
        acquired
    }

    /// How many levels the calling thread holds (0 when it does not hold the lock).
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// assert_eq!(lock.depth(), 0);
    /// let _g = lock.acquire().unwrap();
    /// assert_eq!(lock.depth(), 1);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn depth(&self) -> u32 {
        if self.raw.held_by(&sys::current_thread()) {
            self.raw.count().load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether some live thread holds the lock (a snapshot).
    ///
    /// # Examples
    /// ```
    /// let lock = shoal::RLock::new()?;
    /// assert!(!lock.is_locked());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }
}

impl Serialize for RLock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Primitive::RLock.serialize(self.raw.segment(), s)
    }
}

impl<'de> Deserialize<'de> for RLock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RLock, D::Error> {
        Ok(RLock {
            raw: RawLock::deserialize(d, Primitive::RLock, 0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};
    use crate::sync::watchdog;

    #[test]
    fn reentrancy_and_release_by_non_owner() {
        watchdog(|| {
            let lock = RLock::new().unwrap();
            let a = lock.acquire().unwrap();
            let b = lock.try_acquire().unwrap();
            assert_eq!(lock.depth(), 2);
            let l2 = lock.clone();
            let (blocked, err) = std::thread::spawn(move || {
                (
                    matches!(l2.try_acquire(), Err(TryLockError::WouldBlock)),
                    l2.release().unwrap_err(),
                )
            })
            .join()
            .unwrap();
            assert!(blocked);
            assert_eq!(err.holder(), Some(sys::current_tid()));
            drop(b);
            assert!(lock.is_locked());
            drop(a);
            assert!(!lock.is_locked());
            assert!(lock.release().is_err());
        });
    }

    #[test]
    fn owner_death_resets_the_depth() {
        watchdog(|| {
            let lock = RLock::new().unwrap();
            let l2 = lock.clone();
            std::thread::spawn(move || {
                std::mem::forget(l2.acquire().unwrap());
                std::mem::forget(l2.acquire().unwrap());
            })
            .join()
            .unwrap();
            let g = lock.acquire().unwrap_err().into_inner();
            assert_eq!(lock.depth(), 1);
            drop(g);
            assert!(!lock.is_locked());
        });
    }

    #[test]
    fn handoff_round_trip() {
        let lock = RLock::new().unwrap();
        let enc = encode(&lock).unwrap();
        let back: RLock = decode(&enc.bytes, enc.fds).unwrap();
        let _g = back.acquire().unwrap();
        assert_eq!(lock.depth(), 1);
        let enc = encode(&crate::Lock::new().unwrap()).unwrap();
        assert!(decode::<RLock>(&enc.bytes, enc.fds).is_err());
    }
}
