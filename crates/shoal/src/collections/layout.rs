//! The in-segment layout of shared containers, and the only code of `collections` that
//! touches mapped memory.
//!
//! A container named `N` is three kinds of named segment:
//!
//! | segment      | kind                               | holds                                   |
//! |--------------|------------------------------------|-----------------------------------------|
//! | `N`          | [`SegmentKind::Dict`] / `List`     | [`RootState`]: layout version, value format, current generation |
//! | `N.lock`     | `Sync`                             | the robust lock every update holds       |
//! | `N.g<generation>`   | [`SegmentKind::CollectionData`]    | [`DataHeader`], then the entries         |
//!
//! A generation's segment never shrinks and its entries, once written, never change:
//! an update writes a new entry past `heap_used` and publishes it with one atomic
//! store (a dict slot, a list index word, or the root's generation when the container
//! moves to a bigger segment). A process killed at any instant leaves at worst bytes
//! past `heap_used` or an unpublished segment: never a half-written entry that a reader
//! could see.
//!
//! Every offset read from shared memory is checked against the mapping before use: a
//! damaged or forged segment gives [`CollectionError::Corrupt`], never undefined
//! behaviour.
#![allow(unsafe_code)]

use std::mem::offset_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::collections::CollectionError;
use crate::shm::{Segment, SegmentKind};

/// `"SHOALCOL"`: the first word of a container's root payload.
pub(crate) const ROOT_MAGIC: u64 = u64::from_le_bytes(*b"SHOALCOL");
/// `"SHOALGEN"`: the first word of a generation's payload.
pub(crate) const DATA_MAGIC: u64 = u64::from_le_bytes(*b"SHOALGEN");
/// The layout version of [`RootState`], [`DataHeader`] and the entries (and of the key
/// hash, xxh3-64). A container of another version is refused with
/// [`CollectionError::Version`].
pub(crate) const COLLECTION_LAYOUT_VERSION: u32 = 1;

/// The root payload: what every handle reads first.
#[repr(C)]
pub(crate) struct RootState {
    pub(crate) magic: AtomicU64,
    pub(crate) version: u32,
    /// The value format's number ([`crate::collections::Format::id`]).
    pub(crate) format: u32,
    /// The generation whose segment holds the entries; changed only under the lock.
    pub(crate) generation: AtomicU64,
    /// The creating process: later generations are recorded as its segments.
    pub(crate) creator_pid: u32,
    pub(crate) _reserved: u32,
    /// Bumped to odd before every update and to even after it (a seqlock's counter):
    /// a reader that saw the same even value twice saw no update in between. A holder
    /// killed mid-update leaves it odd until the next locker repairs it.
    pub(crate) updates: AtomicU64,
    pub(crate) _pad: [u64; 3],
}

pub(crate) const ROOT_LEN: usize = std::mem::size_of::<RootState>();

const _: () = {
    assert!(offset_of!(RootState, magic) == 0);
    assert!(offset_of!(RootState, version) == 8);
    assert!(offset_of!(RootState, format) == 12);
    assert!(offset_of!(RootState, generation) == 16);
    assert!(offset_of!(RootState, creator_pid) == 24);
    assert!(offset_of!(RootState, updates) == 32);
    assert!(ROOT_LEN == 64);
};

/// Word offsets (in bytes) of a generation's header fields, at the start of its payload.
///
/// | offset | field       | meaning                                                      |
/// |--------|-------------|--------------------------------------------------------------|
/// | 0      | magic       | [`DATA_MAGIC`]                                               |
/// | 8      | version     | [`COLLECTION_LAYOUT_VERSION`] (low 32 bits), kind (high 32)  |
/// | 16     | generation         | the generation number (matches the segment's name)           |
/// | 24     | slots       | dict: number of hash slots (a power of two); list: 0         |
/// | 32     | heap_used   | first free byte of the entry heap (offset in the payload)    |
/// | 40     | len         | dict: live entries (repaired after a holder died); list: 0   |
/// | 48     | used        | dict: non-empty slots, tombstones included; list: index block |
/// | 56     | reserved    |                                                              |
pub(crate) struct DataHeader;

impl DataHeader {
    pub(crate) const MAGIC: usize = 0;
    pub(crate) const VERSION: usize = 8;
    pub(crate) const GEN: usize = 16;
    pub(crate) const SLOTS: usize = 24;
    pub(crate) const HEAP_USED: usize = 32;
    pub(crate) const LEN: usize = 40;
    pub(crate) const USED: usize = 48;
    /// Bytes of the header; slots or the heap follow.
    pub(crate) const SIZE: usize = 64;
}

/// The kind word of a dict's generation.
pub(crate) const DATA_KIND_DICT: u64 = 1;
/// The kind word of a list's generation.
pub(crate) const DATA_KIND_LIST: u64 = 2;

/// One mapped generation: bounds-checked views of its payload.
pub(crate) struct Generation {
    seg: Arc<Segment>,
    pub(crate) generation: u64,
}

impl Generation {
    pub(crate) fn new(seg: Arc<Segment>, generation: u64) -> Generation {
        Generation { seg, generation }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Payload bytes.
    pub(crate) fn len(&self) -> usize {
        self.seg.payload_len()
    }

    fn corrupt(&self, reason: String) -> CollectionError {
        CollectionError::Corrupt {
            name: self.seg.name().unwrap_or("<anonymous>").to_owned(),
            reason,
        }
    }

    fn check(&self, offset: u64, len: usize) -> Result<usize, CollectionError> {
        let end = (offset as usize).checked_add(len);
        if offset > usize::MAX as u64 || end.is_none_or(|e| e > self.len()) {
            return Err(self.corrupt(format!(
                "an access of {len} bytes at offset {offset} is outside its {} bytes",
                self.len()
            )));
        }
        Ok(offset as usize)
    }

    /// The 64-bit word at `offset` (a multiple of 8) of the payload.
    pub(crate) fn word(&self, offset: u64) -> Result<&AtomicU64, CollectionError> {
        let at = self.check(offset, 8)?;
        if at % 8 != 0 {
            return Err(self.corrupt(format!("offset {offset} is not a multiple of 8")));
        }
        // SAFETY: `at + 8` lies inside the payload (checked above), which starts 64-byte
        // aligned, so the word is aligned; the mapping lives as long as `self.seg`, which
        // the returned reference borrows; `AtomicU64` is valid for every bit pattern and
        // other processes only touch the word atomically.
        Ok(unsafe { &*self.seg.payload_ptr().add(at).cast::<AtomicU64>() })
    }

    /// Loads the word at `offset` (acquire).
    pub(crate) fn load(&self, offset: u64) -> Result<u64, CollectionError> {
        Ok(self.word(offset)?.load(Ordering::Acquire))
    }

    /// Stores `value` in the word at `offset` (release): the publishing store.
    pub(crate) fn store(&self, offset: u64, value: u64) -> Result<(), CollectionError> {
        self.word(offset)?.store(value, Ordering::Release);
        Ok(())
    }

    /// Copies `out.len()` bytes at `offset` out of the payload.
    pub(crate) fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), CollectionError> {
        let at = self.check(offset, out.len())?;
        // SAFETY: `check` put `at .. at + out.len()` inside the payload, which the mapping
        // of `self.seg` holds while `self` lives; `out` is the caller's own memory.
        unsafe { crate::shm::copy_out(self.seg.payload_ptr(), at, out) };
        Ok(())
    }

    /// Copies `data` into the payload at `offset`.
    pub(crate) fn write(&self, offset: u64, data: &[u8]) -> Result<(), CollectionError> {
        let at = self.check(offset, data.len())?;
        // SAFETY: `check` put `at .. at + data.len()` inside the payload of the
        // read-write mapping of `self.seg`, alive while `self` lives; `data` is the
        // caller's own memory.
        unsafe { crate::shm::copy_in(self.seg.payload_ptr(), at, data) };
        Ok(())
    }

    /// Checks the generation's header: magic, version, kind and number.
    pub(crate) fn validate(&self, kind: u64) -> Result<(), CollectionError> {
        if self.len() < DataHeader::SIZE {
            return Err(self.corrupt(format!("it is only {} bytes long", self.len())));
        }
        let magic = self.load(DataHeader::MAGIC as u64)?;
        if magic != DATA_MAGIC {
            return Err(self.corrupt(format!(
                "its first word is {magic:#018x}, not {DATA_MAGIC:#018x}"
            )));
        }
        let version = self.load(DataHeader::VERSION as u64)?;
        if version as u32 != COLLECTION_LAYOUT_VERSION {
            return Err(CollectionError::Version {
                name: self.seg.name().unwrap_or("<anonymous>").to_owned(),
                found: version as u32,
                expected: COLLECTION_LAYOUT_VERSION,
            });
        }
        if version >> 32 != kind {
            return Err(self.corrupt(format!(
                "it holds container kind {}, not {kind}",
                version >> 32
            )));
        }
        let generation = self.load(DataHeader::GEN as u64)?;
        if generation != self.generation {
            return Err(self.corrupt(format!(
                "it says generation {generation}, not {}",
                self.generation
            )));
        }
        Ok(())
    }
}

/// The root payload of a container segment.
pub(crate) fn root(seg: &Segment) -> Result<&RootState, CollectionError> {
    if seg.payload_len() < ROOT_LEN {
        return Err(CollectionError::Corrupt {
            name: seg.name().unwrap_or("<anonymous>").to_owned(),
            reason: format!("its root is only {} bytes long", seg.payload_len()),
        });
    }
    // SAFETY: the payload is 64-byte aligned and at least ROOT_LEN bytes (checked); the
    // mapping lives as long as `seg`, which the reference borrows; every field is plain
    // data valid for any bits, and the fields written after creation are atomics.
    Ok(unsafe { &*seg.payload_ptr().cast::<RootState>() })
}

/// Writes a fresh root into `seg` (not yet published: nobody else reads it).
pub(crate) fn init_root(seg: &Segment, format: u32, creator_pid: u32) {
    let ptr = seg.payload_ptr().cast::<RootState>();
    // SAFETY: called from `Segment::create_named_detached`'s `init`, before the segment's
    // magic is published, so no other process reads these bytes yet; the payload is
    // aligned and at least one page long.
    unsafe {
        (*ptr).version = COLLECTION_LAYOUT_VERSION;
        (*ptr).format = format;
        (*ptr).generation.store(0, Ordering::Relaxed);
        (*ptr).updates.store(0, Ordering::Relaxed);
        (*ptr).creator_pid = creator_pid;
        (*ptr).magic.store(ROOT_MAGIC, Ordering::Release);
    }
}

/// The segment kind of a container's root.
pub(crate) fn root_kind(list: bool) -> SegmentKind {
    if list {
        SegmentKind::List
    } else {
        SegmentKind::Dict
    }
}
