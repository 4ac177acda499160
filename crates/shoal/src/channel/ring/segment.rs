//! A ring segment mapped in this process, whichever its flavour: creating and checking
//! the segment, and typed access to its control block, its claim slots and its cell
//! area (the bytes of [`layout`](super::layout)), plus the operations every flavour
//! shares (closing, readiness watchers, waking sleepers).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::shm::{Segment, SegmentKind, ShmError};
use crate::sys;

use super::layout::*;

/// What a ring is created with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingConfig {
    /// Bytes per cell, a power of two in 64..=65536.
    pub(crate) cell_size: usize,
    /// Number of cells, a power of two >= 2.
    pub(crate) cells: usize,
    /// Bound on messages in the ring; 0 for none.
    pub(crate) max_messages: u64,
    /// Which channel type lives in the ring.
    pub(crate) tag: u32,
    /// The codec number of typed messages (`Codec::id`), for foreign readers.
    pub(crate) codec: u32,
}

/// A ring segment mapped in this process, with its readiness eventfd. Each flavour's
/// handle holds one and adds its own process-local state.
pub(crate) struct Mapped {
    seg: Arc<Segment>,
    event: OwnedFd,
    base: NonNull<u8>,
    /// `cells - 1`: a ring position's cell is `pos & mask`.
    pub(super) mask: u64,
    /// Number of cells.
    pub(super) cells: u64,
    /// Bytes per cell.
    pub(super) cell_size: usize,
    /// Data bytes per cell (after its header).
    pub(super) data_per_cell: usize,
    /// Bound on messages, 0 for none.
    pub(super) max_messages: u64,
}

// SAFETY: `base` points into the mapping owned by `seg`, which is Send + Sync; all
// shared state behind it is accessed through atomics or through bytes the thread owns
// by protocol (claimed with a CAS, or behind the end word it holds).
unsafe impl Send for Mapped {}
// SAFETY: see `Send`.
unsafe impl Sync for Mapped {}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("cells", &self.cells)
            .field("cell_size", &self.cell_size)
            .finish()
    }
}

/// The bytes a ring of `cells` cells of `cell_size` bytes takes in its segment's
/// payload, or why that geometry is not a ring's: cells of a power of two of bytes in
/// 64..=65536, a power of two of at least 2 of them.
fn ring_len(cells: usize, cell_size: usize) -> Result<usize, String> {
    if !cell_size.is_power_of_two() || !(64..=65536).contains(&cell_size) {
        return Err(format!(
            "a cell size of {cell_size} bytes is not a power of two between 64 and 65536"
        ));
    }
    if !cells.is_power_of_two() || cells < 2 {
        return Err(format!("{cells} cells is not a power of two of at least 2"));
    }
    cells
        .checked_mul(cell_size)
        .and_then(|n| n.checked_add(CELLS_OFFSET))
        .ok_or_else(|| format!("{cells} cells of {cell_size} bytes overflow the address space"))
}

impl Mapped {
    /// Creates a ring segment (anonymous) with its geometry, idle slots and a zeroed
    /// cell area, and its readiness eventfd. The flavour initializes its cells before
    /// the ring is handed to anyone.
    pub(super) fn create(cfg: RingConfig) -> Result<Mapped, ShmError> {
        let bad = |reason: String| ShmError::Layout {
            name: "<new ring>".to_owned(),
            reason,
        };
        let len = ring_len(cfg.cells, cfg.cell_size).map_err(bad)?;
        let seg = Segment::anonymous(SegmentKind::Channel, len)?;
        let base = seg.payload_ptr();
        // SAFETY: the segment was just created by this process and no other process
        // maps it yet, so plain writes race with nothing. The payload is 64-byte aligned
        // and at least CELLS_OFFSET + cells * cell_size bytes long (checked above).
        unsafe {
            let g = base.cast::<Geometry>();
            (*g).magic = RING_MAGIC;
            (*g).version = RING_VERSION;
            (*g).cell_size = cfg.cell_size as u32;
            (*g).cell_count = cfg.cells as u64;
            (*g).max_messages = cfg.max_messages;
            (*g).slots = SLOTS as u32;
            (*g).tag = cfg.tag;
            (*g).codec = cfg.codec;
            for i in 0..SLOTS {
                let s = base.add(SLOTS_OFFSET).cast::<Slot>().add(i);
                (*s).put_pos = IDLE.into();
                (*s).get_pos = IDLE.into();
            }
        }
        seg.tag().store(cfg.tag, Ordering::Release);
        let event =
            sys::eventfd_create().map_err(|e| ShmError::io("create an eventfd", None, e))?;
        Mapped::from_parts(seg, event, cfg.tag)
    }

    /// Maps a ring received as segment + eventfd, checking that it holds `tag` and that
    /// its geometry fits the segment.
    pub(super) fn from_parts(
        seg: Arc<Segment>,
        event: OwnedFd,
        tag: u32,
    ) -> Result<Mapped, ShmError> {
        let label = || seg.name().unwrap_or("<anonymous>").to_owned();
        let bad = |reason: String| ShmError::Layout {
            name: label(),
            reason,
        };
        let found = seg.tag().load(Ordering::Acquire);
        if found != tag {
            return Err(bad(format!(
                "it holds channel type {found}, not the expected type {tag}"
            )));
        }
        let payload = seg.payload_len();
        if payload < CELLS_OFFSET {
            return Err(bad(format!("{payload} payload bytes cannot hold a ring")));
        }
        // SAFETY: the payload holds at least a Control (checked above), is 64-byte
        // aligned, and Geometry is plain data (its atomic is read atomically later).
        let g = unsafe { &*seg.payload_ptr().cast::<Geometry>() };
        if g.magic != RING_MAGIC || g.version != RING_VERSION {
            return Err(bad(format!(
                "ring magic {:#x} version {} is not ring version {RING_VERSION}",
                g.magic, g.version
            )));
        }
        let cells = g.cell_count;
        let cell_size = g.cell_size as usize;
        if g.slots as usize != SLOTS {
            return Err(bad(format!(
                "it has {} claim slots where this version has {SLOTS}",
                g.slots
            )));
        }
        let len = ring_len(cells as usize, cell_size).map_err(&bad)?;
        if len > payload {
            return Err(bad(format!(
                "{cells} cells of {cell_size} bytes do not fit its {payload} payload bytes"
            )));
        }
        let base = NonNull::new(seg.payload_ptr()).ok_or_else(|| bad("null payload".to_owned()))?;
        Ok(Mapped {
            max_messages: g.max_messages,
            seg,
            event,
            base,
            mask: cells - 1,
            cells,
            cell_size,
            data_per_cell: cell_size - CELL_HEADER,
        })
    }

    /// The segment and eventfd, for handing the ring to another process.
    pub(crate) fn parts(&self) -> (&Arc<Segment>, &OwnedFd) {
        (&self.seg, &self.event)
    }

    /// The segment (which owns the mapping).
    pub(super) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// The control block at the start of the payload.
    #[inline]
    pub(super) fn ctrl(&self) -> &Control {
        // SAFETY: the payload starts with a Control (checked in `from_parts`) and lives
        // as long as `self.seg`; its fields are read through atomics or never written.
        unsafe { &*self.base.as_ptr().cast::<Control>() }
    }

    /// The first of the [`SLOTS`] claim slots.
    pub(super) fn slots_ptr(&self) -> *const Slot {
        // SAFETY: SLOTS_OFFSET + SLOTS slots lie inside the payload (checked).
        unsafe { self.base.as_ptr().add(SLOTS_OFFSET).cast::<Slot>() }
    }

    /// Claim slot `i` (< [`SLOTS`]).
    pub(super) fn slot_at(&self, i: usize) -> &Slot {
        debug_assert!(i < SLOTS);
        // SAFETY: i < SLOTS; see `slots_ptr`.
        unsafe { &*self.slots_ptr().add(i) }
    }

    /// The byte at `offset` of the cell area, `offset` below [`area_len`](Self::area_len).
    #[inline]
    pub(super) fn area_ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset < self.area_len());
        // SAFETY: the cell area, `cells * cell_size` bytes from CELLS_OFFSET, lies inside
        // the payload (checked in `from_parts`), and `offset` is inside it.
        unsafe { self.base.as_ptr().add(CELLS_OFFSET + offset) }
    }

    /// Bytes of the cell area.
    pub(super) fn area_len(&self) -> usize {
        self.cells as usize * self.cell_size
    }

    /// Closes the ring: later puts fail, gets drain then fail; every sleeper wakes.
    pub(crate) fn close(&self) {
        let ctrl = self.ctrl();
        ctrl.geometry.0.closed.store(1, Ordering::SeqCst);
        for w in [&ctrl.data.0, &ctrl.space.0] {
            w.epoch.fetch_add(1, Ordering::SeqCst);
            sys::futex_wake(&w.epoch, u32::MAX);
        }
        let _ = sys::eventfd_signal(self.event.as_fd());
    }

    /// Whether [`close`](Self::close) was called (by any process).
    pub(crate) fn is_closed(&self) -> bool {
        self.ctrl().geometry.0.closed.load(Ordering::Acquire) != 0
    }

    /// Number of cells.
    pub(crate) fn cell_count(&self) -> u64 {
        self.cells
    }

    /// Bound on messages, 0 for none.
    pub(crate) fn max_messages(&self) -> u64 {
        self.max_messages
    }

    /// The eventfd signalled after commits while someone watches.
    pub(crate) fn event_fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }

    /// Registers (`true`) or unregisters a readiness watcher.
    pub(crate) fn watch(&self, on: bool) {
        let w = &self.ctrl().data.0.watchers;
        if on {
            w.fetch_add(1, Ordering::SeqCst);
        } else {
            w.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The `JoinableQueue` counters.
    pub(crate) fn tasks(&self) -> &Tasks {
        &self.ctrl().tasks.0
    }

    /// After a commit: wakes the consumers sleeping for data, and signals the eventfd
    /// while someone watches it.
    ///
    /// Dekker with the sleep phase of a wait for data: the producer's SeqCst operation
    /// that published the data (its CAS of `tail`, or a pipe's CAS of its writer word)
    /// precedes this SeqCst load; a consumer increments `sleepers` (SeqCst) before it
    /// looks again. Either it sees the data and does not sleep long, or we see it and
    /// wake it.
    #[inline]
    pub(super) fn wake_data(&self) {
        let w = &self.ctrl().data.0;
        if w.sleepers.load(Ordering::SeqCst) != 0 {
            w.epoch.fetch_add(1, Ordering::SeqCst);
            sys::futex_wake(&w.epoch, u32::MAX);
        }
        if w.watchers.load(Ordering::Relaxed) != 0 {
            let _ = sys::eventfd_signal(self.event.as_fd());
        }
    }

    /// Wakes the producers sleeping for room (unconditionally: the caller checked that
    /// someone sleeps, or must wake them anyway).
    pub(super) fn wake_space(&self) {
        let w = &self.ctrl().space.0;
        w.epoch.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(&w.epoch, u32::MAX);
    }
}
