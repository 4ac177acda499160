//! Shared memory: segments, and the typed values and arrays that live in them.
//!
//! Every segment shoal lays out begins with a 64-byte header (magic number, layout
//! version, kind, sizes, owner pid), so that a foreign file or a segment written by
//! another version of shoal is refused with a clear error instead of being misread.
//! Segments are anonymous (`memfd`) by default and reach other processes as inherited
//! descriptors; named segments under `/dev/shm/shoal-<pid>-<id>` exist for unrelated
//! processes and are listed and collected by `shoal ls` / `shoal gc`.

mod array;
mod error;
mod raw;
mod registry;
mod segment;
mod shared_memory;
mod typed_wire;
mod value;

pub use array::{Array, ArrayGuard};
pub use error::ShmError;
pub use registry::{collect_dead, inspect_named, list_named, NamedSegment};
pub(crate) use segment::Segment;
pub use segment::{SegmentInfo, SegmentKind};
pub use shared_memory::SharedMemory;
pub use value::{Value, ValueGuard};
