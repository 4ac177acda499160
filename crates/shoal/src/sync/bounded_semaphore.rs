//! A semaphore that refuses to be released above its initial value.
#![deny(unsafe_code)]

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sync::primitive::Primitive;
use crate::sync::semaphore::RawSemaphore;
use crate::sync::{ReleaseError, SemaphoreGuard, SyncError};

/// A counting semaphore whose count never exceeds its initial value (Python's
/// `multiprocessing.BoundedSemaphore`).
///
/// It behaves as a [`Semaphore`](crate::sync::Semaphore), except that a
/// [`release`](BoundedSemaphore::release) that would raise the count above the initial
/// value is refused with [`ReleaseError::OverReleased`] (Python raises `ValueError`):
/// extra releases are bugs, and this catches them.
///
/// # Examples
/// ```
/// use shoal::sync::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1)?;
/// {
///     let _permit = sem.acquire();
///     assert!(sem.try_acquire().is_none());
/// }
/// assert_eq!(sem.release(), Err(ReleaseError::OverReleased { limit: 1 }));
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    raw: RawSemaphore,
}

impl BoundedSemaphore {
    /// Creates a semaphore holding `value` permits, never more.
    ///
    /// # Errors
    /// [`SyncError::ValueTooLarge`] above `i32::MAX`; [`SyncError::Shm`] when
    /// the shared memory cannot be created.
    ///
    /// # Examples
    /// ```
    /// let sem = shoal::sync::BoundedSemaphore::new(2)?;
    /// assert_eq!((sem.value(), sem.limit()), (2, 2));
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new(value: u32) -> Result<BoundedSemaphore, SyncError> {
        Ok(BoundedSemaphore {
            raw: RawSemaphore::new(Primitive::BoundedSemaphore, value, value)?,
        })
    }

    /// Takes a permit, waiting as long as it takes; the guard gives it back.
    ///
    /// # Examples
    /// ```
    /// let sem = shoal::sync::BoundedSemaphore::new(1)?;
    /// let permit = sem.acquire();
    /// assert_eq!(sem.value(), 0);
    /// drop(permit);
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
    /// let sem = shoal::sync::BoundedSemaphore::new(1)?;
    /// let _a = sem.try_acquire().unwrap();
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
    /// let sem = shoal::sync::BoundedSemaphore::new(0)?;
    /// assert!(sem.acquire_timeout(Duration::from_millis(1)).is_none());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.raw.acquire_timeout(timeout)
    }

    /// Gives a permit back (typically one kept with
    /// [`SemaphoreGuard::forget`]), waking one waiter if any sleeps.
    ///
    /// # Errors
    /// [`ReleaseError::OverReleased`] when the count is already at its initial value;
    /// the count is unchanged.
    ///
    /// # Examples
    /// ```
    /// let sem = shoal::sync::BoundedSemaphore::new(1)?;
    /// sem.acquire().forget();
    /// sem.release()?;
    /// assert!(sem.release().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw.release()
    }

    /// The permits free now (another process may change it at once).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::sync::BoundedSemaphore::new(3)?.value(), 3);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn value(&self) -> u32 {
        self.raw.value()
    }

    /// The initial value, which the count never exceeds.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::sync::BoundedSemaphore::new(3)?.limit(), 3);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn limit(&self) -> u32 {
        self.raw.limit()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.value())
            .field("limit", &self.limit())
            .finish()
    }
}

impl Serialize for BoundedSemaphore {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BoundedSemaphore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BoundedSemaphore, D::Error> {
        Ok(BoundedSemaphore {
            raw: RawSemaphore::deserialize(d, Primitive::BoundedSemaphore)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};

    #[test]
    fn over_release_is_refused_and_changes_nothing() {
        let sem = BoundedSemaphore::new(2).unwrap();
        assert_eq!(sem.release(), Err(ReleaseError::OverReleased { limit: 2 }));
        assert_eq!(sem.value(), 2);
        sem.acquire().forget();
        sem.acquire().forget();
        assert!(sem.try_acquire().is_none());
        sem.release().unwrap();
        sem.release().unwrap();
        assert!(sem.release().is_err());
        assert_eq!(sem.value(), 2);
    }

    #[test]
    fn zero_is_a_valid_bound() {
        let sem = BoundedSemaphore::new(0).unwrap();
        assert!(sem.try_acquire().is_none());
        assert_eq!(sem.release(), Err(ReleaseError::OverReleased { limit: 0 }));
    }

    #[test]
    fn handoff_keeps_the_bound_and_the_kind() {
        let sem = BoundedSemaphore::new(1).unwrap();
        let enc = encode(&sem).unwrap();
        let back: BoundedSemaphore = decode(&enc.bytes, enc.fds).unwrap();
        assert_eq!(back.limit(), 1);
        back.acquire().forget();
        assert_eq!(sem.value(), 0);

        let enc = encode(&sem).unwrap();
        let err = decode::<crate::sync::Semaphore>(&enc.bytes, enc.fds).unwrap_err();
        assert!(
            err.to_string()
                .contains("a bounded semaphore, not a semaphore"),
            "{err}"
        );
    }
}
