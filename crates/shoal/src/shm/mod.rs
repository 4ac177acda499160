//! Shared memory: segments and their layout, below every object that lives in one.
//!
//! Every segment shoal lays out begins with a 64-byte header (magic number, layout
//! version, kind, sizes, owner pid), so that a foreign file or a segment written by
//! another version of shoal is refused with a clear error instead of being misread.
//! Segments are anonymous (`memfd`) by default and reach other processes as inherited
//! descriptors; named segments under `/dev/shm/shoal-<pid>-<id>` exist for unrelated
//! processes and are listed and collected by `shoal ls` / `shoal gc`.
//!
//! [`SharedMemory`], [`Value`] and [`Array`] can all be created under a name and opened
//! by name from an unrelated process (a value's or array's lock lives beside it, in
//! `/dev/shm/<name>.lock`); opening checks the kind, the element size and alignment,
//! and that the header's sizes fit the file ([`ShmError::SizeMismatch`] otherwise).
//!
//! # Truncated named segments
//!
//! Anonymous segments are sealed against shrinking. A named segment is a file any
//! process of the same user may truncate, and touching a mapped page past the new end
//! raises `SIGBUS`. So every access shoal makes to a named segment first checks the
//! file's size (one `fstat`): [`SharedMemory`]'s accessors, [`Array::set`],
//! [`Array::try_get`], [`Value::try_load`] and [`Value::try_store`] return
//! [`ShmError::Truncated`]; the accessors that cannot return an error ([`Value::load`],
//! [`Array::get`], the `lock` methods) panic with it. The kernel offers no way to stop
//! the truncation itself, so two cases stay uncovered: a truncation racing an access
//! already past its check, and accesses through raw pointers or references taken
//! before the truncation ([`SharedMemory::as_ptr`], the atomic views, a held guard).
//!
//! [`Value`]: crate::Value
//! [`Value::load`]: crate::Value::load
//! [`Value::try_load`]: crate::Value::try_load
//! [`Value::try_store`]: crate::Value::try_store
//! [`Array`]: crate::Array
//! [`Array::get`]: crate::Array::get
//! [`Array::set`]: crate::Array::set
//! [`Array::try_get`]: crate::Array::try_get

mod error;
mod raw;
mod registry;
mod segment;
mod shared_memory;

pub use error::ShmError;
pub(crate) use raw::{copy_in, copy_out};
pub use registry::{collect_dead, inspect_named, list_named, NamedSegment};
pub(crate) use segment::{PayloadState, Segment};
pub use segment::{SegmentInfo, SegmentKind};
pub use shared_memory::SharedMemory;
