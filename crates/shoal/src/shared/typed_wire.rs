//! How a [`crate::Value`] or [`crate::Array`] reaches another process: as the
//! descriptor of its segment and its lock (a handoff), or by name (named segments, the
//! lock in a second named segment beside it), checked on arrival against the element
//! type.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handoff;
use crate::shm::{Segment, SegmentKind, ShmError};
use crate::sync::{Lock, SyncError};

#[derive(Serialize, Deserialize)]
struct Wire {
    fd: u32,
    /// A named segment's name: the receiver checks the file's size before accesses too.
    name: Option<String>,
    lock: Option<Lock>,
}

/// Serializes a typed segment through the handoff in progress; `what` names the type in
/// the error given outside a handoff.
pub(crate) fn serialize<S: Serializer>(
    s: S,
    seg: &Segment,
    lock: &Option<Lock>,
    what: &str,
) -> Result<S::Ok, S::Error> {
    let fd = handoff::export_fd(seg.fd(), what).map_err(serde::ser::Error::custom)?;
    Wire {
        fd,
        name: seg.name().map(str::to_owned),
        lock: lock.clone(),
    }
    .serialize(s)
}

/// Takes a typed segment of `kind` back from the handoff, refusing one whose element
/// size (recorded in the header tag) is not `size_of::<T>()`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>, T>(
    d: D,
    kind: SegmentKind,
) -> Result<(Arc<Segment>, Option<Lock>), D::Error> {
    let wire = Wire::deserialize(d)?;
    let fd = handoff::import_fd(wire.fd).map_err(serde::de::Error::custom)?;
    let seg = Segment::import(fd, wire.name, kind).map_err(serde::de::Error::custom)?;
    let size = std::mem::size_of::<T>();
    let found = seg.tag().load(Ordering::Acquire) as usize;
    if found != size || seg.payload_len() < size {
        return Err(serde::de::Error::custom(layout_error(format!(
            "it holds elements of {found} bytes, not {size} bytes like {}",
            std::any::type_name::<T>()
        ))));
    }
    Ok((seg, wire.lock))
}

/// The error for a received segment whose contents do not fit the type.
pub(crate) fn layout_error(reason: String) -> ShmError {
    ShmError::Layout {
        name: "<anonymous>".to_owned(),
        reason,
    }
}

/// Flag of a typed segment's header: the object has a lock, in the named segment
/// [`lock_name`] (named objects) or travelling beside it (anonymous ones).
pub(crate) const HAS_LOCK: u32 = 1;

/// The header flags of a typed segment holding `T`s: [`HAS_LOCK`], and the base-2
/// logarithm of `T`'s alignment in bits 8 to 15 (so that a type of the right size but
/// another alignment is refused).
pub(crate) fn flags_for<T>(lock: bool) -> u32 {
    let align_log2 = std::mem::align_of::<T>().trailing_zeros();
    u32::from(lock) | (align_log2 << 8)
}

/// The name of the lock segment of the named typed segment `name`.
pub(crate) fn lock_name(name: &str) -> String {
    format!("{name}.lock")
}

/// Creates the named segment `name` of `kind` with `payload` bytes for `T`s, with a
/// lock in the named segment [`lock_name`]`(name)` when `with_lock`; `init` fills the
/// payload before the segment is published (see [`Segment::create_named_init`]).
///
/// The lock comes first, so that a process that finds the value also finds its lock.
/// Both handles unlink their names when dropped.
pub(crate) fn create_named<T>(
    what: &'static str,
    kind: SegmentKind,
    name: &str,
    payload: usize,
    with_lock: bool,
    init: impl FnOnce(&Segment),
) -> Result<(Arc<Segment>, Option<Lock>), SyncError> {
    let lock = match with_lock {
        true => Some(Lock::create_named(&lock_name(name))?),
        false => None,
    };
    let seg = Segment::create_named_init(kind, Some(name), payload, |seg| {
        seg.tag()
            .store(std::mem::size_of::<T>() as u32, Ordering::Relaxed);
        seg.flags()
            .store(flags_for::<T>(with_lock), Ordering::Relaxed);
        init(seg);
    })
    .map_err(|e| SyncError::shm(what, e))?;
    Ok((seg, lock))
}

/// Opens the named segment `name` of `kind` holding `T`s, and its lock when it has one.
///
/// # Errors
/// [`SyncError::Shm`] wrapping [`ShmError::Layout`] when the segment holds elements of
/// another size or alignment than `T`'s, or says it has a lock that cannot be opened;
/// the errors of [`Segment::open_named`] otherwise.
pub(crate) fn open_named<T>(
    what: &'static str,
    kind: SegmentKind,
    name: &str,
) -> Result<(Arc<Segment>, Option<Lock>), SyncError> {
    let fail = |reason: String| {
        SyncError::shm(
            what,
            ShmError::Layout {
                name: name.to_owned(),
                reason,
            },
        )
    };
    let seg = Segment::open_named(name, Some(kind)).map_err(|e| SyncError::shm(what, e))?;
    let size = std::mem::size_of::<T>();
    let found = seg.tag().load(Ordering::Acquire) as usize;
    let type_name = std::any::type_name::<T>();
    if found != size || seg.payload_len() < size {
        return Err(fail(format!(
            "it holds elements of {found} bytes, not {size} bytes like {type_name}"
        )));
    }
    let flags = seg.flags().load(Ordering::Acquire);
    let want = flags_for::<T>(false) >> 8;
    if flags >> 8 != want {
        return Err(fail(format!(
            "it holds elements aligned to {} bytes, not {} bytes like {type_name}",
            1u64 << ((flags >> 8) & 63),
            1u64 << want
        )));
    }
    let lock = if flags & HAS_LOCK != 0 {
        let lock_name = lock_name(name);
        let lock = Lock::open_named(&lock_name).map_err(|e| {
            fail(format!(
                "it has a lock, but its lock segment {lock_name:?} cannot be opened: {e}"
            ))
        })?;
        Some(lock)
    } else {
        None
    };
    seg.check_size().map_err(|e| SyncError::shm(what, e))?;
    Ok((seg, lock))
}

/// Checks that neither a typed segment nor its lock's segment was truncated (named
/// segments only: see [`Segment::check_size`]).
pub(crate) fn check_intact(seg: &Segment, lock: Option<&Lock>) -> Result<(), ShmError> {
    seg.check_size()?;
    match lock {
        Some(l) => l.raw().segment().check_size(),
        None => Ok(()),
    }
}
