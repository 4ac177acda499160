//! A mapped segment with shoal's header: the unit every shared object lives in.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::shm::ShmError;
use crate::sys;

/// `"SHOALSEG"` read as a little-endian `u64`: the first eight bytes of every segment.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHOALSEG");

/// The layout version of [`Header`] and of every structure placed after it. A segment
/// of another version is refused, never misread.
pub(crate) const LAYOUT_VERSION: u32 = 1;

/// Bytes reserved for the header; payloads start here, 64-byte aligned.
pub(crate) const HEADER_LEN: usize = 64;

/// What a segment holds; stored in its header so that opening a segment as the wrong
/// kind of object is an error.
///
/// # Examples
/// ```
/// use shoal::shm::{inspect_named, SegmentKind};
///
/// let shm = shoal::SharedMemory::create(10)?;
/// let kind = inspect_named(shm.name().unwrap())?.kind;
/// assert_eq!(kind, SegmentKind::Raw);
/// assert_eq!(kind.to_string(), "raw");
/// # Ok::<(), shoal::shm::ShmError>(())
/// ```
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Raw bytes: [`crate::SharedMemory`].
    Raw = 1,
    /// A [`crate::Value`].
    Value = 2,
    /// An [`crate::Array`].
    Array = 3,
    /// A synchronisation primitive of [`crate::sync`].
    Sync = 4,
    /// A channel (queue or pipe ring).
    Channel = 5,
    /// The root of a [`crate::collections::SharedDict`] (its name and generation).
    Dict = 6,
    /// The root of a [`crate::collections::SharedList`] (its name and generation).
    List = 7,
    /// One generation of a shared dict's or list's entries.
    CollectionData = 8,
}

impl SegmentKind {
    fn from_u32(v: u32) -> Option<SegmentKind> {
        Some(match v {
            1 => SegmentKind::Raw,
            2 => SegmentKind::Value,
            3 => SegmentKind::Array,
            4 => SegmentKind::Sync,
            5 => SegmentKind::Channel,
            6 => SegmentKind::Dict,
            7 => SegmentKind::List,
            8 => SegmentKind::CollectionData,
            _ => return None,
        })
    }
}

impl fmt::Display for SegmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SegmentKind::Raw => "raw",
            SegmentKind::Value => "value",
            SegmentKind::Array => "array",
            SegmentKind::Sync => "sync",
            SegmentKind::Channel => "channel",
            SegmentKind::Dict => "dict",
            SegmentKind::List => "list",
            SegmentKind::CollectionData => "collection data",
        })
    }
}

/// The first 64 bytes of every segment.
///
/// `magic` is written last (release) by the creator, so a process that opens a named
/// segment while it is being created sees either no magic (and waits briefly) or a
/// complete header.
#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    version: u32,
    kind: u32,
    /// Bytes usable after the header.
    payload_len: u64,
    owner_pid: u32,
    _reserved: u32,
    created_unix_ms: u64,
    /// Free for the object that lives in the segment (for example an element size).
    pub(crate) tag: AtomicU32,
    /// Free flags for the object that lives in the segment (a typed value records its
    /// alignment and whether it has a lock). Zero in segments that do not use it.
    pub(crate) flags: AtomicU32,
    _pad: [u8; 16],
}

const _: () = {
    assert!(std::mem::size_of::<Header>() == HEADER_LEN);
    assert!(std::mem::offset_of!(Header, magic) == 0);
    assert!(std::mem::offset_of!(Header, version) == 8);
    assert!(std::mem::offset_of!(Header, kind) == 12);
    assert!(std::mem::offset_of!(Header, payload_len) == 16);
    assert!(std::mem::offset_of!(Header, owner_pid) == 24);
    assert!(std::mem::offset_of!(Header, created_unix_ms) == 32);
    assert!(std::mem::offset_of!(Header, tag) == 40);
    assert!(std::mem::offset_of!(Header, flags) == 44);
};

/// What a segment header says: its kind, size, owner and age.
///
/// # Examples
/// ```
/// use shoal::shm::inspect_named;
///
/// let shm = shoal::SharedMemory::create(1000)?;
/// let info = inspect_named(shm.name().unwrap())?;
/// assert_eq!(info.payload_len, shm.size());
/// assert_eq!(info.owner_pid, std::process::id());
/// assert!(info.created_unix_ms > 0);
/// # Ok::<(), shoal::shm::ShmError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// What the segment holds.
    pub kind: SegmentKind,
    /// Usable bytes after the header.
    pub payload_len: usize,
    /// The process that created the segment.
    pub owner_pid: u32,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
}

/// A mapped segment: descriptor, mapping and (for named ones) the name.
///
/// Shared through `Arc` by every object that lives in it; the mapping stays valid as
/// long as any of them does.
pub(crate) struct Segment {
    map: sys::Mapping,
    fd: OwnedFd,
    name: Option<String>,
    /// Whether this handle unlinks the name on drop (the creating handle does).
    unlink_on_drop: bool,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("len", &self.map.len())
            .finish()
    }
}

/// The total mapped size for a payload of `payload_len` bytes: header plus payload,
/// rounded up to whole pages.
fn total_len(payload_len: usize) -> Result<usize, ShmError> {
    let page = sys::page_size();
    HEADER_LEN
        .checked_add(payload_len.max(1))
        .and_then(|n| n.checked_next_multiple_of(page))
        .ok_or(ShmError::TooLarge {
            requested: payload_len,
        })
}

fn next_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "shoal-{}-{:x}{:05x}",
        std::process::id(),
        n,
        nanos & 0xfffff
    )
}

impl Segment {
    /// Creates an anonymous segment (memfd): freed by the kernel with its last user.
    pub(crate) fn anonymous(
        kind: SegmentKind,
        payload_len: usize,
    ) -> Result<Arc<Segment>, ShmError> {
        let len = total_len(payload_len)?;
        let fd = sys::memfd_create_sealed("shoal", len)
            .map_err(|e| ShmError::io("create an anonymous segment", None, e))?;
        let map =
            sys::Mapping::new(&fd, len).map_err(|e| ShmError::io("map a new segment", None, e))?;
        let seg = Segment {
            map,
            fd,
            name: None,
            unlink_on_drop: false,
        };
        seg.write_header(kind);
        Ok(Arc::new(seg))
    }

    /// Creates a named segment under `/dev/shm`; `None` picks `shoal-<pid>-<id>`.
    /// The returned handle unlinks the name when dropped.
    pub(crate) fn create_named(
        kind: SegmentKind,
        name: Option<&str>,
        payload_len: usize,
    ) -> Result<Arc<Segment>, ShmError> {
        Segment::create_named_init(kind, name, payload_len, |_| {})
    }

    /// [`create_named`](Segment::create_named), running `init` on the segment before
    /// its magic number is published: a process that opens the name while it is being
    /// created waits for the magic (see [`Header`]), so it sees the tag, the flags and
    /// the payload `init` wrote, never a half-made object.
    pub(crate) fn create_named_init(
        kind: SegmentKind,
        name: Option<&str>,
        payload_len: usize,
        init: impl FnOnce(&Segment),
    ) -> Result<Arc<Segment>, ShmError> {
        let len = total_len(payload_len)?;
        let name = match name {
            Some(n) => validate_name(n)?.to_owned(),
            None => next_name(),
        };
        let fd = sys::shm_create(&name, len).map_err(|e| ShmError::io("create", Some(&name), e))?;
        let map = match sys::Mapping::new(&fd, len) {
            Ok(m) => m,
            Err(e) => {
                let _ = sys::shm_unlink(&name);
                return Err(ShmError::io("map", Some(&name), e));
            }
        };
        let seg = Segment {
            map,
            fd,
            name: Some(name),
            unlink_on_drop: true,
        };
        seg.write_header_fields(kind);
        init(&seg);
        seg.publish();
        Ok(Arc::new(seg))
    }

    /// [`create_named_init`](Segment::create_named_init) for a segment that outlives
    /// this handle: dropping it does not unlink the name, and the header records
    /// `owner_pid` as the owner (`shoal gc` removes the segment once that process is
    /// gone). The segments of a shared container's later generations are made this way
    /// by whichever process grows it, on behalf of the container's creator.
    pub(crate) fn create_named_detached(
        kind: SegmentKind,
        name: &str,
        payload_len: usize,
        owner_pid: u32,
        init: impl FnOnce(&Segment),
    ) -> Result<Arc<Segment>, ShmError> {
        let len = total_len(payload_len)?;
        let name = validate_name(name)?.to_owned();
        let fd = sys::shm_create(&name, len).map_err(|e| ShmError::io("create", Some(&name), e))?;
        let map = match sys::Mapping::new(&fd, len) {
            Ok(m) => m,
            Err(e) => {
                let _ = sys::shm_unlink(&name);
                return Err(ShmError::io("map", Some(&name), e));
            }
        };
        let seg = Segment {
            map,
            fd,
            name: Some(name),
            unlink_on_drop: false,
        };
        seg.write_header_fields(kind);
        // SAFETY: as in `write_header_fields`: the magic is still zero, nobody reads it.
        unsafe { (*seg.map.as_ptr().cast::<Header>()).owner_pid = owner_pid };
        init(&seg);
        seg.publish();
        Ok(Arc::new(seg))
    }

    /// Opens the named segment `name`, checking that it is a shoal segment of this
    /// layout version holding `kind` (any kind when `None`).
    pub(crate) fn open_named(
        name: &str,
        kind: Option<SegmentKind>,
    ) -> Result<Arc<Segment>, ShmError> {
        validate_name(name)?;
        let (fd, len) =
            sys::shm_open_existing(name).map_err(|e| ShmError::io("open", Some(name), e))?;
        Segment::from_fd(fd, Some(name.to_owned()), len, kind)
    }

    /// Maps a segment received as a descriptor (from a parent process or a channel).
    pub(crate) fn from_fd(
        fd: OwnedFd,
        name: Option<String>,
        len: usize,
        kind: Option<SegmentKind>,
    ) -> Result<Arc<Segment>, ShmError> {
        let label = name.clone().unwrap_or_else(|| "<anonymous>".to_owned());
        if len < HEADER_LEN {
            return Err(ShmError::NotShoal {
                name: label,
                reason: format!("it is only {len} bytes long"),
            });
        }
        let map =
            sys::Mapping::new(&fd, len).map_err(|e| ShmError::io("map", name.as_deref(), e))?;
        let seg = Segment {
            map,
            fd,
            name,
            unlink_on_drop: false,
        };
        let info = seg.header_info()?;
        if let Some(want) = kind {
            if info.kind != want {
                return Err(ShmError::WrongKind {
                    name: label,
                    found: info.kind,
                    expected: want,
                });
            }
        }
        // Checked: a forged header may claim up to 2^64 - 1 bytes, and a wrapping sum
        // would let it through.
        let fits = HEADER_LEN
            .checked_add(info.payload_len)
            .is_some_and(|total| total <= len);
        if !fits {
            return Err(ShmError::SizeMismatch {
                name: label,
                claimed: info.payload_len as u64,
                file_len: len as u64,
            });
        }
        Ok(Arc::new(seg))
    }

    fn header(&self) -> &Header {
        // SAFETY: every mapping is at least one page (>= HEADER_LEN bytes), page aligned,
        // and `Header` is repr(C) plain data whose every bit pattern is valid; concurrent
        // writers only touch the atomic fields through atomics.
        unsafe { &*self.map.as_ptr().cast::<Header>() }
    }

    fn write_header(&self, kind: SegmentKind) {
        self.write_header_fields(kind);
        self.publish();
    }

    /// Stores the magic number (release): the header and whatever was written before are
    /// now visible to processes that read the magic (acquire).
    fn publish(&self) {
        self.header().magic.store(MAGIC, Ordering::Release);
    }

    fn write_header_fields(&self, kind: SegmentKind) {
        let ptr = self.map.as_ptr().cast::<Header>();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // SAFETY: the segment was just created by this process and no other process has
        // a valid header to read yet (magic is still zero), so these plain writes race
        // with nothing; the pointer is aligned and in bounds (see `header`).
        unsafe {
            (*ptr).version = LAYOUT_VERSION;
            (*ptr).kind = kind as u32;
            (*ptr).payload_len = (self.map.len() - HEADER_LEN) as u64;
            (*ptr).owner_pid = std::process::id();
            (*ptr).created_unix_ms = now;
        }
    }

    /// Reads and validates the header.
    pub(crate) fn header_info(&self) -> Result<SegmentInfo, ShmError> {
        let label = || {
            self.name
                .clone()
                .unwrap_or_else(|| "<anonymous>".to_owned())
        };
        let h = self.header();
        // A creator may still be writing the header of a named segment: give it a moment.
        let mut magic = h.magic.load(Ordering::Acquire);
        for _ in 0..100 {
            if magic != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            magic = h.magic.load(Ordering::Acquire);
        }
        if magic != MAGIC {
            return Err(ShmError::NotShoal {
                name: label(),
                reason: format!(
                    "its first bytes are {:#018x}, not shoal's magic number",
                    magic
                ),
            });
        }
        if h.version != LAYOUT_VERSION {
            return Err(ShmError::Version {
                name: label(),
                found: h.version,
                expected: LAYOUT_VERSION,
            });
        }
        let kind = SegmentKind::from_u32(h.kind).ok_or_else(|| ShmError::NotShoal {
            name: label(),
            reason: format!("its header names an unknown kind {}", h.kind),
        })?;
        Ok(SegmentInfo {
            kind,
            payload_len: h.payload_len as usize,
            owner_pid: h.owner_pid,
            created_unix_ms: h.created_unix_ms,
        })
    }

    /// The header's free word, for the object living in the segment.
    pub(crate) fn tag(&self) -> &AtomicU32 {
        &self.header().tag
    }

    /// The header's free flags, for the object living in the segment.
    pub(crate) fn flags(&self) -> &AtomicU32 {
        &self.header().flags
    }

    /// Checks that the file behind a named segment still covers the whole mapping.
    ///
    /// Any process of the same user may truncate a file in `/dev/shm`, and touching a
    /// mapped page past the new end raises `SIGBUS`; shoal's accessors of named segments
    /// call this first, so a truncation becomes [`ShmError::Truncated`]. Anonymous
    /// segments are sealed against shrinking and need no check (nor a system call).
    pub(crate) fn check_size(&self) -> Result<(), ShmError> {
        let Some(name) = &self.name else {
            return Ok(());
        };
        let len = sys::fd_len(&self.fd).map_err(|e| ShmError::io("inspect", Some(name), e))?;
        if len < self.map.len() {
            return Err(ShmError::Truncated {
                name: name.clone(),
                file_len: len as u64,
                mapped: self.map.len() as u64,
            });
        }
        Ok(())
    }

    /// The first payload byte (64-byte aligned).
    pub(crate) fn payload_ptr(&self) -> *mut u8 {
        // SAFETY: HEADER_LEN < mapping length (at least one page), so the result stays
        // inside the mapping.
        unsafe { self.map.as_ptr().add(HEADER_LEN) }
    }

    /// Usable payload bytes.
    pub(crate) fn payload_len(&self) -> usize {
        self.map.len() - HEADER_LEN
    }

    /// The name under `/dev/shm`, for named segments.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The descriptor behind the mapping.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Removes the segment's name now; later drops will not try again.
    pub(crate) fn unlink(&self) -> Result<(), ShmError> {
        match &self.name {
            Some(name) => sys::shm_unlink(name).map_err(|e| ShmError::io("unlink", Some(name), e)),
            None => Ok(()),
        }
    }

    /// Maps a segment from its descriptor as received through [`crate::handoff`].
    pub(crate) fn import(
        fd: OwnedFd,
        name: Option<String>,
        kind: SegmentKind,
    ) -> Result<Arc<Segment>, ShmError> {
        let len = sys::fd_len(&fd).map_err(|e| ShmError::io("inspect", name.as_deref(), e))?;
        Segment::from_fd(fd, name, len, Some(kind))
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            if let Some(name) = &self.name {
                // NotFound means someone unlinked it already: nothing to do.
                let _ = sys::shm_unlink(name);
            }
        }
    }
}

fn validate_name(name: &str) -> Result<&str, ShmError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.contains('/')
        && name != "."
        && name != ".."
        && !name.contains('\0');
    if ok {
        Ok(name)
    } else {
        Err(ShmError::InvalidName {
            name: name.to_owned(),
        })
    }
}

impl From<ShmError> for io::Error {
    fn from(e: ShmError) -> io::Error {
        let kind = match &e {
            ShmError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
