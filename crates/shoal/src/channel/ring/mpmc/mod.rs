//! The multi-producer multi-consumer flavour of the ring, under every queue: a bounded
//! queue of byte messages with per-cell sequence numbers (Vyukov's bounded MPMC,
//! extended to messages that span several consecutive cells claimed in one CAS).
//!
//! # Protocol in brief
//!
//! * **put** of `k` cells ([`put`]): read `tail`; check that the `k` cells from there are
//!   free for this lap (`seq == position`); write the claim into the thread's slot; CAS
//!   `tail` forward by `k`; copy the data; store `seq = position + 1` in the
//!   continuation cells, then (release) in the first cell: that store is the commit.
//! * **get** ([`get`]): read `head`; the cell there is readable when `seq == head + 1`;
//!   its header gives the message length hence `k`; write the claim into the slot; CAS
//!   `head` forward by `k`; copy out; store `seq = position + cell_count` in each cell
//!   (release): the cells are free for the next lap.
//! * batches of both ([`put`], [`batch`]), in-place writes ([`reserve`]), messages
//!   larger than half the ring ([`stream`]), and **crash recovery** ([`recover`]): a dead
//!   producer's claim becomes tombstones, a dead consumer's message is put again.

mod batch;
mod get;
mod message;
mod put;
mod recover;
mod reserve;
mod stream;

pub(crate) use message::Message;
pub(crate) use reserve::Reservation;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shm::{Segment, ShmError};
use crate::sys::Deadline;

use super::claim::{self, Token};
use super::layout::*;
use super::segment::{Mapped, RingConfig};
use super::wait::{self, Blocked, Blocking, Spin, Stuck};
use super::{signed, GetFail};

/// A seq bit set by crash recovery: the cell is committed but holds no message.
const TOMB_BIT: u64 = 1 << 63;
/// A `tail` bit set while a message is streamed in parts: only its writer may claim.
const STREAM_BIT: u64 = 1 << 62;

/// A handle on a multi-producer ring mapped in this process. Cheap to share through
/// `Arc`.
pub(crate) struct Ring {
    map: Mapped,
    /// Process-unique id of this handle (key of the per-thread slot cache).
    id: u64,
    spin: Spin,
    /// When a waiting consumer last looked for claims left by dead consumers
    /// (process-local, the clock of [`wait::due`]).
    scanned: AtomicU64,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}

impl Ring {
    /// Creates a ring in a new anonymous segment, every cell free for its first lap.
    pub(crate) fn create(cfg: RingConfig) -> Result<Ring, ShmError> {
        let ring = Ring::new(Mapped::create(cfg)?);
        for i in 0..ring.map.cells {
            ring.cell(i).seq.store(i, Ordering::Relaxed);
        }
        Ok(ring)
    }

    /// Maps a ring received as segment + eventfd, checking that it holds `tag`.
    pub(crate) fn from_parts(
        seg: Arc<Segment>,
        event: OwnedFd,
        tag: u32,
    ) -> Result<Ring, ShmError> {
        Mapped::from_parts(seg, event, tag).map(Ring::new)
    }

    fn new(map: Mapped) -> Ring {
        Ring {
            map,
            id: claim::next_ring_id(),
            spin: Spin::new(),
            scanned: AtomicU64::new(0),
        }
    }

    /// The mapped segment, for what every flavour shares.
    pub(crate) fn mapped(&self) -> &Mapped {
        &self.map
    }

    #[inline]
    fn ctrl(&self) -> &Control {
        self.map.ctrl()
    }

    /// The first byte of the cell at ring position `pos`.
    #[inline]
    fn cell_ptr(&self, pos: u64) -> *mut u8 {
        self.map
            .area_ptr((pos & self.map.mask) as usize * self.map.cell_size)
    }

    /// The header of the cell at ring position `pos`.
    #[inline]
    fn cell(&self, pos: u64) -> &CellHeader {
        // SAFETY: cell_ptr is in bounds and 16-byte aligned (cells are >= 64-byte
        // multiples from a 64-byte aligned base); the header is only accessed atomically.
        unsafe { &*self.cell_ptr(pos).cast::<CellHeader>() }
    }

    /// Cells used by a message of `len` bytes.
    pub(crate) fn cells_for(&self, len: usize) -> u64 {
        (len.div_ceil(self.map.data_per_cell)).max(1) as u64
    }

    /// Largest message carried in one piece; longer ones are streamed in parts.
    pub(crate) fn max_inline(&self) -> usize {
        (self.map.cells as usize / 2).max(1) * self.map.data_per_cell
    }

    /// Payload bytes the ring holds when full of large messages.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.map.cells as usize * self.map.data_per_cell
    }

    /// The calling thread's claim slot and token; `None` when every one of the
    /// [`SLOTS`] slots is held by a live thread (the operation then fails as if the
    /// ring were full, or empty, and a waiting one retries).
    #[inline]
    fn my_slot(&self) -> Option<(&Slot, Token)> {
        let resolved = |s: &Slot| self.claim_resolved(s);
        // SAFETY: `slots_ptr` points at this ring's slots inside the mapping the segment
        // holds, and `self.id` is this handle's own id.
        unsafe { claim::my_slot(self.map.segment(), self.id, self.map.slots_ptr(), resolved) }
    }

    /// Why a get finds nothing at `pos`, the head it just read again: the ring is
    /// closed and every message taken, or it is empty.
    fn nothing_at(&self, pos: u64) -> GetFail {
        if self.ctrl().geometry.0.closed.load(Ordering::Acquire) != 0 && self.tail_pos() == pos {
            GetFail::Closed
        } else {
            GetFail::Empty { pos }
        }
    }

    /// The producer position, without the stream bit.
    fn tail_pos(&self) -> u64 {
        self.ctrl().tail.0.pos.load(Ordering::SeqCst) & !STREAM_BIT
    }

    /// Messages in the ring (committed or being written): the count when the ring is
    /// bounded, else counted by walking from head to tail; a snapshot that may be stale
    /// by the time it returns.
    pub(crate) fn len(&self) -> usize {
        let ctrl = self.ctrl();
        if self.map.max_messages != 0 {
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
                        .min(self.map.cells);
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
        let head = self.ctrl().head.0.pos.load(Ordering::SeqCst);
        signed(self.tail_pos(), head).max(0) as u64
    }

    /// Whether a `get` would find something now: a committed cell at `head`, or a
    /// closed and drained ring.
    pub(crate) fn readable(&self) -> bool {
        let head = self.ctrl().head.0.pos.load(Ordering::Acquire);
        self.cell(head).seq.load(Ordering::Acquire) & !TOMB_BIT == head + 1
            || (self.map.is_closed() && self.tail_pos() == head)
    }

    /// Waits until [`readable`](Self::readable) or the deadline; `give_up` is asked now
    /// and then while nothing comes.
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

    /// Whether the cell at previous-lap position `pos` has been released (is free for
    /// `pos + cells`), or is further on still.
    fn released(&self, pos: u64) -> bool {
        let seq = self.cell(pos).seq.load(Ordering::Relaxed) & !TOMB_BIT;
        signed(seq, pos.wrapping_add(self.map.cells)) >= 0
    }

    /// Classifies a failed get for the wait loop, reading `tail`: nothing committed at
    /// `head` while `tail` is past it is a claim in progress there.
    fn get_blocked(&self, fail: GetFail) -> Blocked {
        match fail {
            GetFail::Closed => Blocked::Closed,
            GetFail::Empty { pos } if signed(self.tail_pos(), pos) > 0 => Blocked::Claimed(pos),
            GetFail::Empty { .. } => Blocked::Idle,
        }
    }

    /// Classifies a failed get for the spin phase of the wait loop without reading
    /// `tail` (see [`Blocked::Empty`]).
    fn get_blocked_lazy(&self, fail: GetFail) -> Blocked {
        match fail {
            GetFail::Closed => Blocked::Closed,
            GetFail::Empty { pos } => Blocked::Empty(pos),
        }
    }

    /// The sleep phase's answer to a claim stuck at `pos`: once it has stayed so for
    /// [`STUCK`](wait::STUCK), settle it if its claimants are dead (a producer's claim
    /// when waiting for data, a consumer's when waiting for room).
    fn settle_stuck(&self, for_data: bool, pos: u64, stuck: &mut Stuck) {
        match *stuck {
            Some((p, since)) if p == pos => {
                if since.elapsed() >= wait::STUCK {
                    let fixed = if for_data {
                        self.recover_put_claim(pos)
                    } else {
                        self.recover_get_claim(pos)
                    };
                    if !fixed {
                        *stuck = Some((pos, Instant::now()));
                    }
                }
            }
            _ => *stuck = Some((pos, Instant::now())),
        }
    }
}

impl Blocking for Ring {
    fn mapped(&self) -> &Mapped {
        &self.map
    }

    fn spin(&self) -> &Spin {
        &self.spin
    }

    fn peer_cpu(&self, for_data: bool) -> &AtomicU32 {
        if for_data {
            &self.ctrl().tail.0.cpu
        } else {
            &self.ctrl().head.0.cpu
        }
    }

    fn room_ahead(&self, blocked: u64) -> bool {
        self.released(blocked.wrapping_add((self.map.cells / 8).clamp(1, 64)))
    }

    fn peer_gone(&self, _for_data: bool) -> bool {
        false
    }

    fn going_to_sleep(&self, _for_data: bool) -> bool {
        false
    }

    fn nap(&self, for_data: bool, blocked: Blocked, _: bool, stuck: &mut Stuck) -> Duration {
        let blocked = match blocked {
            Blocked::Empty(pos) => self.get_blocked(GetFail::Empty { pos }),
            other => other,
        };
        match blocked {
            Blocked::Full(_) if self.map.max_messages != 0 => {
                // Bounded by count: a dead consumer's claim is never met at the tail,
                // so look for one now and then.
                match *stuck {
                    Some((_, since)) if since.elapsed() >= wait::STUCK => {
                        self.recover_dead_consumers();
                        *stuck = Some((0, Instant::now()));
                    }
                    Some(_) => {}
                    None => *stuck = Some((0, Instant::now())),
                }
                wait::BOUNDED_NAP
            }
            Blocked::Claimed(pos) => {
                self.settle_stuck(for_data, pos, stuck);
                wait::CLAIM_NAP
            }
            Blocked::Busy => wait::CLAIM_NAP,
            Blocked::Idle | Blocked::Full(_) | Blocked::Empty(_) | Blocked::Closed => {
                *stuck = None;
                // Nothing to read: settle any claim a dead consumer left (its message
                // is put again), at most every PEER_CHECK per ring handle.
                if for_data && wait::due(&self.scanned) {
                    self.recover_dead_consumers();
                }
                wait::IDLE_NAP
            }
        }
    }
}

#[cfg(test)]
mod tests;
