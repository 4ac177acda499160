//! How a [`crate::Value`] or [`crate::Array`] travels to another process: the
//! descriptor of its segment and its lock, checked on arrival against the element type.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handoff;
use crate::shm::{Segment, SegmentKind, ShmError};
use crate::sync::Lock;

#[derive(Serialize, Deserialize)]
struct Wire {
    fd: u32,
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
    let seg = Segment::import(fd, None, kind).map_err(serde::de::Error::custom)?;
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
