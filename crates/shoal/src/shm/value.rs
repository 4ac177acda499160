//! [`Value`]: one plain-old-data value in shared memory, with an optional lock.
//!
//! Also the element access shared with [`crate::Array`]: a value of 1, 2, 4 or 8 bytes at
//! an address aligned to its size goes through the atomic of that size, so that a reader
//! never sees half of a write by another process.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shm::{typed_wire, Segment, SegmentKind, ShmError};
use crate::sync::{Lock, LockGuard, LockResult, NoLock, SyncError};

/// Whether `ptr` can be accessed through an atomic of the size of `T`.
pub(crate) fn atomic_fits<T>(ptr: *mut T) -> bool {
    let size = std::mem::size_of::<T>();
    matches!(size, 1 | 2 | 4 | 8) && (ptr as usize).is_multiple_of(size)
}

/// Reads the `T` at `ptr` with one atomic load.
///
/// # Safety
/// `ptr` is valid for reads of `T` for the duration of the call, lies in shared memory
/// that is only accessed through atomics or raw copies, and [`atomic_fits`] holds.
pub(crate) unsafe fn load_atomic<T: Pod>(ptr: *mut T) -> T {
    // SAFETY: `ptr` is valid, aligned to the atomic's size (which is `size_of::<T>()`),
    // and the memory is never accessed through a non-atomic reference concurrently.
    unsafe {
        match std::mem::size_of::<T>() {
            1 => bytemuck::pod_read_unaligned(
                &AtomicU8::from_ptr(ptr.cast())
                    .load(Ordering::SeqCst)
                    .to_ne_bytes(),
            ),
            2 => bytemuck::pod_read_unaligned(
                &AtomicU16::from_ptr(ptr.cast())
                    .load(Ordering::SeqCst)
                    .to_ne_bytes(),
            ),
            4 => bytemuck::pod_read_unaligned(
                &AtomicU32::from_ptr(ptr.cast())
                    .load(Ordering::SeqCst)
                    .to_ne_bytes(),
            ),
            _ => bytemuck::pod_read_unaligned(
                &AtomicU64::from_ptr(ptr.cast())
                    .load(Ordering::SeqCst)
                    .to_ne_bytes(),
            ),
        }
    }
}

/// Writes `v` to `ptr` with one atomic store.
///
/// # Safety
/// As for [`load_atomic`], for writes.
pub(crate) unsafe fn store_atomic<T: Pod>(ptr: *mut T, v: T) {
    let mut b = [0u8; 8];
    let n = std::mem::size_of::<T>();
    b[..n].copy_from_slice(bytemuck::bytes_of(&v));
    // SAFETY: as in `load_atomic`.
    unsafe {
        match n {
            1 => AtomicU8::from_ptr(ptr.cast()).store(b[0], Ordering::SeqCst),
            2 => AtomicU16::from_ptr(ptr.cast())
                .store(u16::from_ne_bytes([b[0], b[1]]), Ordering::SeqCst),
            4 => AtomicU32::from_ptr(ptr.cast()).store(
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                Ordering::SeqCst,
            ),
            _ => AtomicU64::from_ptr(ptr.cast()).store(u64::from_ne_bytes(b), Ordering::SeqCst),
        }
    }
}

/// Reads the element at `ptr`: atomically when possible, else under `lock` when there is
/// one, else with a volatile copy (which another process's write may tear).
///
/// # Safety
/// `ptr` is valid for reads of `T` for as long as `lock`'s guard could be held, inside a
/// shared mapping.
pub(crate) unsafe fn load_elem<T: Pod>(ptr: *mut T, lock: Option<&Lock>) -> T {
    if atomic_fits(ptr) {
        // SAFETY: forwarded precondition; `atomic_fits` checked.
        return unsafe { load_atomic(ptr) };
    }
    let _guard = lock.map(|l| l.acquire().unwrap_or_else(|d| d.into_inner()));
    // SAFETY: `ptr` is valid and aligned for `T` (forwarded precondition); every bit
    // pattern is a valid `T` (Pod).
    unsafe { ptr.read_volatile() }
}

/// Writes the element at `ptr`, as [`load_elem`] reads it.
///
/// # Safety
/// As for [`load_elem`], for writes.
pub(crate) unsafe fn store_elem<T: Pod>(ptr: *mut T, v: T, lock: Option<&Lock>) {
    if atomic_fits(ptr) {
        // SAFETY: forwarded precondition; `atomic_fits` checked.
        return unsafe { store_atomic(ptr, v) };
    }
    let _guard = lock.map(|l| l.acquire().unwrap_or_else(|d| d.into_inner()));
    // SAFETY: `ptr` is valid and aligned for `T` (forwarded precondition).
    unsafe { ptr.write_volatile(v) }
}

/// Largest alignment a payload guarantees.
pub(crate) const PAYLOAD_ALIGN: usize = 64;

/// A plain-old-data value in shared memory (Python's `multiprocessing.Value`).
///
/// [`new`](Value::new) gives it a [`Lock`] (Python's `lock=True`);
/// [`without_lock`](Value::without_lock) does not. [`load`](Value::load) and
/// [`store`](Value::store) never tear a value of 1, 2, 4 or 8 bytes: they use the
/// matching atomic and do not take the lock. Larger values are copied under the lock
/// (when there is one; without a lock a concurrent write may tear them). For a
/// read-modify-write, hold the lock: `*value.lock()?.unwrap() += 1`.
///
/// `load` and `store` do not wait for the lock, so a `store` from another thread can land
/// between the read and the write of a holder of the lock (the holder's write wins).
/// For larger values, do not call `load`/`store` while this thread holds the guard: they
/// take the same (non re-entrant) lock.
///
/// Clones are handles to the same value; passed as a [`crate::process`] argument, it
/// reaches the child with its lock.
///
/// # Examples
/// ```
/// let counter = shoal::Value::new(0u64)?;
/// counter.store(41);
/// *counter.lock()?.unwrap() += 1;
/// assert_eq!(counter.load(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Value<T: Pod> {
    seg: Arc<Segment>,
    lock: Option<Lock>,
    _t: PhantomData<T>,
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            seg: Arc::clone(&self.seg),
            lock: self.lock.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("value", &self.load())
            .field("lock", &self.lock)
            .finish()
    }
}

/// The lock of a [`Value`], held; derefs to the value.
///
/// # Examples
/// ```
/// let hits = shoal::Value::new(5u64)?;
/// {
///     let mut g = hits.lock()?.unwrap();
///     *g += 1; // read-modify-write under the lock
/// }
/// assert_eq!(hits.load(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ValueGuard<'a, T: Pod> {
    _guard: LockGuard<'a>,
    ptr: *mut T,
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` is the aligned value inside the mapping the borrowed `Value`
        // keeps alive; the lock is held, and every other access by shoal either holds it
        // or is a single atomic access.
        unsafe { &*self.ptr }
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the guard is borrowed mutably, so this is the only
        // reference made through it.
        unsafe { &mut *self.ptr }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

impl<T: Pod> Value<T> {
    fn create(v: T, lock: Option<Lock>) -> Result<Value<T>, SyncError> {
        if std::mem::align_of::<T>() > PAYLOAD_ALIGN {
            return Err(SyncError::shm(
                "create a shared value",
                ShmError::Layout {
                    name: "<anonymous>".to_owned(),
                    reason: format!(
                        "values aligned to more than {PAYLOAD_ALIGN} bytes are not supported"
                    ),
                },
            ));
        }
        let size = std::mem::size_of::<T>();
        let seg = Segment::anonymous(SegmentKind::Value, size)
            .map_err(|e| SyncError::shm("create a shared value", e))?;
        seg.tag().store(size as u32, Ordering::Release);
        let value = Value {
            seg,
            lock,
            _t: PhantomData,
        };
        value.store(v);
        Ok(value)
    }

    /// Creates a shared value with a lock.
    ///
    /// # Errors
    /// When a segment cannot be created, or `T` is aligned to more than 64 bytes.
    ///
    /// # Examples
    /// ```
    /// let v = shoal::Value::new(1.5f64)?;
    /// assert!(v.get_lock().is_some());
    /// assert_eq!(v.load(), 1.5);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new(v: T) -> Result<Value<T>, SyncError> {
        Value::create(v, Some(Lock::new()?))
    }

    /// Creates a shared value without a lock (Python's `lock=False`).
    ///
    /// # Errors
    /// As for [`new`](Value::new).
    ///
    /// # Examples
    /// ```
    /// let v = shoal::Value::without_lock([1u8; 3])?;
    /// assert!(v.get_lock().is_none());
    /// assert!(v.lock().is_err());
    /// assert_eq!(v.load(), [1, 1, 1]);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn without_lock(v: T) -> Result<Value<T>, SyncError> {
        Value::create(v, None)
    }

    fn ptr(&self) -> *mut T {
        self.seg.payload_ptr().cast()
    }

    /// Reads the value (see the type docs for when it can tear).
    ///
    /// # Examples
    /// ```
    /// let v = shoal::Value::new(7u32)?;
    /// assert_eq!(v.load(), 7);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn load(&self) -> T {
        // SAFETY: the payload holds a `T` (size checked at creation and import), aligned
        // (64-byte payload, alignment checked), mapped while `self` lives.
        unsafe { load_elem(self.ptr(), self.lock.as_ref()) }
    }

    /// Writes the value (see the type docs for when it can tear).
    ///
    /// # Examples
    /// ```
    /// let v = shoal::Value::new([0u16; 2])?;
    /// v.store([1, 2]);
    /// assert_eq!(v.load(), [1, 2]);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn store(&self, v: T) {
        // SAFETY: as in `load`.
        unsafe { store_elem(self.ptr(), v, self.lock.as_ref()) }
    }

    /// Takes the lock; the guard derefs to the value.
    ///
    /// # Errors
    /// [`NoLock`] when the value was made [`without_lock`](Value::without_lock). Inside
    /// `Ok`, [`crate::sync::OwnerDied`] (with the guard) when a holder of the lock died
    /// holding it: the value may be half-written.
    ///
    /// # Examples
    /// ```
    /// let v = shoal::Value::new(0i32)?;
    /// *v.lock()?.unwrap_or_else(|died| died.into_inner()) -= 5;
    /// assert_eq!(v.load(), -5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(&self) -> Result<LockResult<ValueGuard<'_, T>>, NoLock> {
        let lock = self.lock.as_ref().ok_or(NoLock { what: "value" })?;
        let ptr = self.ptr();
        Ok(match lock.acquire() {
            Ok(g) => Ok(ValueGuard { _guard: g, ptr }),
            Err(d) => Err(d.map(|g| ValueGuard { _guard: g, ptr })),
        })
    }

    /// The lock, when the value has one.
    ///
    /// # Examples
    /// ```
    /// let v = shoal::Value::new(0u8)?;
    /// let lock = v.get_lock().unwrap();
    /// let _g = lock.acquire().unwrap(); // guards the value like `v.lock()`
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn get_lock(&self) -> Option<&Lock> {
        self.lock.as_ref()
    }
}

impl<T: Pod> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        typed_wire::serialize(s, &self.seg, &self.lock, "Value")
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value<T>, D::Error> {
        let (seg, lock) = typed_wire::deserialize::<D, T>(d, SegmentKind::Value)?;
        Ok(Value {
            seg,
            lock,
            _t: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};
    use crate::sync::watchdog;

    #[test]
    fn load_store_and_lock_for_every_size() {
        let a = Value::new(7u8).unwrap();
        a.store(9);
        assert_eq!(a.load(), 9);
        let b = Value::new(-3i64).unwrap();
        assert_eq!(b.load(), -3);
        let c = Value::new([1u32, 2, 3]).unwrap(); // 12 bytes: under the lock
        c.store([4, 5, 6]);
        assert_eq!(c.load(), [4, 5, 6]);
        {
            let mut g = c.lock().unwrap().unwrap();
            g[0] = 40;
        }
        assert_eq!(c.load(), [40, 5, 6]);
        let d = Value::without_lock([0u64; 4]).unwrap();
        d.store([1, 2, 3, 4]);
        assert_eq!(d.load(), [1, 2, 3, 4]);
        assert!(d.lock().unwrap_err().to_string().contains("without a lock"));
    }

    #[test]
    fn threads_increment_under_the_lock() {
        watchdog(|| {
            let v = Value::new(0u64).unwrap();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let v = v.clone();
                    std::thread::spawn(move || {
                        for _ in 0..20_000 {
                            *v.lock().unwrap().unwrap() += 1;
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(v.load(), 80_000);
        });
    }

    #[test]
    fn handoff_round_trip_and_size_check() {
        let v = Value::new(5u32).unwrap();
        let enc = encode(&v).unwrap();
        assert_eq!(enc.fds.len(), 2);
        let back: Value<u32> = decode(&enc.bytes, enc.fds).unwrap();
        back.store(6);
        assert_eq!(v.load(), 6);
        let g = back.lock().unwrap().unwrap();
        assert!(v.get_lock().unwrap().is_locked());
        drop(g);
        let enc = encode(&v).unwrap();
        let err = decode::<Value<u64>>(&enc.bytes, enc.fds).unwrap_err();
        assert!(err.to_string().contains("4 bytes"), "{err}");
        let enc = encode(&crate::SharedMemory::new(8).unwrap()).unwrap();
        assert!(decode::<Value<u32>>(&enc.bytes, enc.fds).is_err());
        let w = Value::without_lock(1u16).unwrap();
        let enc = encode(&w).unwrap();
        let back: Value<u16> = decode(&enc.bytes, enc.fds).unwrap();
        assert!(back.get_lock().is_none());
        assert_eq!(back.load(), 1);
    }
}
