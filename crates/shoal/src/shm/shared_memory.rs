// Shared-memory layout or FFI code: raw copies in and out of the mapping (the crate denies unsafe code elsewhere).
#![allow(unsafe_code)]
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handoff;
use crate::shm::{Segment, SegmentKind, ShmError};

/// A block of raw bytes shared between processes (Python's
/// `multiprocessing.shared_memory.SharedMemory`).
///
/// [`SharedMemory::new`] makes an anonymous segment, freed by the kernel when the last
/// process using it lets go: it cannot leak. It reaches child processes when passed as a
/// [`crate::Process`] argument. [`SharedMemory::create`] makes a named segment under
/// `/dev/shm/shoal-<pid>-<id>` (mode 0600) that unrelated processes can
/// [`open`](SharedMemory::open); the creating handle unlinks the name when dropped.
///
/// Sizes are rounded up so that the whole mapping is a number of pages, as Python does;
/// [`size`](SharedMemory::size) reports the usable size.
///
/// A named segment is a file in `/dev/shm` that any process of the same user may
/// truncate; touching a mapped page past the new end would raise `SIGBUS`. So every
/// access through this type to a named segment ([`read`](SharedMemory::read),
/// [`write`](SharedMemory::write), the atomic views) first checks the file's size (one
/// `fstat`) and fails with [`ShmError::Truncated`] once it shrank. Anonymous segments
/// are sealed against shrinking and skip the check. Not covered: a truncation racing an
/// access already past its check, and accesses through [`as_ptr`](SharedMemory::as_ptr)
/// or through atomic references taken before the truncation.
///
/// Other processes may write the bytes at any moment, so the contents are reached through
/// copies ([`read`](SharedMemory::read), [`write`](SharedMemory::write)) or through raw
/// pointers whose users provide their own synchronisation.
///
/// # Examples
/// ```
/// use shoal::SharedMemory;
///
/// let shm = SharedMemory::create(100)?;
/// shm.write(0, b"hello")?;
/// let other = SharedMemory::open(shm.name().unwrap())?;
/// let mut buf = [0u8; 5];
/// other.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// assert!(shm.size() >= 100);
/// # Ok::<(), shoal::shm::ShmError>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    seg: Arc<Segment>,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.seg.name())
            .field("size", &self.size())
            .finish()
    }
}

impl SharedMemory {
    /// Creates an anonymous segment of at least `size` bytes, zero-filled.
    ///
    /// # Errors
    /// When the kernel refuses the memory ([`ShmError::Io`]).
    ///
    /// # Examples
    /// ```
    /// use shoal::SharedMemory;
    ///
    /// let shm = SharedMemory::new(10)?;
    /// let mut buf = [1u8; 10];
    /// shm.read(0, &mut buf)?;
    /// assert_eq!(buf, [0; 10]); // zero-filled
    /// assert_eq!(shm.name(), None); // anonymous: nothing in /dev/shm that could leak
    /// # Ok::<(), shoal::shm::ShmError>(())
    /// ```
    pub fn new(size: usize) -> Result<SharedMemory, ShmError> {
        Ok(SharedMemory {
            seg: Segment::anonymous(SegmentKind::Raw, size)?,
        })
    }

    /// Creates a named segment of at least `size` bytes, named `shoal-<pid>-<id>`.
    ///
    /// # Errors
    /// When the kernel refuses the memory or the name.
    ///
    /// # Examples
    /// ```
    /// use shoal::SharedMemory;
    ///
    /// let shm = SharedMemory::create(4096)?;
    /// let name = shm.name().unwrap().to_owned();
    /// assert!(name.starts_with(&format!("shoal-{}-", std::process::id())));
    /// assert!(std::path::Path::new("/dev/shm").join(&name).exists());
    /// drop(shm); // the creating handle removes the name
    /// assert!(SharedMemory::open(&name).is_err());
    /// # Ok::<(), shoal::shm::ShmError>(())
    /// ```
    pub fn create(size: usize) -> Result<SharedMemory, ShmError> {
        Ok(SharedMemory {
            seg: Segment::create_named(SegmentKind::Raw, None, size)?,
        })
    }

    /// Creates a segment with a chosen name (no `/`; it lives in `/dev/shm`).
    ///
    /// # Errors
    /// [`ShmError::Io`] with `AlreadyExists` when the name is taken;
    /// [`ShmError::InvalidName`] for a name that cannot be a file name.
    ///
    /// # Examples
    /// ```
    /// use shoal::shm::ShmError;
    /// use shoal::SharedMemory;
    ///
    /// let name = format!("shoal-doc-create-named-{}", std::process::id());
    /// let shm = SharedMemory::create_named(&name, 64)?;
    /// assert_eq!(shm.name(), Some(name.as_str()));
    /// let taken = SharedMemory::create_named(&name, 64).unwrap_err();
    /// assert!(matches!(taken, ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists));
    /// let bad = SharedMemory::create_named("no/slashes", 64).unwrap_err();
    /// assert!(matches!(bad, ShmError::InvalidName { .. }));
    /// # Ok::<(), ShmError>(())
    /// ```
    pub fn create_named(name: &str, size: usize) -> Result<SharedMemory, ShmError> {
        Ok(SharedMemory {
            seg: Segment::create_named(SegmentKind::Raw, Some(name), size)?,
        })
    }

    /// Opens the named segment `name`, made by [`create`](SharedMemory::create) in any
    /// process.
    ///
    /// # Errors
    /// [`ShmError::Io`] with `NotFound` when there is no such segment;
    /// [`ShmError::NotShoal`], [`ShmError::Version`] or [`ShmError::WrongKind`] when the
    /// file is not a raw shoal segment of this layout version;
    /// [`ShmError::SizeMismatch`] when its header claims more bytes than the file holds.
    ///
    /// # Examples
    /// ```
    /// use shoal::shm::ShmError;
    /// use shoal::SharedMemory;
    ///
    /// let owner = SharedMemory::create(16)?;
    /// owner.write(0, b"shared")?;
    /// let opened = SharedMemory::open(owner.name().unwrap())?; // from any process
    /// let mut buf = [0u8; 6];
    /// opened.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"shared");
    ///
    /// let missing = SharedMemory::open("shoal-no-such-segment").unwrap_err();
    /// assert!(matches!(missing, ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    /// # Ok::<(), ShmError>(())
    /// ```
    pub fn open(name: &str) -> Result<SharedMemory, ShmError> {
        Ok(SharedMemory {
            seg: Segment::open_named(name, Some(SegmentKind::Raw))?,
        })
    }

    /// The segment's name, `None` for anonymous segments.
    ///
    /// # Examples
    /// ```
    /// use shoal::SharedMemory;
    ///
    /// assert_eq!(SharedMemory::new(8)?.name(), None);
    /// let named = SharedMemory::create(8)?;
    /// assert!(named.name().is_some_and(|n| n.starts_with("shoal-")));
    /// # Ok::<(), shoal::shm::ShmError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// The usable size in bytes (the request rounded up to fill whole pages).
    ///
    /// # Examples
    /// ```
    /// use shoal::SharedMemory;
    ///
    /// let shm = SharedMemory::new(100)?;
    /// assert!(shm.size() >= 100); // rounded up to whole pages
    /// shm.write(shm.size() - 1, &[1])?; // the last usable byte
    /// assert!(shm.write(shm.size(), &[1]).is_err());
    /// # Ok::<(), shoal::shm::ShmError>(())
    /// ```
    pub fn size(&self) -> usize {
        self.seg.payload_len()
    }

    /// The first usable byte. Other processes may read and write through their own
    /// mappings at any time: accesses through this pointer need their own
    /// synchronisation (atomics, or a [`crate::Lock`]).
    ///
    /// # Examples
    /// ```
    /// use shoal::SharedMemory;
    ///
    /// let shm = SharedMemory::new(64)?;
    /// // The same first byte that `read`, `write` and the atomic views reach.
    /// let word = shm.atomic_u32(0)?;
    /// assert_eq!(word.as_ptr().cast::<u8>(), shm.as_ptr());
    /// # Ok::<(), shoal::shm::ShmError>(())
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.seg.payload_ptr()
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => self.seg.check_size(),
            _ => Err(ShmError::OutOfBounds {
                offset,
                len,
                size: self.size(),
            }),
        }
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    /// [`ShmError::OutOfBounds`] when the range leaves the segment;
    /// [`ShmError::Truncated`] when another process truncated a named segment's file.
    ///
    /// # Examples
    /// ```
    /// use shoal::shm::ShmError;
    /// use shoal::SharedMemory;
    ///
    /// let shm = SharedMemory::new(16)?;
    /// shm.write(4, b"abcd")?;
    /// let mut buf = [0u8; 6];
    /// shm.read(3, &mut buf)?;
    /// assert_eq!(&buf, b"\0abcd\0");
    /// let mut too_far = vec![0u8; shm.size() + 1];
    /// assert!(matches!(shm.read(0, &mut too_far), Err(ShmError::OutOfBounds { .. })));
    /// # Ok::<(), ShmError>(())
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), ShmError> {
        self.check(offset, buf.len())?;
        // SAFETY: `check` put the range inside the payload, which the mapping of
        // `self.seg` holds for as long as `self` lives; `buf` is the caller's own memory.
        unsafe { crate::shm::raw::copy_out(self.seg.payload_ptr(), offset, buf) };
        Ok(())
    }

    /// Copies `data` into the segment starting at `offset`.
    ///
    /// # Errors
    /// [`ShmError::OutOfBounds`] when the range leaves the segment;
    /// [`ShmError::Truncated`] when another process truncated a named segment's file.
    ///
    /// # Examples
    /// ```
    /// use shoal::{Process, SharedMemory};
    ///
    /// fn fill(shm: SharedMemory) {
    ///     shm.write(0, b"from the child").unwrap();
    /// }
    /// shoal::entry!(fill);
    ///
    /// let shm = SharedMemory::new(32)?;
    /// Process::new(fill, shm.clone()).start()?.join()?;
    /// let mut buf = [0u8; 14];
    /// shm.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"from the child");
    /// assert!(shm.write(usize::MAX, b"x").is_err()); // out of bounds, no overflow
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), ShmError> {
        self.check(offset, data.len())?;
        // SAFETY: `check` put the range inside the payload of the (read-write) mapping
        // of `self.seg`, alive as long as `self`; `data` is the caller's own memory.
        unsafe { crate::shm::raw::copy_in(self.seg.payload_ptr(), offset, data) };
        Ok(())
    }

    fn check_atomic(&self, offset: usize, size: usize) -> Result<*mut u8, ShmError> {
        self.check(offset, size)?;
        if !offset.is_multiple_of(size) {
            return Err(ShmError::Misaligned {
                offset,
                align: size,
            });
        }
        // In bounds (checked above); the payload is 64-byte aligned, so `offset`'s
        // alignment is the pointer's.
        Ok(self.seg.payload_ptr().wrapping_add(offset))
    }

    /// The 8 bytes at `offset` as an atomic word, shared with every process that maps
    /// the segment: the way to build lock-free counters and flags in raw shared memory.
    ///
    /// # Errors
    /// [`ShmError::OutOfBounds`] past the end, [`ShmError::Misaligned`] when `offset`
    /// is not a multiple of 8, [`ShmError::Truncated`] when another process truncated a
    /// named segment's file.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::Ordering;
    ///
    /// let shm = shoal::SharedMemory::new(64)?;
    /// shm.atomic_u64(8)?.fetch_add(5, Ordering::Relaxed);
    /// assert_eq!(shm.atomic_u64(8)?.load(Ordering::Relaxed), 5);
    /// assert!(shm.atomic_u64(3).is_err());
    /// # Ok::<(), shoal::shm::ShmError>(())
    /// ```
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64, ShmError> {
        let ptr = self.check_atomic(offset, 8)?;
        // SAFETY: `ptr` is in bounds and 8-byte aligned (checked), inside a mapping that
        // lives as long as `&self`; every bit pattern is a valid AtomicU64, and atomics
        // are the intended way to share the word with other processes.
        Ok(unsafe { AtomicU64::from_ptr(ptr.cast()) })
    }

    /// The 4 bytes at `offset` as an atomic word; see [`atomic_u64`](Self::atomic_u64).
    ///
    /// # Errors
    /// [`ShmError::OutOfBounds`] past the end, [`ShmError::Misaligned`] when `offset`
    /// is not a multiple of 4, [`ShmError::Truncated`] when another process truncated a
    /// named segment's file.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use shoal::{Process, SharedMemory};
    ///
    /// fn count_up(shm: SharedMemory) {
    ///     let counter = shm.atomic_u32(4).unwrap();
    ///     for _ in 0..1000 {
    ///         counter.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    /// shoal::entry!(count_up);
    ///
    /// let shm = SharedMemory::new(8)?;
    /// let children = (0..2)
    ///     .map(|_| Process::new(count_up, shm.clone()).start())
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// for child in children {
    ///     child.join()?;
    /// }
    /// assert_eq!(shm.atomic_u32(4)?.load(Ordering::Relaxed), 2000);
    /// assert!(shm.atomic_u32(2).is_err()); // not 4-byte aligned
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32, ShmError> {
        let ptr = self.check_atomic(offset, 4)?;
        // SAFETY: as in `atomic_u64`, with 4-byte alignment.
        Ok(unsafe { AtomicU32::from_ptr(ptr.cast()) })
    }

    /// Removes the name now (other processes can no longer open it; mappings stay).
    /// Does nothing for anonymous segments.
    ///
    /// # Errors
    /// [`ShmError::Io`] when the name was already removed.
    ///
    /// # Examples
    /// ```
    /// use shoal::SharedMemory;
    ///
    /// let shm = SharedMemory::create(16)?;
    /// let name = shm.name().unwrap().to_owned();
    /// shm.unlink()?;
    /// assert!(SharedMemory::open(&name).is_err()); // the name is gone...
    /// shm.write(0, b"still mapped")?; // ...the memory is not
    /// assert!(shm.unlink().is_err()); // already removed
    /// # Ok::<(), shoal::shm::ShmError>(())
    /// ```
    pub fn unlink(&self) -> Result<(), ShmError> {
        self.seg.unlink()
    }
}

impl SharedMemory {
    /// Where the payload starts in the segment's file (after the shoal header), for
    /// programs that map the descriptor themselves ([`AsFd`](std::os::fd::AsFd)).
    ///
    /// # Examples
    /// ```
    /// let shm = shoal::SharedMemory::new(16)?;
    /// assert_eq!(shoal::SharedMemory::payload_offset(), 64);
    /// # Ok::<(), shoal::shm::ShmError>(())
    /// ```
    pub fn payload_offset() -> usize {
        crate::shm::segment::HEADER_LEN
    }
}

/// The segment's descriptor (a memfd, or the open `/dev/shm` file of a named segment):
/// another mapping of it sees the same bytes, at [`SharedMemory::payload_offset`].
///
/// # Examples
/// ```
/// use std::os::fd::AsFd;
///
/// let shm = shoal::SharedMemory::new(16)?;
/// let meta = std::fs::File::from(shm.as_fd().try_clone_to_owned()?).metadata()?;
/// assert!(meta.len() as usize >= shoal::SharedMemory::payload_offset() + 16);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl std::os::fd::AsFd for SharedMemory {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.seg.fd()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    fd: u32,
    name: Option<String>,
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fd =
            handoff::export_fd(self.seg.fd(), "SharedMemory").map_err(serde::ser::Error::custom)?;
        Wire {
            fd,
            name: self.seg.name().map(str::to_owned),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedMemory, D::Error> {
        let wire = Wire::deserialize(d)?;
        let fd = handoff::import_fd(wire.fd).map_err(serde::de::Error::custom)?;
        let seg =
            Segment::import(fd, wire.name, SegmentKind::Raw).map_err(serde::de::Error::custom)?;
        Ok(SharedMemory { seg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_is_page_rounded_and_bounds_checked() {
        let shm = SharedMemory::new(10).unwrap();
        assert!(shm.name().is_none());
        assert_eq!((shm.size() + 64) % crate::sys::page_size(), 0);
        shm.write(shm.size() - 2, b"ok").unwrap();
        let err = shm.write(shm.size() - 1, b"no").unwrap_err();
        assert!(matches!(err, ShmError::OutOfBounds { .. }), "{err}");
    }

    #[test]
    fn named_is_unlinked_by_its_creator() {
        let shm = SharedMemory::create(1).unwrap();
        let name = shm.name().unwrap().to_owned();
        assert!(name.starts_with(&format!("shoal-{}-", std::process::id())));
        drop(shm);
        let err = SharedMemory::open(&name).unwrap_err();
        assert!(
            matches!(&err, ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{err}"
        );
    }

    #[test]
    fn foreign_file_is_refused() {
        let name = format!("shoal-{}-foreign-test", std::process::id());
        let path = format!("/dev/shm/{name}");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let err = SharedMemory::open(&name).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, ShmError::NotShoal { .. }), "{err}");
        assert!(err.to_string().contains("not a shoal segment"), "{err}");
    }

    #[test]
    fn serializing_outside_a_handoff_is_an_error() {
        let shm = SharedMemory::new(1).unwrap();
        let err = crate::codec::encode(&shm).unwrap_err();
        assert!(err.to_string().contains("SharedMemory"), "{err}");
    }
}
