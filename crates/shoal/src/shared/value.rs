//! [`Value`]: one plain-old-data value in shared memory, with an optional lock.
//!
//! Also the element access shared with [`crate::Array`]: a value of 1, 2, 4 or 8 bytes at
//! an address aligned to its size goes through the atomic of that size, so that a reader
//! never sees half of a write by another process.
// Shared-memory layout or FFI code: atomic and volatile accesses to the mapped value (the crate denies unsafe code elsewhere).
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::typed_wire;
use crate::shm::{Segment, SegmentKind, ShmError};
use crate::sync::{GuardError, GuardResult, Lock, LockGuard, NoLock, SyncError};

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
/// read-modify-write, hold the lock: `*value.lock().unwrap() += 1`.
///
/// `load` and `store` do not wait for the lock, so a `store` from another thread can land
/// between the read and the write of a holder of the lock (the holder's write wins).
/// For larger values, do not call `load`/`store` while this thread holds the guard: they
/// take the same (non re-entrant) lock.
///
/// Clones are handles to the same value; passed as a [`crate::process`] argument, it
/// reaches the child with its lock.
///
/// A value made with [`create_named`](Value::create_named) lives in the named segment
/// `/dev/shm/<name>` (its lock in `/dev/shm/<name>.lock`), so that an unrelated process
/// can attach with [`open`](Value::open); the creating handle removes both names when
/// dropped. Since any process of the same user may truncate those files, every access
/// to a named value first checks their size (one `fstat` each): a truncated value gives
/// [`ShmError::Truncated`] from [`try_load`](Value::try_load) and
/// [`try_store`](Value::try_store) and a panic naming it from the other accessors, never
/// a `SIGBUS` (except for a truncation racing an access already past its check).
/// Anonymous values are sealed against shrinking and pay nothing.
///
/// # Examples
/// ```
/// let counter = shoal::Value::new(0u64)?;
/// counter.store(41);
/// *counter.lock().unwrap() += 1;
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
        let mut d = f.debug_struct("Value");
        match self.try_load() {
            Ok(v) => d.field("value", &v),
            Err(e) => d.field("value", &format_args!("<{e}>")),
        };
        d.field("name", &self.name())
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
///     let mut g = hits.lock().unwrap();
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

/// Refuses element types the 64-byte aligned payload cannot hold aligned.
pub(crate) fn check_align<T>(what: &'static str, name: Option<&str>) -> Result<(), SyncError> {
    if std::mem::align_of::<T>() > PAYLOAD_ALIGN {
        return Err(SyncError::shm(
            what,
            ShmError::Layout {
                name: name.unwrap_or("<anonymous>").to_owned(),
                reason: format!(
                    "types aligned to more than {PAYLOAD_ALIGN} bytes are not supported"
                ),
            },
        ));
    }
    Ok(())
}

/// Panics with the error of an access to a truncated named segment: the accessors that
/// cannot return it stop here, where the kernel would raise `SIGBUS`.
pub(crate) fn truncated(e: ShmError) -> ! {
    panic!("{e}")
}

impl<T: Pod> Value<T> {
    fn create(v: T, lock: Option<Lock>) -> Result<Value<T>, SyncError> {
        check_align::<T>("create a shared value", None)?;
        let size = std::mem::size_of::<T>();
        let seg = Segment::anonymous(SegmentKind::Value, size)
            .map_err(|e| SyncError::shm("create a shared value", e))?;
        seg.tag().store(size as u32, Ordering::Release);
        seg.flags().store(
            typed_wire::flags_for::<T>(lock.is_some()),
            Ordering::Release,
        );
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

    fn create_in(name: &str, v: T, with_lock: bool) -> Result<Value<T>, SyncError> {
        let what = "create a named shared value";
        check_align::<T>(what, Some(name))?;
        let size = std::mem::size_of::<T>();
        let (seg, lock) = typed_wire::create_named::<T>(
            what,
            SegmentKind::Value,
            name,
            size,
            with_lock,
            |seg| {
                // SAFETY: the payload is 64-byte aligned (alignment of `T` checked above)
                // and holds `size` bytes; the segment is not published yet, so nothing
                // else reads or writes it.
                unsafe { seg.payload_ptr().cast::<T>().write(v) }
            },
        )?;
        Ok(Value {
            seg,
            lock,
            _t: PhantomData,
        })
    }

    /// Creates a shared value with a lock in the named segment `/dev/shm/<name>` (its
    /// lock in `/dev/shm/<name>.lock`), so that unrelated processes can
    /// [`open`](Value::open) it. This handle removes both names when dropped.
    ///
    /// # Errors
    /// [`SyncError::Shm`] with [`ShmError::Io`] (`AlreadyExists`) when the name is
    /// taken, [`ShmError::InvalidName`] for a name that cannot be a file name (at most
    /// 195 characters, to leave room for `.lock`), or the errors of [`new`](Value::new).
    ///
    /// # Examples
    /// ```
    /// use shoal::Value;
    ///
    /// let name = format!("shoal-doc-value-create-{}", std::process::id());
    /// let counter = Value::create_named(&name, 10u64)?;
    /// assert_eq!(counter.name(), Some(name.as_str()));
    /// assert!(Value::create_named(&name, 0u64).is_err()); // the name is taken
    /// drop(counter); // the creator removes the names
    /// assert!(Value::<u64>::open(&name).is_err());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn create_named(name: &str, v: T) -> Result<Value<T>, SyncError> {
        Value::create_in(name, v, true)
    }

    /// Creates a shared value without a lock in the named segment `/dev/shm/<name>`.
    ///
    /// # Errors
    /// As for [`create_named`](Value::create_named).
    ///
    /// # Examples
    /// ```
    /// use shoal::Value;
    ///
    /// let name = format!("shoal-doc-value-no-lock-{}", std::process::id());
    /// let flag = Value::create_named_without_lock(&name, 0u8)?;
    /// let other = Value::<u8>::open(&name)?;
    /// assert!(other.get_lock().is_none());
    /// other.store(1);
    /// assert_eq!(flag.load(), 1);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn create_named_without_lock(name: &str, v: T) -> Result<Value<T>, SyncError> {
        Value::create_in(name, v, false)
    }

    /// Opens the named value `name`, made by [`create_named`](Value::create_named) in
    /// any process, with its lock when it has one.
    ///
    /// The element size and alignment recorded in the segment must be `T`'s; types of
    /// the same size and alignment (`u32` and `f32`) are not told apart, as with
    /// Python's shared ctypes opened by name.
    ///
    /// # Errors
    /// [`SyncError::Shm`] with [`ShmError::Io`] (`NotFound`) when there is no such
    /// segment; [`ShmError::WrongKind`] when it is not a value (an array, raw bytes);
    /// [`ShmError::Layout`] when it holds another size or alignment than `T`'s, or its
    /// lock segment is missing; [`ShmError::NotShoal`], [`ShmError::Version`] or
    /// [`ShmError::SizeMismatch`] for a file that is not such a segment.
    ///
    /// # Examples
    /// ```
    /// use shoal::shm::ShmError;
    /// use shoal::sync::SyncError;
    /// use shoal::Value;
    ///
    /// let name = format!("shoal-doc-value-open-{}", std::process::id());
    /// let owner = Value::create_named(&name, 1.5f64)?;
    /// let attached = Value::<f64>::open(&name)?; // from any process
    /// *attached.lock().unwrap() += 1.0; // the same lock as the owner's
    /// assert_eq!(owner.load(), 2.5);
    ///
    /// let wrong = Value::<u32>::open(&name).unwrap_err();
    /// assert!(matches!(wrong, SyncError::Shm { source: ShmError::Layout { .. }, .. }));
    /// assert!(wrong.to_string().contains("8 bytes"), "{wrong}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(name: &str) -> Result<Value<T>, SyncError> {
        let what = "open a named shared value";
        check_align::<T>(what, Some(name))?;
        let (seg, lock) = typed_wire::open_named::<T>(what, SegmentKind::Value, name)?;
        Ok(Value {
            seg,
            lock,
            _t: PhantomData,
        })
    }

    /// The segment's name, `None` for anonymous values.
    ///
    /// # Examples
    /// ```
    /// use shoal::Value;
    ///
    /// assert_eq!(Value::new(0u8)?.name(), None);
    /// let name = format!("shoal-doc-value-name-{}", std::process::id());
    /// assert_eq!(Value::create_named(&name, 0u8)?.name(), Some(name.as_str()));
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Reads the value like [`load`](Value::load), but reports a named value truncated
    /// by another process as an error instead of panicking.
    ///
    /// # Errors
    /// [`ShmError::Truncated`] when the value's file (or its lock's) was truncated.
    ///
    /// # Examples
    /// ```
    /// let name = format!("shoal-doc-value-try-load-{}", std::process::id());
    /// let v = shoal::Value::create_named(&name, 7u32)?;
    /// assert_eq!(v.try_load()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_load(&self) -> Result<T, ShmError> {
        typed_wire::check_intact(&self.seg, self.lock.as_ref())?;
        // SAFETY: the payload holds a `T` (size checked at creation and import), aligned
        // (64-byte payload, alignment checked), mapped while `self` lives, and the file
        // still covers it (checked above).
        Ok(unsafe { load_elem(self.ptr(), self.lock.as_ref()) })
    }

    /// Writes the value like [`store`](Value::store), but reports a named value
    /// truncated by another process as an error instead of panicking.
    ///
    /// # Errors
    /// [`ShmError::Truncated`] when the value's file (or its lock's) was truncated.
    ///
    /// # Examples
    /// ```
    /// let name = format!("shoal-doc-value-try-store-{}", std::process::id());
    /// let v = shoal::Value::create_named(&name, 0i16)?;
    /// v.try_store(-2)?;
    /// assert_eq!(v.load(), -2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_store(&self, v: T) -> Result<(), ShmError> {
        typed_wire::check_intact(&self.seg, self.lock.as_ref())?;
        // SAFETY: as in `try_load`.
        unsafe { store_elem(self.ptr(), v, self.lock.as_ref()) };
        Ok(())
    }

    fn ptr(&self) -> *mut T {
        self.seg.payload_ptr().cast()
    }

    /// Reads the value (see the type docs for when it can tear).
    ///
    /// # Panics
    /// When another process truncated a named value's file (see
    /// [`try_load`](Value::try_load)).
    ///
    /// # Examples
    /// ```
    /// let v = shoal::Value::new(7u32)?;
    /// assert_eq!(v.load(), 7);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn load(&self) -> T {
        self.try_load().unwrap_or_else(|e| truncated(e))
    }

    /// Writes the value (see the type docs for when it can tear).
    ///
    /// # Panics
    /// When another process truncated a named value's file (see
    /// [`try_store`](Value::try_store)).
    ///
    /// # Examples
    /// ```
    /// let v = shoal::Value::new([0u16; 2])?;
    /// v.store([1, 2]);
    /// assert_eq!(v.load(), [1, 2]);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn store(&self, v: T) {
        self.try_store(v).unwrap_or_else(|e| truncated(e))
    }

    /// Takes the lock; the guard derefs to the value.
    ///
    /// # Errors
    /// [`GuardError::NoLock`] when the value was made
    /// [`without_lock`](Value::without_lock); [`GuardError::OwnerDied`] (with the guard)
    /// when a holder of the lock died holding it: the value may be half-written.
    /// [`GuardError::into_guard`] takes the guard out of the latter.
    ///
    /// # Panics
    /// When another process truncated a named value's file or its lock's.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::GuardError;
    ///
    /// let v = shoal::Value::new(0i32)?;
    /// *v.lock().unwrap() -= 5; // panics on a dead holder, as `Mutex::lock().unwrap()`
    /// *v.lock().or_else(GuardError::into_guard)? -= 5; // goes on after one
    /// assert_eq!(v.load(), -10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(&self) -> GuardResult<ValueGuard<'_, T>> {
        let lock = self.lock.as_ref().ok_or(NoLock { what: "value" })?;
        typed_wire::check_intact(&self.seg, Some(lock)).unwrap_or_else(|e| truncated(e));
        let ptr = self.ptr();
        match lock.acquire() {
            Ok(g) => Ok(ValueGuard { _guard: g, ptr }),
            Err(d) => Err(GuardError::OwnerDied(
                d.map(|g| ValueGuard { _guard: g, ptr }),
            )),
        }
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
            let mut g = c.lock().unwrap();
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
                            *v.lock().unwrap() += 1;
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
        let g = back.lock().unwrap();
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
