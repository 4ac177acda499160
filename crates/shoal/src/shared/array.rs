//! [`Array`]: a fixed-length array of plain-old-data elements in shared memory, with an
//! optional lock.
// Shared-memory layout or FFI code: typed views of the mapped elements (the crate denies unsafe code elsewhere).
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::mem::offset_of;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::typed_wire::{self, layout_error};
use super::value::{check_align, load_elem, store_elem, truncated, PAYLOAD_ALIGN};
use crate::shm::{Segment, SegmentKind, ShmError};
use crate::sync::{GuardError, GuardResult, Lock, LockGuard, NoLock, SyncError};

/// The first 64 bytes of an array's payload; the elements follow.
#[repr(C)]
struct ArrayHeader {
    /// Number of elements; written once before the array is shared.
    len: AtomicU64,
    _pad: [u8; 56],
}

const _: () = {
    assert!(offset_of!(ArrayHeader, len) == 0);
    assert!(std::mem::size_of::<ArrayHeader>() == PAYLOAD_ALIGN);
};

/// A fixed-length array of plain-old-data elements in shared memory (Python's
/// `multiprocessing.Array`).
///
/// Element access follows [`crate::Value`]: [`get`](Array::get) and [`set`](Array::set)
/// never tear an element of 1, 2, 4 or 8 bytes (one atomic access, no lock); larger
/// elements are copied under the lock when there is one. [`lock`](Array::lock) gives the
/// whole slice under the lock.
///
/// [`create_named`](Array::create_named) puts the array in the named segment
/// `/dev/shm/<name>` (its lock in `/dev/shm/<name>.lock`) for unrelated processes to
/// [`open`](Array::open). As for a named [`crate::Value`], every access to a named
/// array first checks that no other process truncated its files: [`set`](Array::set)
/// and [`try_get`](Array::try_get) return [`ShmError::Truncated`], the other accessors
/// panic with it, none raises `SIGBUS`.
///
/// # Examples
/// ```
/// let a = shoal::Array::new(&[1i32, 2, 3])?;
/// a.set(1, 20)?;
/// {
///     let mut g = a.lock().unwrap();
///     g[2] += 30;
/// }
/// assert_eq!(a.to_vec(), [1, 20, 33]);
/// assert_eq!(a.get(3), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T: Pod> {
    seg: Arc<Segment>,
    lock: Option<Lock>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            seg: Arc::clone(&self.seg),
            lock: self.lock.clone(),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.len)
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

/// The lock of an [`Array`], held; derefs to the elements.
///
/// # Examples
/// ```
/// let arr = shoal::Array::new(&[1u32, 2, 3])?;
/// {
///     let mut g = arr.lock().unwrap();
///     g[0] = 10;
///     g.reverse(); // any slice method, under the lock
/// }
/// assert_eq!(arr.to_vec(), [3, 2, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ArrayGuard<'a, T: Pod> {
    _guard: LockGuard<'a>,
    ptr: *mut T,
    len: usize,
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr`/`len` are the aligned elements inside the mapping the borrowed
        // `Array` keeps alive (bounds checked at creation and import); the lock is held.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the guard is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T: Pod> Array<T> {
    /// The payload bytes of `len` elements: the array header, then the elements.
    fn payload_len(what: &'static str, len: usize) -> Result<usize, SyncError> {
        len.checked_mul(std::mem::size_of::<T>())
            .and_then(|n| n.checked_add(PAYLOAD_ALIGN))
            .ok_or(SyncError::shm(
                what,
                ShmError::TooLarge {
                    requested: usize::MAX,
                },
            ))
    }

    fn create(
        len: usize,
        mut init: impl FnMut(usize) -> T,
        lock: Option<Lock>,
    ) -> Result<Array<T>, SyncError> {
        let what = "create a shared array";
        check_align::<T>(what, None)?;
        let bytes = Array::<T>::payload_len(what, len)?;
        let seg =
            Segment::anonymous(SegmentKind::Array, bytes).map_err(|e| SyncError::shm(what, e))?;
        seg.tag()
            .store(std::mem::size_of::<T>() as u32, Ordering::Release);
        seg.flags().store(
            typed_wire::flags_for::<T>(lock.is_some()),
            Ordering::Release,
        );
        let array: Array<T> = Array {
            seg,
            lock,
            len,
            _t: PhantomData,
        };
        array.header().len.store(len as u64, Ordering::Release);
        for i in 0..len {
            // SAFETY: `i < len`, inside the segment sized above.
            unsafe { array.elem(i).write(init(i)) };
        }
        Ok(array)
    }

    /// Creates a shared array holding a copy of `values`, with a lock.
    ///
    /// # Errors
    /// When a segment cannot be created, or `T` is aligned to more than 64 bytes.
    ///
    /// # Examples
    /// ```
    /// let a = shoal::Array::new(&[1u8, 2, 3])?;
    /// assert_eq!(a.len(), 3);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new(values: &[T]) -> Result<Array<T>, SyncError> {
        Array::create(values.len(), |i| values[i], Some(Lock::new()?))
    }

    /// Creates a shared array of `len` elements `f(0), f(1), ...`, with a lock.
    ///
    /// # Errors
    /// As for [`new`](Array::new).
    ///
    /// # Examples
    /// ```
    /// let squares = shoal::Array::from_fn(4, |i| (i * i) as u32)?;
    /// assert_eq!(squares.to_vec(), [0, 1, 4, 9]);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn from_fn(len: usize, f: impl FnMut(usize) -> T) -> Result<Array<T>, SyncError> {
        Array::create(len, f, Some(Lock::new()?))
    }

    /// Creates a shared array holding a copy of `values`, without a lock.
    ///
    /// # Errors
    /// As for [`new`](Array::new).
    ///
    /// # Examples
    /// ```
    /// let a = shoal::Array::without_lock(&[0u64; 4])?;
    /// assert!(a.get_lock().is_none());
    /// assert!(a.lock().is_err());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn without_lock(values: &[T]) -> Result<Array<T>, SyncError> {
        Array::create(values.len(), |i| values[i], None)
    }

    fn create_in(name: &str, values: &[T], with_lock: bool) -> Result<Array<T>, SyncError> {
        let what = "create a named shared array";
        check_align::<T>(what, Some(name))?;
        let bytes = Array::<T>::payload_len(what, values.len())?;
        let (seg, lock) = typed_wire::create_named::<T>(
            what,
            SegmentKind::Array,
            name,
            bytes,
            with_lock,
            |seg| {
                let base = seg.payload_ptr();
                // SAFETY: the payload (64-byte aligned, `bytes` long) starts with an
                // ArrayHeader and then has room for `values.len()` elements of `T`
                // (alignment checked above); the segment is not published yet, so
                // nothing else touches it.
                unsafe {
                    (*base.cast::<ArrayHeader>())
                        .len
                        .store(values.len() as u64, Ordering::Relaxed);
                    let elems = base.add(PAYLOAD_ALIGN).cast::<T>();
                    std::ptr::copy_nonoverlapping(values.as_ptr(), elems, values.len());
                }
            },
        )?;
        Ok(Array {
            seg,
            lock,
            len: values.len(),
            _t: PhantomData,
        })
    }

    /// Creates a shared array holding a copy of `values`, with a lock, in the named
    /// segment `/dev/shm/<name>` (its lock in `/dev/shm/<name>.lock`), so that
    /// unrelated processes can [`open`](Array::open) it. This handle removes both names
    /// when dropped.
    ///
    /// # Errors
    /// [`SyncError::Shm`] with [`ShmError::Io`] (`AlreadyExists`) when the name is
    /// taken, [`ShmError::InvalidName`] for a name that cannot be a file name (at most
    /// 195 characters, to leave room for `.lock`), or the errors of [`new`](Array::new).
    ///
    /// # Examples
    /// ```
    /// use shoal::Array;
    ///
    /// let name = format!("shoal-doc-array-create-{}", std::process::id());
    /// let a = Array::create_named(&name, &[1u32, 2, 3])?;
    /// assert_eq!(a.name(), Some(name.as_str()));
    /// assert!(Array::create_named(&name, &[0u32]).is_err()); // the name is taken
    /// drop(a); // the creator removes the names
    /// assert!(Array::<u32>::open(&name).is_err());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn create_named(name: &str, values: &[T]) -> Result<Array<T>, SyncError> {
        Array::create_in(name, values, true)
    }

    /// Creates a shared array holding a copy of `values`, without a lock, in the named
    /// segment `/dev/shm/<name>`.
    ///
    /// # Errors
    /// As for [`create_named`](Array::create_named).
    ///
    /// # Examples
    /// ```
    /// use shoal::Array;
    ///
    /// let name = format!("shoal-doc-array-no-lock-{}", std::process::id());
    /// let a = Array::create_named_without_lock(&name, &[0u8; 4])?;
    /// let other = Array::<u8>::open(&name)?;
    /// assert!(other.get_lock().is_none());
    /// other.set(3, 9)?;
    /// assert_eq!(a.to_vec(), [0, 0, 0, 9]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_named_without_lock(name: &str, values: &[T]) -> Result<Array<T>, SyncError> {
        Array::create_in(name, values, false)
    }

    /// Opens the named array `name`, made by [`create_named`](Array::create_named) in
    /// any process, with its lock when it has one. Its length is the creator's.
    ///
    /// The element size and alignment recorded in the segment must be `T`'s (types of
    /// the same size and alignment are not told apart).
    ///
    /// # Errors
    /// [`SyncError::Shm`] with [`ShmError::Io`] (`NotFound`) when there is no such
    /// segment; [`ShmError::WrongKind`] when it is not an array; [`ShmError::Layout`]
    /// when its elements have another size or alignment than `T`'s, its header claims
    /// more elements than the segment holds, or its lock segment is missing;
    /// [`ShmError::NotShoal`], [`ShmError::Version`] or [`ShmError::SizeMismatch`] for a
    /// file that is not such a segment.
    ///
    /// # Examples
    /// ```
    /// use shoal::shm::{ShmError, SegmentKind};
    /// use shoal::sync::SyncError;
    /// use shoal::{Array, Value};
    ///
    /// let name = format!("shoal-doc-array-open-{}", std::process::id());
    /// let owner = Array::create_named(&name, &[10u16, 20, 30])?;
    /// let attached = Array::<u16>::open(&name)?; // from any process
    /// assert_eq!(attached.len(), 3);
    /// attached.lock().unwrap()[0] += 1; // the same lock as the owner's
    /// assert_eq!(owner.to_vec(), [11, 20, 30]);
    ///
    /// let wrong_size = Array::<u64>::open(&name).unwrap_err();
    /// assert!(matches!(wrong_size, SyncError::Shm { source: ShmError::Layout { .. }, .. }));
    /// let not_a_value = Value::<u16>::open(&name).unwrap_err();
    /// assert!(matches!(
    ///     not_a_value,
    ///     SyncError::Shm { source: ShmError::WrongKind { found: SegmentKind::Array, .. }, .. }
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(name: &str) -> Result<Array<T>, SyncError> {
        let what = "open a named shared array";
        check_align::<T>(what, Some(name))?;
        let (seg, lock) = typed_wire::open_named::<T>(what, SegmentKind::Array, name)?;
        Array::with_checked_len(seg, lock).map_err(|reason| {
            SyncError::shm(
                what,
                ShmError::Layout {
                    name: name.to_owned(),
                    reason,
                },
            )
        })
    }

    /// An array over a received or opened segment, its length read from the array
    /// header and checked against the segment's size.
    fn with_checked_len(seg: Arc<Segment>, lock: Option<Lock>) -> Result<Array<T>, String> {
        let size = std::mem::size_of::<T>();
        let mut array = Array {
            seg,
            lock,
            len: 0,
            _t: PhantomData,
        };
        let len = array.header().len.load(Ordering::Acquire);
        let fits = usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(size))
            .and_then(|n| n.checked_add(PAYLOAD_ALIGN))
            .is_some_and(|n| n <= array.seg.payload_len());
        if !fits {
            return Err(format!(
                "its header claims {len} elements, more than the segment holds"
            ));
        }
        array.len = len as usize;
        Ok(array)
    }

    /// The segment's name, `None` for anonymous arrays.
    ///
    /// # Examples
    /// ```
    /// use shoal::Array;
    ///
    /// assert_eq!(Array::new(&[0u8])?.name(), None);
    /// let name = format!("shoal-doc-array-name-{}", std::process::id());
    /// assert_eq!(Array::create_named(&name, &[0u8])?.name(), Some(name.as_str()));
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    fn header(&self) -> &ArrayHeader {
        // SAFETY: the payload starts with an ArrayHeader (64-byte aligned, at least 64
        // bytes long), whose only read field is atomic.
        unsafe { &*self.seg.payload_ptr().cast::<ArrayHeader>() }
    }

    /// The address of element `i`.
    ///
    /// # Safety
    /// `i < self.len` for the result to be dereferenceable.
    unsafe fn elem(&self, i: usize) -> *mut T {
        // SAFETY: the elements start 64 bytes into the payload and `i < len` elements fit
        // (caller's precondition, sizes checked at creation and import).
        unsafe { self.seg.payload_ptr().add(PAYLOAD_ALIGN).cast::<T>().add(i) }
    }

    /// The number of elements.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::Array::new(&[0u32; 10])?.len(), 10);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    ///
    /// # Examples
    /// ```
    /// assert!(shoal::Array::<u32>::new(&[])?.is_empty());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `i`, `None` past the end.
    ///
    /// # Examples
    /// ```
    /// let a = shoal::Array::new(&[5i16, 6])?;
    /// assert_eq!(a.get(1), Some(6));
    /// assert_eq!(a.get(2), None);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        self.try_get(i).unwrap_or_else(|e| truncated(e))
    }

    /// Element `i` like [`get`](Array::get), but reports a named array truncated by
    /// another process as an error instead of panicking.
    ///
    /// # Errors
    /// [`ShmError::Truncated`] when the array's file (or its lock's) was truncated.
    ///
    /// # Examples
    /// ```
    /// let name = format!("shoal-doc-array-try-get-{}", std::process::id());
    /// let a = shoal::Array::create_named(&name, &[4u8, 5])?;
    /// assert_eq!(a.try_get(1)?, Some(5));
    /// assert_eq!(a.try_get(2)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_get(&self, i: usize) -> Result<Option<T>, ShmError> {
        if i >= self.len {
            return Ok(None);
        }
        typed_wire::check_intact(&self.seg, self.lock.as_ref())?;
        // SAFETY: `i < len`; the element is mapped while `self` lives and its file still
        // covers it (checked above).
        Ok(Some(unsafe { load_elem(self.elem(i), self.lock.as_ref()) }))
    }

    /// Sets element `i`.
    ///
    /// # Errors
    /// [`ShmError::OutOfBounds`] when `i` is past the end; [`ShmError::Truncated`] when
    /// another process truncated a named array's file (or its lock's).
    ///
    /// # Examples
    /// ```
    /// let a = shoal::Array::new(&[0u8; 2])?;
    /// a.set(0, 1)?;
    /// assert!(a.set(2, 1).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(&self, i: usize, v: T) -> Result<(), ShmError> {
        if i >= self.len {
            let size = std::mem::size_of::<T>();
            return Err(ShmError::OutOfBounds {
                offset: i.saturating_mul(size),
                len: size,
                size: self.len * size,
            });
        }
        typed_wire::check_intact(&self.seg, self.lock.as_ref())?;
        // SAFETY: `i < len`; the element is mapped while `self` lives and its file still
        // covers it (checked above).
        unsafe { store_elem(self.elem(i), v, self.lock.as_ref()) };
        Ok(())
    }

    /// A copy of every element, read one at a time with [`get`](Array::get) (take the
    /// lock for a consistent snapshot).
    ///
    /// # Panics
    /// When another process truncated a named array's file (see
    /// [`try_get`](Array::try_get)).
    ///
    /// # Examples
    /// ```
    /// let a = shoal::Array::from_fn(3, |i| i as u8)?;
    /// assert_eq!(a.to_vec(), [0, 1, 2]);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len).filter_map(|i| self.get(i)).collect()
    }

    /// Takes the lock; the guard derefs to the elements.
    ///
    /// # Errors
    /// [`GuardError::NoLock`] when the array was made without a lock;
    /// [`GuardError::OwnerDied`] (with the guard) when a holder of the lock died holding
    /// it. [`GuardError::into_guard`] takes the guard out of the latter.
    ///
    /// # Panics
    /// When another process truncated a named array's file or its lock's.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::GuardError;
    ///
    /// let a = shoal::Array::new(&[1u32, 2])?;
    /// let mut g = a.lock().or_else(GuardError::into_guard)?;
    /// g.swap(0, 1);
    /// drop(g);
    /// assert_eq!(a.to_vec(), [2, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(&self) -> GuardResult<ArrayGuard<'_, T>> {
        let lock = self.lock.as_ref().ok_or(NoLock { what: "array" })?;
        typed_wire::check_intact(&self.seg, Some(lock)).unwrap_or_else(|e| truncated(e));
        // SAFETY: the address one past the elements' start is in bounds for len == 0 too.
        let ptr = unsafe { self.elem(0) };
        let len = self.len;
        match lock.acquire() {
            Ok(g) => Ok(ArrayGuard {
                _guard: g,
                ptr,
                len,
            }),
            Err(d) => Err(GuardError::OwnerDied(d.map(|g| ArrayGuard {
                _guard: g,
                ptr,
                len,
            }))),
        }
    }

    /// The lock, when the array has one.
    ///
    /// # Examples
    /// ```
    /// let a = shoal::Array::new(&[1u32])?;
    /// assert!(a.get_lock().is_some());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn get_lock(&self) -> Option<&Lock> {
        self.lock.as_ref()
    }
}

impl<T: Pod> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        typed_wire::serialize(s, &self.seg, &self.lock, "Array")
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Array<T>, D::Error> {
        let (seg, lock) = typed_wire::deserialize::<D, T>(d, SegmentKind::Array)?;
        Array::with_checked_len(seg, lock)
            .map_err(|reason| serde::de::Error::custom(layout_error(reason)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};

    #[test]
    fn elements_and_bounds() {
        let a = Array::from_fn(5, |i| i as u16).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a.get(4), Some(4));
        assert_eq!(a.get(5), None);
        assert!(a.set(5, 1).is_err());
        a.set(0, 9).unwrap();
        a.lock().unwrap().iter_mut().for_each(|x| *x += 1);
        assert_eq!(a.to_vec(), [10, 2, 3, 4, 5]);
        let big = Array::without_lock(&[[1u8; 3], [2; 3]]).unwrap();
        big.set(1, [7; 3]).unwrap();
        assert_eq!(big.to_vec(), [[1; 3], [7; 3]]);
        assert!(big.lock().is_err());
        let empty = Array::<u64>::new(&[]).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.lock().unwrap().len(), 0);
    }

    #[test]
    fn handoff_round_trip_and_size_check() {
        let a = Array::new(&[1u32, 2, 3]).unwrap();
        let enc = encode(&a).unwrap();
        let back: Array<u32> = decode(&enc.bytes, enc.fds).unwrap();
        assert_eq!(back.to_vec(), [1, 2, 3]);
        back.set(2, 30).unwrap();
        assert_eq!(a.get(2), Some(30));
        let enc = encode(&a).unwrap();
        let err = decode::<Array<u8>>(&enc.bytes, enc.fds).unwrap_err();
        assert!(err.to_string().contains("4 bytes"), "{err}");
        let v = crate::Value::new(1u32).unwrap();
        let enc = encode(&v).unwrap();
        let err = decode::<Array<u32>>(&enc.bytes, enc.fds).unwrap_err();
        assert!(err.to_string().contains("value"), "{err}");
    }
}
