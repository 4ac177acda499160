//! The shared-memory ring under every channel: a bounded multi-producer multi-consumer
//! queue of byte messages with per-cell sequence numbers (Vyukov's bounded MPMC,
//! extended to messages that span several consecutive cells claimed in one CAS).
//!
//! This is the raw in-segment state machine of the channel module, and the only part of
//! it allowed `unsafe`: it turns the segment's payload pointer into references to the
//! `#[repr(C)]` structures of [`layout`] and copies bytes in and out of cells. The byte
//! format is documented in `docs/ring-format.md`.
//!
//! # Protocol in brief
//!
//! * **put** of `k` cells: read `tail`; check that the `k` cells from there are free for
//!   this lap (`seq == position`); write the claim into the thread's slot; CAS `tail`
//!   forward by `k`; copy the data; store `seq = position + 1` in the continuation cells,
//!   then (release) in the first cell: that store is the commit.
//! * **get**: read `head`; the cell there is readable when `seq == head + 1`; its header
//!   gives the message length hence `k`; write the claim into the slot; CAS `head`
//!   forward by `k`; copy out; store `seq = position + cell_count` in each cell (release):
//!   the cells are free for the next lap.
//! * **crash recovery**: see [`claim`] and the `recover_*` functions.
#![allow(unsafe_code)]

mod batch;
pub(crate) mod claim;
mod consume;
pub(crate) mod layout;
mod message;
mod produce;
mod recover;
mod reserve;
mod spsc;
mod stream;
mod wait;

pub(crate) use message::Bytes;
pub(crate) use reserve::Reservation;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shm::{Segment, SegmentKind, ShmError};
use crate::sys::{self, Deadline};

use claim::Token;
use layout::*;

/// A seq bit set by crash recovery: the cell is committed but holds no message.
const TOMB_BIT: u64 = 1 << 63;
/// A `tail` bit set while a message is streamed in parts: only its writer may claim.
const STREAM_BIT: u64 = 1 << 62;
/// How long a claim must stay stuck before its claimant's liveness is checked.
const STUCK: Duration = Duration::from_millis(3);
/// Longest single futex sleep of an idle waiter; a safety net, not the wake mechanism.
const IDLE_NAP: Duration = Duration::from_millis(100);
/// Sleep while a claim is in progress (a peer is between CAS and commit).
const CLAIM_NAP: Duration = Duration::from_micros(50);
const SPIN_MIN: u32 = 64;
const SPIN_MAX: u32 = 1 << 14;

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

/// Why a non-blocking put did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PutFail {
    /// No room; `blocked` is the ring position (of the previous lap) not yet free.
    Full { blocked: u64 },
    /// The ring was closed.
    Closed,
    /// A message streamed in parts holds the ring.
    Streaming,
}

/// Why a non-blocking get found nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GetFail {
    /// Nothing committed at `pos` (a claim may be in progress there).
    Empty { pos: u64 },
    /// Closed and drained.
    Closed,
}

/// A blocking operation's failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WaitFail {
    Timeout,
    Closed,
}

/// One claimed, committed message, readable until dropped (dropping releases its cells).
pub(crate) struct Message<'a> {
    ring: &'a Ring,
    slot: &'a Slot,
    pos: u64,
    cells: u64,
    len: usize,
    flags: u32,
    /// Whether dropping the message releases its cells (not for the messages of a batch,
    /// whose cells are released together).
    release: bool,
}

/// A handle on a ring mapped in this process. Cheap to share through `Arc`.
pub(crate) struct Ring {
    seg: Arc<Segment>,
    event: OwnedFd,
    base: NonNull<u8>,
    mask: u64,
    cells: u64,
    cell_size: usize,
    data_per_cell: usize,
    max_messages: u64,
    /// Process-unique id of this handle (key of the per-thread slot cache).
    id: u64,
    /// Adaptive spin budgets (process-local) of gets and puts: grow while peers are met
    /// spinning, shrink when waits end up sleeping. Each on its own cache line, away
    /// from the read-only fields above that every operation reads.
    spin: [Line<AtomicU32>; 2],
    /// The single-producer flavour (pipes, see [`spsc`]) rather than the multi-producer
    /// one; fixed by the segment's tag.
    spsc: bool,
    /// Single-producer rings: the sender's last reading of `head.pos` (process-local,
    /// only ever behind the real one), re-read only when it says the ring is full.
    head_cache: Line<AtomicU64>,
    /// Pipes (process-local): a sender's and a receiver's pid found dead, and when the
    /// kernel was last asked (milliseconds since a process-wide epoch, plus one).
    dead_peer: [AtomicU32; 2],
    peer_checked: AtomicU64,
    /// Pipes (process-local): whether the death of every process recorded at the other
    /// end counts as end of stream (see [`Connection::set_peer_death_ends_stream`]).
    ///
    /// [`Connection::set_peer_death_ends_stream`]: crate::Connection::set_peer_death_ends_stream
    death_ends: AtomicBool,
    /// Queues (process-local): when a waiting consumer last looked for claims left by
    /// dead consumers (same clock as `peer_checked`).
    scanned: AtomicU64,
    /// Whether the last wait for room (`[0]`) or data (`[1]`) through this handle had to
    /// yield or sleep (process-local; see `spin_budget_here`).
    contended: [AtomicBool; 2],
}

/// Whether rings of channel type `tag` are the single-producer flavour.
fn single_producer(tag: u32) -> bool {
    tag == crate::channel::TAG_PIPE
}

// SAFETY: `base` points into the mapping owned by `seg`, which is Send + Sync; all
// shared state behind it is accessed through atomics or through cells the thread owns
// by protocol (claimed with a CAS).
unsafe impl Send for Ring {}
// SAFETY: see `Send`.
unsafe impl Sync for Ring {}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("cells", &self.cells)
            .field("cell_size", &self.cell_size)
            .finish()
    }
}

/// How many cells ahead of its claim a producer prefetches.
const PREFETCH_AHEAD: u64 = 4;

/// Hints the CPU to fetch the line at `p` in exclusive state (x86 `prefetchw`).
#[inline(always)]
fn prefetch_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and reads or writes nothing, whatever
    // the address; `p` is inside the ring's mapping anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn signed(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
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

impl Ring {
    /// Creates a ring in a new anonymous segment, with its readiness eventfd.
    pub(crate) fn create(cfg: RingConfig) -> Result<Ring, ShmError> {
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
            // A single-producer ring starts all zero: no header says "committed".
            let seqs = if single_producer(cfg.tag) {
                0
            } else {
                cfg.cells
            };
            for i in 0..seqs {
                let c = base
                    .add(CELLS_OFFSET + i * cfg.cell_size)
                    .cast::<CellHeader>();
                (*c).seq = (i as u64).into();
            }
        }
        seg.tag().store(cfg.tag, Ordering::Release);
        let event =
            sys::eventfd_create().map_err(|e| ShmError::io("create an eventfd", None, e))?;
        Ring::from_parts(seg, event, cfg.tag)
    }

    /// Maps a ring received as segment + eventfd, checking that it holds `tag`.
    pub(crate) fn from_parts(
        seg: Arc<Segment>,
        event: OwnedFd,
        tag: u32,
    ) -> Result<Ring, ShmError> {
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
        Ok(Ring {
            max_messages: g.max_messages,
            seg,
            event,
            base,
            mask: cells - 1,
            cells,
            cell_size,
            data_per_cell: cell_size - CELL_HEADER,
            spin: [Line(AtomicU32::new(1024)), Line(AtomicU32::new(1024))],
            id: claim::next_ring_id(),
            spsc: single_producer(tag),
            head_cache: Line(AtomicU64::new(0)),
            dead_peer: [AtomicU32::new(0), AtomicU32::new(0)],
            peer_checked: AtomicU64::new(0),
            death_ends: AtomicBool::new(true),
            scanned: AtomicU64::new(0),
            contended: [AtomicBool::new(false), AtomicBool::new(false)],
        })
    }

    /// The segment and eventfd, for handing the ring to another process.
    pub(crate) fn parts(&self) -> (&Arc<Segment>, &OwnedFd) {
        (&self.seg, &self.event)
    }

    fn ctrl(&self) -> &Control {
        // SAFETY: the payload starts with a Control (checked in `from_parts`) and lives
        // as long as `self.seg`; its fields are read through atomics or never written.
        unsafe { &*self.base.as_ptr().cast::<Control>() }
    }

    fn slots_ptr(&self) -> *const Slot {
        // SAFETY: SLOTS_OFFSET + SLOTS slots lie inside the payload (checked).
        unsafe { self.base.as_ptr().add(SLOTS_OFFSET).cast::<Slot>() }
    }

    fn slot_at(&self, i: usize) -> &Slot {
        debug_assert!(i < SLOTS);
        // SAFETY: i < SLOTS; see `slots_ptr`.
        unsafe { &*self.slots_ptr().add(i) }
    }

    fn cell_ptr(&self, pos: u64) -> *mut u8 {
        // SAFETY: (pos & mask) < cells and every cell lies inside the payload (checked).
        unsafe {
            self.base
                .as_ptr()
                .add(CELLS_OFFSET + (pos & self.mask) as usize * self.cell_size)
        }
    }

    fn cell(&self, pos: u64) -> &CellHeader {
        // SAFETY: cell_ptr is in bounds and 16-byte aligned (cells are >= 64-byte
        // multiples from a 64-byte aligned base); the header is only accessed atomically.
        unsafe { &*self.cell_ptr(pos).cast::<CellHeader>() }
    }

    /// Cells used by a message of `len` bytes.
    pub(crate) fn cells_for(&self, len: usize) -> u64 {
        (len.div_ceil(self.data_per_cell)).max(1) as u64
    }

    /// Largest message carried in one piece; longer ones are streamed in parts.
    pub(crate) fn max_inline(&self) -> usize {
        if self.spsc {
            return self.spsc_max_inline();
        }
        (self.cells as usize / 2).max(1) * self.data_per_cell
    }

    /// Payload bytes the ring holds when full of large messages.
    pub(crate) fn capacity_bytes(&self) -> usize {
        if self.spsc {
            return self.spsc_max_inline() * 2;
        }
        self.cells as usize * self.data_per_cell
    }

    /// Number of cells.
    pub(crate) fn cell_count(&self) -> u64 {
        self.cells
    }

    /// Bound on messages, 0 for none.
    pub(crate) fn max_messages(&self) -> u64 {
        self.max_messages
    }

    fn my_slot(&self) -> io::Result<(&Slot, Token)> {
        let resolved = |s: &Slot| self.claim_resolved(s);
        // SAFETY: `slots_ptr` points at this ring's slots inside `self.seg`, and
        // `self.id` is this handle's own id.
        match unsafe { claim::my_slot(&self.seg, self.id, self.slots_ptr(), resolved) } {
            Some((slot, token)) => Ok((slot, token)),
            None => Err(io::Error::other(format!(
                "more than {SLOTS} threads are using this channel at the same time"
            ))),
        }
    }

    // ----- state ---------------------------------------------------------------------

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

    /// Messages in the ring (committed or being written), counted by walking from head
    /// to tail; a snapshot that may be stale by the time it returns.
    pub(crate) fn len(&self) -> usize {
        if self.spsc {
            return self.spsc_len();
        }
        let ctrl = self.ctrl();
        if self.max_messages != 0 {
            return ctrl.count.0.n.load(Ordering::Relaxed).max(0) as usize;
        }
        let mut pos = ctrl.head.0.pos.load(Ordering::SeqCst);
        let tail = self.tail_pos();
        let mut n = 0;
        while signed(tail, pos) > 0 {
            let c = self.cell(pos);
            let raw = c.seq.load(Ordering::Acquire);
            if raw & !TOMB_BIT == pos + 1 && raw & TOMB_BIT == 0 {
                let flags = c.flags.load(Ordering::Relaxed);
                if flags & F_FIRST != 0 {
                    if flags & (F_PART_MID | F_PART_END) == 0 {
                        n += 1;
                    }
                    pos += self
                        .cells_for(c.len.load(Ordering::Relaxed) as usize)
                        .min(self.cells);
                    continue;
                }
            } else if raw & !TOMB_BIT != pos + 1 {
                n += 1; // a claim being written: counts as the message it will be
            }
            pos += 1;
        }
        n
    }

    /// Cells in use (claimed by producers and not yet released by consumers).
    pub(crate) fn used_cells(&self) -> u64 {
        if self.spsc {
            return self.spsc_used_bytes().div_ceil(self.cell_size as u64);
        }
        let ctrl = self.ctrl();
        let head = ctrl.head.0.pos.load(Ordering::SeqCst);
        let tail = self.tail_pos();
        signed(tail, head).max(0) as u64
    }

    /// The eventfd signalled after commits while someone watches.
    pub(crate) fn event_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.event.as_fd()
    }

    /// Registers (`+1`) or unregisters (`-1`) a readiness watcher.
    pub(crate) fn watch(&self, on: bool) {
        let w = &self.ctrl().data.0.watchers;
        if on {
            w.fetch_add(1, Ordering::SeqCst);
        } else {
            w.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether a `get` would find something now: a committed cell at `head`, or a
    /// closed and drained ring.
    pub(crate) fn readable(&self) -> bool {
        if self.spsc {
            return self.spsc_readable();
        }
        let ctrl = self.ctrl();
        let head = ctrl.head.0.pos.load(Ordering::Acquire);
        self.cell(head).seq.load(Ordering::Acquire) & !TOMB_BIT == head + 1
            || (self.is_closed() && self.tail_pos() == head)
    }

    /// Waits until [`readable`](Self::readable) or the deadline; `give_up` is asked now
    /// and then while nothing comes (pipes: "is the sender dead?").
    pub(crate) fn wait_readable(&self, deadline: Deadline, give_up: impl Fn() -> bool) -> bool {
        let mut last = Instant::now();
        self.wait_loop(deadline, true, || {
            if self.readable() {
                return Ok(true);
            }
            if last.elapsed() >= Duration::from_millis(20) {
                last = Instant::now();
                if give_up() {
                    return Ok(false);
                }
            }
            let head = self.ctrl().head.0.pos.load(Ordering::Relaxed);
            Err(self.get_blocked(GetFail::Empty { pos: head }))
        })
        .unwrap_or(false)
    }

    /// Records the calling process as a sender (`true`) or receiver of this ring
    /// (pipes): as the last one, and in the small table of those that end of stream
    /// waits for (a slot that is free or whose process died is reused).
    pub(crate) fn note_end(&self, sender: bool) {
        let pid = claim::my_pid();
        let st = &self.ctrl().stream.0;
        let (last, table) = if sender {
            (&st.sender_pid, &st.senders)
        } else {
            (&st.receiver_pid, &st.receivers)
        };
        if last.load(Ordering::Relaxed) == pid {
            return;
        }
        last.store(pid, Ordering::Relaxed);
        if table.iter().any(|w| w.load(Ordering::Relaxed) == pid) {
            return;
        }
        for w in table {
            let cur = w.load(Ordering::Relaxed);
            if (cur == 0 || !claim::owner_alive(u64::from(cur) << 32))
                && w.compare_exchange(cur, pid, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
    }

    /// Whether the death of every process at the other end counts as end of stream
    /// through this handle (pipes; `true` unless turned off).
    pub(crate) fn death_ends(&self) -> bool {
        self.death_ends.load(Ordering::Relaxed)
    }

    /// Turns [`death_ends`](Ring::death_ends) on or off for this handle.
    pub(crate) fn set_death_ends(&self, on: bool) {
        self.death_ends.store(on, Ordering::Relaxed);
    }

    /// Whether every process recorded as a sender (`true`) or receiver of this ring
    /// (pipes) is dead, and no live one holds that end right now. `false` when none
    /// has been recorded yet.
    pub(crate) fn end_dead(&self, sender: bool) -> bool {
        if !self.death_ends() {
            return false;
        }
        let ctrl = self.ctrl();
        let st = &ctrl.stream.0;
        let (last, table, word) = if sender {
            (&st.sender_pid, &st.senders, &ctrl.tail.0.owner)
        } else {
            (&st.receiver_pid, &st.receivers, &ctrl.count.0.reader)
        };
        let last = last.load(Ordering::Relaxed);
        if last == 0 {
            return false;
        }
        let holder = word.load(Ordering::Relaxed);
        if holder != 0 && claim::owner_alive(holder) {
            return false;
        }
        let alive = |pid: u32| pid != 0 && claim::owner_alive(u64::from(pid) << 32);
        !alive(last) && !table.iter().any(|w| alive(w.load(Ordering::Relaxed)))
    }

    /// The `JoinableQueue` counters.
    pub(crate) fn tasks(&self) -> &Tasks {
        &self.ctrl().tasks.0
    }
}

#[cfg(test)]
mod tests;
