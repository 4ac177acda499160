use std::fmt;
use std::io;

use crate::shm::SegmentKind;

/// Why a segment could not be created, opened or used.
///
/// # Examples
/// ```
/// use shoal::shm::ShmError;
///
/// let shm = shoal::SharedMemory::new(8)?;
/// let e = shm.write(shm.size(), b"x").unwrap_err();
/// assert!(matches!(e, ShmError::OutOfBounds { len: 1, .. }));
/// assert!(matches!(shoal::SharedMemory::open("a/b"), Err(ShmError::InvalidName { .. })));
/// # Ok::<(), ShmError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ShmError {
    /// The operating system refused an operation.
    Io {
        /// What shoal was doing, as a verb phrase ("open", "map a new segment").
        op: &'static str,
        /// The segment's name, for named segments.
        name: Option<String>,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a shoal segment (wrong magic number or impossible header).
    NotShoal {
        /// The segment's name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// The segment was laid out by another version of shoal.
    Version {
        /// The segment's name.
        name: String,
        /// The layout version in its header.
        found: u32,
        /// The layout version this build reads.
        expected: u32,
    },
    /// The segment's header claims more payload bytes than its file holds (a forged or
    /// damaged header, possibly claiming close to 2^64 bytes).
    SizeMismatch {
        /// The segment's name.
        name: String,
        /// The payload size in the header.
        claimed: u64,
        /// The size of the file, header included.
        file_len: u64,
    },
    /// Another process truncated the named segment's file after it was mapped here; its
    /// pages past the new end can no longer be touched (the kernel would raise `SIGBUS`),
    /// so shoal refuses the access.
    Truncated {
        /// The segment's name.
        name: String,
        /// The file's size now.
        file_len: u64,
        /// The size this process mapped.
        mapped: u64,
    },
    /// The segment holds another kind of object than the one asked for.
    WrongKind {
        /// The segment's name.
        name: String,
        /// What it holds.
        found: SegmentKind,
        /// What the caller asked for.
        expected: SegmentKind,
    },
    /// The segment's contents do not fit the type it is opened as.
    Layout {
        /// The segment's name.
        name: String,
        /// What does not fit.
        reason: String,
    },
    /// A name that cannot be a segment name (empty, with `/`, or too long).
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The requested size overflows the address space.
    TooLarge {
        /// The size asked for.
        requested: usize,
    },
    /// An atomic access at an offset that is not a multiple of its size.
    Misaligned {
        /// The offset asked for.
        offset: usize,
        /// The alignment the access needs.
        align: usize,
    },
    /// An access outside the segment.
    OutOfBounds {
        /// First byte of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// The segment's payload size.
        size: usize,
    },
}

impl ShmError {
    pub(crate) fn io(op: &'static str, name: Option<&str>, source: io::Error) -> ShmError {
        ShmError::Io {
            op,
            name: name.map(str::to_owned),
            source,
        }
    }
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmError::Io { op, name: Some(name), source } => {
                write!(f, "could not {op} shared memory segment {name:?}: {source}")
            }
            ShmError::Io { op, name: None, source } => {
                write!(f, "could not {op} shared memory: {source}")
            }
            ShmError::NotShoal { name, reason } => {
                write!(f, "segment {name:?} is not a shoal segment: {reason}")
            }
            ShmError::Version { name, found, expected } => write!(
                f,
                "segment {name:?} has layout version {found}, but this build of shoal reads version {expected}"
            ),
            ShmError::SizeMismatch { name, claimed, file_len } => write!(
                f,
                "segment {name:?} is damaged: its header claims {claimed} payload bytes, but its file holds only {file_len} bytes"
            ),
            ShmError::Truncated { name, file_len, mapped } => write!(
                f,
                "segment {name:?} was truncated by another process to {file_len} bytes, below the {mapped} bytes mapped here"
            ),
            ShmError::WrongKind { name, found, expected } => write!(
                f,
                "segment {name:?} holds a {found} object, not a {expected} object"
            ),
            ShmError::Layout { name, reason } => write!(f, "segment {name:?} does not fit: {reason}"),
            ShmError::InvalidName { name } => write!(
                f,
                "{name:?} is not a valid segment name (it must be 1 to 200 characters without '/')"
            ),
            ShmError::TooLarge { requested } => {
                write!(f, "a segment of {requested} bytes is larger than the address space")
            }
            ShmError::Misaligned { offset, align } => write!(
                f,
                "offset {offset} is not a multiple of {align}, as an atomic access there needs"
            ),
            ShmError::OutOfBounds { offset, len, size } => write!(
                f,
                "access of {len} bytes at offset {offset} is outside the {size}-byte segment"
            ),
        }
    }
}

impl std::error::Error for ShmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShmError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
