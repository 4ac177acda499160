//! Containers in shared memory: [`SharedDict`] and [`SharedList`], reached by name from
//! any process on the machine, robust to a process killed in the middle of an update.
//!
//! They replace Python's `Manager().dict()` and `Manager().list()` without a server:
//! every operation is a few memory accesses under a robust lock in the container's
//! own segments, in the calling process.
//!
//! # Hello, shared dict
//!
//! ```
//! use shoal::collections::SharedDict;
//!
//! let name = format!("shoal-doc-collections-{}", std::process::id());
//! let config: SharedDict<String, (u32, String)> = SharedDict::create_named(&name)?;
//! config.insert("db", &(5432, "localhost".to_owned()))?;
//!
//! // In another process, knowing only the name:
//! let seen: SharedDict<String, (u32, String)> = SharedDict::open(&name)?;
//! assert_eq!(seen.get("db")?, Some((5432, "localhost".to_owned())));
//! # Ok::<(), shoal::collections::CollectionError>(())
//! ```
//!
//! # Segments
//!
//! A container named `N` lives in `/dev/shm/N` (its root: layout version, value
//! format, current generation), `/dev/shm/N.lock` (its lock) and `/dev/shm/N.g<generation>`
//! (its entries). When the entries outgrow their segment, the process that needs room
//! copies the live entries into `N.g<generation+1>` and publishes it with one store in the
//! root; the others follow on their next operation. `shoal ls` lists the three kinds of
//! segment (`dict`, `list`, `collection data`); they all record the container's creator
//! as their owner, which removes them when its handle is dropped, and `shoal gc` removes
//! them once that process is gone.
//!
//! # Formats and other languages
//!
//! Keys of a dict are encoded with MessagePack and compared by their bytes. Values (and
//! list items) are stored in the container's [`Format`], recorded in its root:
//! bincode by default, [`Format::MessagePack`] or JSON to share it with other
//! languages, [`Format::Pickle`] and [`Format::Raw`] for Python's `shoal.SharedDict`
//! and `shoal.SharedList` (which a Rust program reads as bytes with [`RawDict`] and
//! [`RawList`]). Opening a container in a format it does not hold is
//! [`CollectionError::WrongFormat`].
//!
//! # Truncated files
//!
//! Another process of the same user may truncate a container's files, and touching a
//! mapped page past the new end raises `SIGBUS`. A handle checks the sizes of the files
//! it maps (one `fstat` each) when it maps a generation and then at most every 10 ms,
//! not on every operation: an `fstat` costs about a microsecond, more than a whole
//! lookup. A truncation between two checks is not caught, the case
//! [`shm`](crate::shm) leaves open for any access racing a truncation.
//!
//! # Versions
//!
//! The root records the containers' own layout version (besides the segment header's):
//! a container laid out by another version of shoal is refused with
//! [`CollectionError::Version`]. It also holds an update counter
//! ([`RawDict::version`]) that every update moves, which lets a reader keep what it
//! decoded while the counter stands (Python's `shoal.SharedDict` does so for immutable
//! values).

mod arena;
mod dict;
mod error;
mod layout;
mod list;

pub use dict::{RawDict, RawEntry, SharedDict};
pub use error::CollectionError;
pub use list::{RawList, SharedList};

use crate::codec::Codec;

/// How a container's values are stored, recorded in its header.
///
/// # Examples
/// ```
/// use shoal::codec::Codec;
/// use shoal::collections::Format;
///
/// assert_eq!(Format::from_codec(Codec::MessagePack), Format::MessagePack);
/// assert_eq!(Format::Pickle.codec(), None); // only Python reads pickles
/// assert_eq!(Format::Raw.name(), "raw bytes");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// bincode ([`Codec::Bincode`]), the default of Rust containers.
    Bincode,
    /// JSON ([`Codec::Json`]).
    Json,
    /// MessagePack ([`Codec::MessagePack`]), readable by Python's `shoal.SharedDict`.
    MessagePack,
    /// Bytes as given: Python's `codec="raw"`.
    Raw,
    /// Python pickles: Python's default `codec="pickle"`.
    Pickle,
}

impl Format {
    /// The format's number in a container's root.
    pub fn id(self) -> u32 {
        match self {
            Format::Bincode => 1,
            Format::Json => 2,
            Format::MessagePack => 3,
            Format::Raw => 16,
            Format::Pickle => 17,
        }
    }

    /// The format with this number.
    pub fn from_id(id: u32) -> Option<Format> {
        Some(match id {
            1 => Format::Bincode,
            2 => Format::Json,
            3 => Format::MessagePack,
            16 => Format::Raw,
            17 => Format::Pickle,
            _ => return None,
        })
    }

    /// The format of values encoded with `codec`.
    pub fn from_codec(codec: Codec) -> Format {
        match codec {
            Codec::Json => Format::Json,
            Codec::MessagePack => Format::MessagePack,
            _ => Format::Bincode,
        }
    }

    /// The serde codec of this format; `None` for raw bytes and pickles.
    pub fn codec(self) -> Option<Codec> {
        match self {
            Format::Bincode => Some(Codec::Bincode),
            Format::Json => Some(Codec::Json),
            Format::MessagePack => Some(Codec::MessagePack),
            Format::Raw | Format::Pickle => None,
        }
    }

    /// The format's name, as errors show it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Bincode => "bincode",
            Format::Json => "JSON",
            Format::MessagePack => "MessagePack",
            Format::Raw => "raw bytes",
            Format::Pickle => "pickled",
        }
    }
}
