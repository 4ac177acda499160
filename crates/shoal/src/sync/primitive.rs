//! Where every synchronisation primitive lives: one anonymous [`Segment`] each, tagged
//! with the primitive it holds, handed to other processes as a descriptor and checked
//! when it comes back.
#![deny(unsafe_code)]

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handoff;
use crate::shm::{Segment, SegmentKind};
use crate::sync::error::a;
use crate::sync::SyncError;

/// The primitives, as recorded in the segment header's tag word.
///
/// Tags are four ASCII letters read as a little-endian `u32`, so that they cannot be
/// mistaken for the small numbers other segment users store there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Primitive {
    Lock,
    RLock,
    Condition,
    Semaphore,
    BoundedSemaphore,
    Event,
    Barrier,
}

impl Primitive {
    const ALL: [Primitive; 7] = [
        Primitive::Lock,
        Primitive::RLock,
        Primitive::Condition,
        Primitive::Semaphore,
        Primitive::BoundedSemaphore,
        Primitive::Event,
        Primitive::Barrier,
    ];

    pub(crate) const fn tag(self) -> u32 {
        u32::from_le_bytes(*match self {
            Primitive::Lock => b"LOCK",
            Primitive::RLock => b"RLCK",
            Primitive::Condition => b"COND",
            Primitive::Semaphore => b"SEMA",
            Primitive::BoundedSemaphore => b"BSEM",
            Primitive::Event => b"EVNT",
            Primitive::Barrier => b"BARR",
        })
    }

    /// The name in error messages ("re-entrant lock").
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Primitive::Lock => "lock",
            Primitive::RLock => "re-entrant lock",
            Primitive::Condition => "condition",
            Primitive::Semaphore => "semaphore",
            Primitive::BoundedSemaphore => "bounded semaphore",
            Primitive::Event => "event",
            Primitive::Barrier => "barrier",
        }
    }

    /// The Rust type, for the handoff's messages ("RLock").
    const fn type_name(self) -> &'static str {
        match self {
            Primitive::Lock => "Lock",
            Primitive::RLock => "RLock",
            Primitive::Condition => "Condition",
            Primitive::Semaphore => "Semaphore",
            Primitive::BoundedSemaphore => "BoundedSemaphore",
            Primitive::Event => "Event",
            Primitive::Barrier => "Barrier",
        }
    }

    /// What creating one is called in errors.
    const fn creating(self) -> &'static str {
        match self {
            Primitive::Lock => "create a lock",
            Primitive::RLock => "create a re-entrant lock",
            Primitive::Condition => "create a condition",
            Primitive::Semaphore => "create a semaphore",
            Primitive::BoundedSemaphore => "create a bounded semaphore",
            Primitive::Event => "create an event",
            Primitive::Barrier => "create a barrier",
        }
    }

    /// What receiving one is called in errors.
    const fn receiving(self) -> &'static str {
        match self {
            Primitive::Lock => "receive a lock",
            Primitive::RLock => "receive a re-entrant lock",
            Primitive::Condition => "receive a condition",
            Primitive::Semaphore => "receive a semaphore",
            Primitive::BoundedSemaphore => "receive a bounded semaphore",
            Primitive::Event => "receive an event",
            Primitive::Barrier => "receive a barrier",
        }
    }

    /// "a semaphore", "an event", or the raw tag for other objects.
    fn describe_tag(tag: u32) -> String {
        match Primitive::ALL.iter().find(|p| p.tag() == tag) {
            Some(p) => a(p.name()),
            None => {
                let bytes = tag.to_le_bytes();
                if bytes.iter().all(u8::is_ascii_graphic) {
                    let name: String = bytes.iter().map(|&b| char::from(b)).collect();
                    format!("another primitive ({name:?})")
                } else {
                    format!("another object (tag {tag:#010x})")
                }
            }
        }
    }

    /// Creates a zero-filled anonymous segment for this primitive with `len` payload
    /// bytes and tags it. The segment is private to this process until it is handed
    /// off, so the caller may initialise its state with relaxed stores.
    pub(crate) fn create(self, len: usize) -> Result<Arc<Segment>, SyncError> {
        let seg = Segment::anonymous(SegmentKind::Sync, len)
            .map_err(|e| SyncError::shm(self.creating(), e))?;
        seg.tag().store(self.tag(), Ordering::Release);
        Ok(seg)
    }

    /// Creates a zero-filled named segment `name` for this primitive, for an object that
    /// unrelated processes open by name (the lock of a named [`crate::Value`]). The
    /// handle unlinks the name when dropped.
    pub(crate) fn create_named(self, name: &str, len: usize) -> Result<Arc<Segment>, SyncError> {
        let seg = Segment::create_named_init(SegmentKind::Sync, Some(name), len, |seg| {
            seg.tag().store(self.tag(), Ordering::Relaxed);
        })
        .map_err(|e| SyncError::shm(self.creating(), e))?;
        Ok(seg)
    }

    /// [`create_named`](Primitive::create_named) for a segment whose name outlives the
    /// handle (its owner removes it; see [`Segment::create_named_detached`]).
    pub(crate) fn create_named_detached(
        self,
        name: &str,
        len: usize,
    ) -> Result<Arc<Segment>, SyncError> {
        let seg = Segment::create_named_detached(
            SegmentKind::Sync,
            name,
            len,
            std::process::id(),
            |seg| seg.tag().store(self.tag(), Ordering::Relaxed),
        )
        .map_err(|e| SyncError::shm(self.creating(), e))?;
        Ok(seg)
    }

    /// Opens the named segment `name` and checks it as [`import`](Primitive::import)
    /// does.
    pub(crate) fn open_named(self, name: &str, len: usize) -> Result<Arc<Segment>, SyncError> {
        let seg = Segment::open_named(name, Some(SegmentKind::Sync))
            .map_err(|e| SyncError::shm(self.receiving(), e))?;
        self.check(seg, len)
    }

    /// Maps a received descriptor and checks that it holds this primitive with at least
    /// `len` payload bytes.
    pub(crate) fn import(self, fd: OwnedFd, len: usize) -> Result<Arc<Segment>, SyncError> {
        let seg = Segment::import(fd, None, SegmentKind::Sync)
            .map_err(|e| SyncError::shm(self.receiving(), e))?;
        self.check(seg, len)
    }

    fn check(self, seg: Arc<Segment>, len: usize) -> Result<Arc<Segment>, SyncError> {
        let tag = seg.tag().load(Ordering::Acquire);
        if tag != self.tag() {
            return Err(SyncError::WrongPrimitive {
                expected: self.name(),
                found: Primitive::describe_tag(tag),
            });
        }
        if seg.payload_len() < len {
            return Err(SyncError::TooSmall {
                primitive: self.name(),
                len: seg.payload_len(),
                needed: len,
            });
        }
        Ok(seg)
    }

    /// Hands `seg` to the handoff in progress; the index of its descriptor travels in
    /// the message.
    pub(crate) fn export_fd<E: serde::ser::Error>(self, seg: &Segment) -> Result<u32, E> {
        handoff::export_fd(seg.fd(), self.type_name()).map_err(E::custom)
    }

    /// Takes descriptor `fd` back from the handoff and checks it (see `import`).
    pub(crate) fn import_fd<E: serde::de::Error>(
        self,
        fd: u32,
        len: usize,
    ) -> Result<Arc<Segment>, E> {
        let fd = handoff::import_fd(fd).map_err(E::custom)?;
        self.import(fd, len).map_err(E::custom)
    }

    /// `Serialize` for a primitive whose message is its descriptor alone.
    pub(crate) fn serialize<S: Serializer>(self, seg: &Segment, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            fd: self.export_fd(seg)?,
        }
        .serialize(s)
    }

    /// `Deserialize` for a primitive whose message is its descriptor alone.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        self,
        d: D,
        len: usize,
    ) -> Result<Arc<Segment>, D::Error> {
        let wire = Wire::deserialize(d)?;
        self.import_fd(wire.fd, len)
    }
}

/// What travels in the message: the index of the descriptor in the handoff.
#[derive(Serialize, Deserialize)]
struct Wire {
    fd: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_distinct_and_described() {
        for (i, a) in Primitive::ALL.iter().enumerate() {
            for b in &Primitive::ALL[i + 1..] {
                assert_ne!(a.tag(), b.tag());
            }
        }
        assert_eq!(Primitive::describe_tag(Primitive::Event.tag()), "an event");
        assert_eq!(
            Primitive::describe_tag(Primitive::RLock.tag()),
            "a re-entrant lock"
        );
        assert!(Primitive::describe_tag(7).contains("0x00000007"));
        assert_eq!(
            Primitive::describe_tag(u32::from_le_bytes(*b"QUEU")),
            "another primitive (\"QUEU\")"
        );
    }

    #[test]
    fn wrong_tag_and_short_segment_are_refused() {
        let seg = Primitive::Event.create(8).unwrap();
        let fd = seg.fd().try_clone_to_owned().unwrap();
        let err = Primitive::Barrier.import(fd, 8).unwrap_err();
        assert!(matches!(err, SyncError::WrongPrimitive { .. }), "{err}");
        assert!(
            err.to_string().contains("holds an event, not a barrier"),
            "{err}"
        );
        let fd = seg.fd().try_clone_to_owned().unwrap();
        let err = Primitive::Event.import(fd, 1 << 20).unwrap_err();
        assert!(matches!(err, SyncError::TooSmall { .. }), "{err}");
    }
}
