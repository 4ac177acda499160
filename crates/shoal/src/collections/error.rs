//! Why an operation on a shared container failed.

use std::fmt;

use crate::codec::CodecError;
use crate::collections::Format;
use crate::shm::ShmError;
use crate::sync::SyncError;

/// Why a [`SharedDict`](crate::collections::SharedDict) or
/// [`SharedList`](crate::collections::SharedList) operation failed.
///
/// # Examples
/// ```
/// use shoal::collections::{CollectionError, SharedList};
///
/// let list: SharedList<u32> = SharedList::new()?;
/// let e = list.get(3).unwrap_err();
/// assert!(matches!(e, CollectionError::IndexOutOfRange { index: 3, len: 0 }));
/// assert_eq!(e.to_string(), "index 3 is out of range for a shared list of 0 items");
/// # Ok::<(), CollectionError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CollectionError {
    /// A segment could not be created, opened or checked.
    Shm {
        /// What shoal was doing ("open shared dict \"x\"").
        context: String,
        /// The underlying error.
        source: ShmError,
    },
    /// The container's lock could not be created or opened.
    Sync {
        /// What shoal was doing.
        context: String,
        /// The underlying error.
        source: SyncError,
    },
    /// The container was laid out by another version of shoal.
    Version {
        /// The segment's name.
        name: String,
        /// The layout version in its header.
        found: u32,
        /// The layout version this build reads.
        expected: u32,
    },
    /// The container's values are stored in another format than the one asked for.
    WrongFormat {
        /// The container's name.
        name: String,
        /// The format in its header.
        found: Format,
        /// The format the caller asked for.
        expected: Format,
    },
    /// The container's segments hold something impossible (damaged or forged).
    Corrupt {
        /// The segment's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A key or value could not be encoded or decoded.
    Codec {
        /// The container's name.
        name: String,
        /// The underlying error.
        source: CodecError,
    },
    /// A list index past the end.
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// A key or value larger than an entry can hold (4 GiB).
    TooLarge {
        /// Its size in bytes.
        len: usize,
    },
}

impl fmt::Display for CollectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectionError::Shm { context, source } => write!(f, "could not {context}: {source}"),
            CollectionError::Sync { context, source } => write!(f, "could not {context}: {source}"),
            CollectionError::Version {
                name,
                found,
                expected,
            } => write!(
                f,
                "shared container {name:?} has container layout version {found}, but this build of shoal reads version {expected}"
            ),
            CollectionError::WrongFormat {
                name,
                found,
                expected,
            } => write!(
                f,
                "shared container {name:?} stores {} values, not {} values",
                found.name(),
                expected.name()
            ),
            CollectionError::Corrupt { name, reason } => {
                write!(f, "shared container segment {name:?} is damaged: {reason}")
            }
            CollectionError::Codec { name, source } => {
                write!(f, "shared container {name:?}: {source}")
            }
            CollectionError::IndexOutOfRange { index, len } => write!(
                f,
                "index {index} is out of range for a shared list of {len} items"
            ),
            CollectionError::TooLarge { len } => write!(
                f,
                "a key or value of {len} bytes is larger than a shared container entry can hold (4 GiB)"
            ),
        }
    }
}

impl std::error::Error for CollectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CollectionError::Shm { source, .. } => Some(source),
            CollectionError::Sync { source, .. } => Some(source),
            CollectionError::Codec { source, .. } => Some(source),
            _ => None,
        }
    }
}
