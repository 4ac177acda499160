//! The single-producer single-consumer flavour of the ring, under each direction of a
//! `Pipe`.
//!
//! Same segment, control block and (unused) slot area as the multi-producer ring, but the
//! cell area is one byte ring of `cell_count * cell_size` bytes holding records at
//! 16-byte aligned byte positions:
//!
//! ```text
//! seq u64 | len u32 | flags u32 | len data bytes, zero-padded to a multiple of 16
//! ```
//!
//! * **send**: take the writer word (`tail.owner`, CAS 0 → token). The record goes at the
//!   byte position `p = tail.pos`, or after a padding record when it would cross the end
//!   of the ring. It needs room for itself and for the 16 bytes after it, because the
//!   sender zeroes the `seq` of the next header before it commits: a receiver then never
//!   mistakes older bytes for a header. Room is checked against a process-local copy of
//!   `head.pos`, re-read only when that copy says full. Write the data, `len` and
//!   `flags`, store `seq = p + 1` (the commit), publish `tail.pos`, free the writer word.
//!   A batch of records would share one commit; a `Pipe` sends one at a time.
//! * **receive**: the record at the read position `r` (kept in `count.n`, on the
//!   receiver's own line) is readable once its `seq == r + 1`. The receiver takes the
//!   reader word (`count.reader`), reads the record in place (its bytes are contiguous),
//!   then moves its read position past it, and hands the bytes back to the sender in
//!   `head.pos` every sixteenth of the ring (and whenever it finds the ring empty). No
//!   record line is written by the receiver, so a record's line crosses between the
//!   CPUs once per lap instead of three times.
//! * **crash safety**: a sender killed before its commit published nothing; one killed
//!   between its commit and its `tail.pos` store left a whole record that the next sender
//!   finds (it walks committed headers from `tail.pos` when it takes over a dead writer's
//!   word) and delivers. A receiver killed while reading did not move the read position:
//!   the record is read again by the next receiver, so nothing is lost. A token whose
//!   process died is taken over by whoever needs the end; who sent and who received is
//!   recorded ([`ends`]) so that the death of every process at the other end ends the
//!   stream.
//!
//! Top to bottom: [`Ring::put`] takes the writer word ([`Ring::take_end`]) and writes
//! the record ([`Ring::push`]); [`Ring::get`] takes the next whole message
//! ([`Ring::next_whole`], [`Ring::next_record`], [`Ring::peek`]), hands it to the
//! caller in place, then moves the read position ([`Ring::release`]).
//!
//! Messages larger than half the ring are streamed in parts (the flags of the
//! multi-producer ring) while the sender holds the writer word and the receiver the reader
//! word for the whole message.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shm::{Segment, ShmError};
use crate::sys::Deadline;

use super::claim;
use super::layout::*;
use super::segment::{Mapped, RingConfig};
use super::wait::{self, Blocked, Blocking, Spin, Stuck};
use super::{signed, Bytes, GetFail, WaitFail};

mod ends;

/// Bytes of a record header, and the alignment of records.
const REC: u64 = 16;

const PARTS: u32 = F_PART_BEGIN | F_PART_MID | F_PART_END;

/// Alignment of records. Small records share cache lines: a line then crosses between
/// the CPUs once for several messages when the sender runs ahead.
const ALIGN: u64 = 16;

/// Bytes taken by a record carrying `len` data bytes.
fn record_size(len: usize) -> u64 {
    (REC + len as u64).next_multiple_of(ALIGN)
}

/// An end of the ring (its writer or reader word) held by this thread; freed on drop,
/// panics included.
pub(super) struct Held<'a>(&'a AtomicU64);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// A committed record at the head, read in place.
struct Record<'a> {
    /// Where its bytes end (past any padding before it): the next `head.pos`.
    end: u64,
    flags: u32,
    data: &'a [u8],
}

/// What the receiver took: a record in place, or a streamed message gathered whole.
enum Whole<'a> {
    InPlace(Held<'a>, Record<'a>),
    Gathered(Vec<u8>),
}

/// How reading a streamed message ended early.
enum Cut<'a> {
    /// A whole record where the next part should be (the sender died mid-message and
    /// another took over): the partial message is dropped, this record comes next.
    Next(Held<'a>, Record<'a>),
    /// The sender died or the ring closed: the partial message is dropped.
    Gone(WaitFail),
    /// The parts did not add up to a message (a foreign writer's bug): dropped, and the
    /// receiver goes on with the next record.
    Skip,
}

/// A handle on a single-producer ring mapped in this process. Cheap to share through
/// `Arc`.
pub(crate) struct Ring {
    map: Mapped,
    /// Bytes of the record area (a power of two), kept here for the hot paths.
    bytes: u64,
    spin: Spin,
    /// The sender's last reading of `head.pos` (process-local, only ever behind the real
    /// one), re-read only when it says the ring is full.
    head_cache: Line<AtomicU64>,
    /// A sender's (`[1]`) and a receiver's (`[0]`) pid found dead, and when the kernel
    /// was last asked (the clock of [`wait::due`]); process-local.
    dead_peer: [AtomicU32; 2],
    peer_checked: AtomicU64,
    /// Whether the death of every process recorded at the other end counts as end of
    /// stream through this handle (see [`Connection::set_peer_death_ends_stream`]);
    /// process-local.
    ///
    /// [`Connection::set_peer_death_ends_stream`]: crate::Connection::set_peer_death_ends_stream
    death_ends: AtomicBool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}

impl Ring {
    /// Creates a ring in a new anonymous segment. Its record area starts all zero: no
    /// header says "committed".
    pub(crate) fn create(cfg: RingConfig) -> Result<Ring, ShmError> {
        Mapped::create(cfg).map(Ring::new)
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
            bytes: map.area_len() as u64,
            map,
            spin: Spin::new(),
            head_cache: Line(AtomicU64::new(0)),
            dead_peer: [AtomicU32::new(0), AtomicU32::new(0)],
            peer_checked: AtomicU64::new(0),
            death_ends: AtomicBool::new(true),
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

    /// The receiver's read position: where the next record starts. It lives on its own
    /// line (the `count` line, unused by pipes), apart from `head.pos`, the position
    /// published to the sender, which moves only every
    /// [`publish_every`](Self::publish_every) bytes or when the receiver catches up: the
    /// sender, which reads `head.pos` whenever the ring looks full, then does not pull
    /// the receiver's line over on every message.
    fn read_pos(&self) -> u64 {
        self.ctrl().count.0.n.load(Ordering::Relaxed) as u64
    }

    /// A sender about to sleep for room: takes the bytes the receiver has read but not
    /// yet handed back (it publishes `head.pos` lazily) into its copy of `head`. Read
    /// only then: the read position's line is written by the receiver on every message,
    /// and polling it while spinning would pull it over each time.
    fn adopt_read_pos(&self) {
        let read = self.ctrl().count.0.n.load(Ordering::Acquire) as u64;
        self.head_cache.0.fetch_max(read, Ordering::Relaxed);
    }

    /// Bytes the receiver reads between two publications of `head.pos`.
    fn publish_every(&self) -> u64 {
        self.ring_bytes() / 16
    }

    /// Bytes of the record area.
    #[inline]
    fn ring_bytes(&self) -> u64 {
        self.bytes
    }

    /// Largest message carried in one record; longer ones are streamed in parts.
    pub(crate) fn max_inline(&self) -> usize {
        (self.ring_bytes() / 2 - 2 * REC) as usize
    }

    /// Payload bytes the ring holds when full of large messages.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.max_inline() * 2
    }

    /// Data bytes of each part of a streamed message (a quarter of the ring, so that the
    /// sender writes one part while the receiver reads the one before).
    fn part_len(&self) -> usize {
        (self.ring_bytes() / 4 - 2 * REC) as usize
    }

    /// The byte at position `pos` of the record area.
    #[inline]
    fn rec_ptr(&self, pos: u64) -> *mut u8 {
        self.map.area_ptr((pos & (self.ring_bytes() - 1)) as usize)
    }

    /// The header of the record at position `pos` (a multiple of 16).
    fn rec_header(&self, pos: u64) -> &CellHeader {
        debug_assert!(pos.is_multiple_of(REC));
        // SAFETY: in bounds (see `rec_ptr`) and 16-byte aligned (the record area starts
        // 64-byte aligned, positions are multiples of 16); only accessed atomically.
        unsafe { &*self.rec_ptr(pos).cast::<CellHeader>() }
    }

    /// Takes an end (the writer word `tail.owner` for the sender, the reader word
    /// `count.reader` for the receiver) for this thread.
    /// A word held by a dead process is taken over; for the sender's word that also
    /// settles what the dead sender left (see [`resync_tail`](Self::resync_tail)).
    ///
    /// Taking the writer word is the sender's half of the Dekker pair with a receiver
    /// going to sleep: the receiver counts itself in `data.sleepers`, then reads the
    /// writer word, then looks for a record. Either the sender (which reads `sleepers`
    /// after its commit and after freeing the word) sees the sleeper and wakes it, or
    /// the receiver sees the word held and only naps briefly, or it reads the word
    /// freed after the commit and finds the record.
    #[inline]
    fn take_end<'a>(&'a self, word: &'a AtomicU64) -> Result<Held<'a>, Blocked> {
        let me = claim::my_token();
        match word.compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => {
                self.note_holder_cpu(word);
                Ok(Held(word))
            }
            Err(now) => self.take_held_end(word, me, now),
        }
    }

    /// [`take_end`](Self::take_end) of a word found held by `holder`: busy while a
    /// live thread holds it, taken over from a dead one.
    #[cold]
    #[inline(never)]
    fn take_held_end<'a>(
        &'a self,
        word: &'a AtomicU64,
        me: claim::Token,
        mut holder: claim::Token,
    ) -> Result<Held<'a>, Blocked> {
        loop {
            if holder != 0 && (holder == me || claim::owner_alive(holder)) {
                return Err(Blocked::Busy);
            }
            match word.compare_exchange(holder, me, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => {
                    if holder != 0 && std::ptr::eq(word, &self.ctrl().tail.0.owner) {
                        self.resync_tail();
                    }
                    self.note_holder_cpu(word);
                    return Ok(Held(word));
                }
                Err(now) => holder = now,
            }
        }
    }

    /// Records the CPU of the thread that took `word` beside it (the writer's on the
    /// writer line, the reader's on the reader line).
    #[inline]
    fn note_holder_cpu(&self, word: &AtomicU64) {
        let ctrl = self.ctrl();
        wait::note_cpu(if std::ptr::eq(word, &ctrl.tail.0.owner) {
            &ctrl.tail.0.cpu
        } else {
            &ctrl.count.0.cpu
        });
    }

    /// After a sender died holding the writer word: moves `tail.pos` past any record it
    /// committed without publishing `tail.pos` (the commit zeroed the header after it,
    /// so the walk stops at the first uncommitted position).
    fn resync_tail(&self) {
        let tail = &self.ctrl().tail.0.pos;
        let mut pos = tail.load(Ordering::Acquire);
        let start = pos;
        while signed(pos, start) < self.ring_bytes() as i64 {
            let h = self.rec_header(pos);
            if h.seq.load(Ordering::Acquire) != pos + 1 {
                break;
            }
            let len = u64::from(h.len.load(Ordering::Relaxed));
            pos += if h.flags.load(Ordering::Relaxed) & F_PAD != 0 {
                len
            } else {
                record_size(len as usize)
            };
        }
        if pos != start {
            tail.store(pos, Ordering::Release);
        }
    }

    /// Writes one record of `data` with `flags` (the caller holds the writer word),
    /// after `total` as 8 little-endian bytes when given (the first part of a streamed
    /// message starts with the whole message's length). `Err(blocked)`: no room until
    /// `head.pos` passes `blocked`.
    fn push(&self, total: Option<u64>, data: &[u8], flags: u32) -> Result<(), u64> {
        let ctrl = self.ctrl();
        let bytes = self.ring_bytes();
        let lead = if total.is_some() { 8 } else { 0 };
        let len = lead + data.len();
        let size = record_size(len);
        let pos = ctrl.tail.0.pos.load(Ordering::Relaxed);
        let off = pos & (bytes - 1);
        let pad = if off + size > bytes { bytes - off } else { 0 };
        let end = pos + pad + size;
        // The record and the header after it must lie in bytes the receiver released.
        let need = (end + REC).wrapping_sub(bytes);
        let cached = self.head_cache.0.load(Ordering::Relaxed);
        if signed(cached, need) < 0 {
            // Plain loads and stores, no read-modify-write: a locked instruction here
            // would wait for this sender's last commit to reach the receiver's CPU. A
            // copy that goes back a little (another thread's newer one overwritten) is
            // only staler, never ahead of the receiver.
            let head = ctrl.head.0.pos.load(Ordering::SeqCst);
            let head = if signed(head, cached) > 0 {
                head
            } else {
                cached
            };
            self.head_cache.0.store(head, Ordering::Relaxed);
            if signed(head, need) < 0 {
                return Err(need.wrapping_sub(1));
            }
        }
        let at = pos + pad;
        let dst = self.rec_ptr(at + REC);
        // SAFETY: bytes at..end are released by the receiver (checked above) and this
        // thread holds the writer word, so nobody else reads or writes them; the `len =
        // lead + data.len() <= size - REC` bytes written lie inside the record, which
        // does not cross the end of the ring (`pad` moved it to the start otherwise).
        unsafe {
            if let Some(total) = total {
                std::ptr::copy_nonoverlapping(total.to_le_bytes().as_ptr(), dst, 8);
            }
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst.add(lead), data.len());
        }
        let h = self.rec_header(at);
        h.len.store(len as u32, Ordering::Relaxed);
        h.flags.store(flags, Ordering::Relaxed);
        self.rec_header(end).seq.store(0, Ordering::Relaxed);
        // The commit is the first new header in ring order, stored last. A plain release
        // store: a locked one would stall until the receiver's CPU, polling that line,
        // gave it back. The Dekker pair with a receiver going to sleep is the writer word
        // instead (taken SeqCst before, see `take_end` and `going_to_sleep`).
        if pad != 0 {
            h.seq.store(at + 1, Ordering::Release);
            let p = self.rec_header(pos);
            p.len.store(pad as u32, Ordering::Relaxed);
            p.flags.store(F_PAD, Ordering::Relaxed);
            p.seq.store(pos + 1, Ordering::Release);
        } else {
            h.seq.store(at + 1, Ordering::Release);
        }
        ctrl.tail.0.pos.store(end, Ordering::Release);
        Ok(())
    }

    /// Whether the record at `head.pos` may be committed (a hint read without holding
    /// the reader word), or the ring is closed.
    fn maybe_readable(&self) -> Result<(), Blocked> {
        let ctrl = self.ctrl();
        let pos = self.read_pos();
        if self.rec_header(pos).seq.load(Ordering::Relaxed) == pos + 1
            || ctrl.geometry.0.closed.load(Ordering::Relaxed) != 0
        {
            return Ok(());
        }
        // Caught up: hand every byte read to the sender before waiting.
        if ctrl.head.0.pos.load(Ordering::Relaxed) != pos {
            self.publish(pos);
        }
        Err(Blocked::Empty(pos))
    }

    /// The committed record at `head.pos` (the caller holds the reader word), past any
    /// padding.
    fn peek(&self) -> Result<Record<'_>, GetFail> {
        let ctrl = self.ctrl();
        let bytes = self.ring_bytes();
        let mut pos = self.read_pos();
        loop {
            let h = self.rec_header(pos);
            if h.seq.load(Ordering::Acquire) != pos + 1 {
                if ctrl.geometry.0.closed.load(Ordering::Acquire) != 0
                    && ctrl.tail.0.pos.load(Ordering::SeqCst) == pos
                {
                    return Err(GetFail::Closed);
                }
                return Err(GetFail::Empty { pos });
            }
            let flags = h.flags.load(Ordering::Relaxed);
            let len = u64::from(h.len.load(Ordering::Relaxed));
            let off = pos & (bytes - 1);
            if flags & F_PAD != 0 && len == bytes - off {
                pos += len;
                continue;
            }
            let size = record_size(len as usize);
            if flags & F_PAD != 0 || off + size > bytes || size > bytes / 2 {
                // A header no sender of this format writes (a foreign writer's bug, or
                // memory scribbled on): skip everything committed so far.
                let tail = ctrl.tail.0.pos.load(Ordering::Acquire);
                self.release(tail);
                return Err(GetFail::Empty { pos: tail });
            }
            // SAFETY: the record is committed (its seq acquired above), lies inside the
            // ring without crossing its end (checked), and is not rewritten until
            // `head.pos` moves past it, which only the holder of the reader word does.
            let data = unsafe {
                std::slice::from_raw_parts(self.rec_ptr(pos + REC).cast_const(), len as usize)
            };
            return Ok(Record {
                end: pos + size,
                flags,
                data,
            });
        }
    }

    /// Moves the read position to `end` (the caller holds the reader word), publishing
    /// it to the sender every [`publish_every`](Self::publish_every) bytes.
    fn release(&self, end: u64) {
        let ctrl = self.ctrl();
        // Release: a later reader (another thread or process) starts from here and
        // sees everything before it as read.
        ctrl.count.0.n.store(end as i64, Ordering::Release);
        if end.wrapping_sub(ctrl.head.0.pos.load(Ordering::Relaxed)) >= self.publish_every() {
            self.publish(end);
        }
    }

    /// Frees the bytes before `end` for the sender, waking it if it sleeps. Needs no
    /// word held: `fetch_max` keeps `head.pos` monotonic whoever publishes.
    fn publish(&self, end: u64) {
        let ctrl = self.ctrl();
        // SeqCst: ordered before the load of `sleepers` (Dekker with the sleep phase of
        // a wait for room).
        ctrl.head.0.pos.fetch_max(end, Ordering::SeqCst);
        let w = &ctrl.space.0;
        if w.sleepers.load(Ordering::SeqCst) != 0 {
            self.map.wake_space();
        }
    }

    /// Takes the next committed record, waiting until `deadline`.
    fn next_record(&self, deadline: Deadline) -> Result<(Held<'_>, Record<'_>), WaitFail> {
        let reader = &self.ctrl().count.0.reader;
        self.wait_loop(deadline, true, || {
            self.maybe_readable()?;
            let held = self.take_end(reader)?;
            match self.peek() {
                Ok(r) => Ok((held, r)),
                Err(e) => Err(blocked(e)),
            }
        })
    }

    /// Takes the next whole message: a record in place, or a streamed one gathered.
    fn next_whole(&self, deadline: Deadline) -> Result<Whole<'_>, WaitFail> {
        let mut next = None;
        loop {
            let (held, rec) = match next.take() {
                Some(r) => r,
                None => self.next_record(deadline)?,
            };
            if rec.flags & PARTS == 0 {
                return Ok(Whole::InPlace(held, rec));
            }
            if rec.flags & F_PART_BEGIN == 0 {
                // The rest of a message whose receiver died while reading it: skipped.
                self.release(rec.end);
                continue;
            }
            match self.gather(held, rec) {
                Ok(buf) => return Ok(Whole::Gathered(buf)),
                Err(Cut::Next(held, rec)) => next = Some((held, rec)),
                Err(Cut::Gone(e)) => return Err(e),
                Err(Cut::Skip) => {}
            }
        }
    }

    /// Reads the parts of the streamed message whose first part is `first`, holding the
    /// reader word throughout.
    fn gather<'a>(&'a self, held: Held<'a>, first: Record<'a>) -> Result<Vec<u8>, Cut<'a>> {
        let Some(header) = first.data.first_chunk::<8>() else {
            self.release(first.end);
            return Err(Cut::Skip);
        };
        let total = u64::from_le_bytes(*header) as usize;
        let mut buf = Vec::with_capacity(total.min(1 << 32));
        buf.extend_from_slice(&first.data[8..]);
        self.release(first.end);
        let writer = &self.ctrl().tail.0.owner;
        loop {
            // The parts of an accepted message come whatever the deadline: wait until
            // they do, or until the sender is gone (the wait loop checks it is alive).
            let part = self.wait_loop(Deadline::NEVER, true, || {
                self.maybe_readable()?;
                match self.peek() {
                    Ok(r) => Ok(r),
                    // Closed while the sender still streams: its parts still come.
                    Err(GetFail::Closed) if writer.load(Ordering::Acquire) != 0 => {
                        Err(Blocked::Idle)
                    }
                    Err(e) => Err(blocked(e)),
                }
            });
            let rec = match part {
                Ok(rec) => rec,
                Err(e) => return Err(Cut::Gone(e)),
            };
            if rec.flags & (F_PART_MID | F_PART_END) == 0 {
                return Err(Cut::Next(held, rec));
            }
            buf.extend_from_slice(rec.data);
            self.release(rec.end);
            if rec.flags & F_PART_END != 0 {
                return if buf.len() == total {
                    Ok(buf)
                } else {
                    Err(Cut::Skip)
                };
            }
        }
    }

    /// Takes the next whole message, waiting until `deadline`; `f` reads it in place.
    pub(crate) fn get<R>(
        &self,
        deadline: Deadline,
        f: impl FnOnce(Bytes<'_>) -> R,
    ) -> Result<R, WaitFail> {
        match self.next_whole(deadline)? {
            Whole::InPlace(held, rec) => {
                let out = f(Bytes::Slice(rec.data));
                self.release(rec.end);
                drop(held);
                Ok(out)
            }
            Whole::Gathered(buf) => Ok(f(Bytes::Slice(&buf))),
        }
    }

    /// Whether a get would find something now (or the ring is closed and drained).
    /// Finding nothing, it hands the read position to the sender, as a `recv` would: a
    /// receiver waiting in `poll` must not leave a sender waiting for room it has read.
    pub(crate) fn readable(&self) -> bool {
        let ctrl = self.ctrl();
        let pos = self.read_pos();
        if self.rec_header(pos).seq.load(Ordering::Acquire) == pos + 1
            || (self.map.is_closed() && ctrl.tail.0.pos.load(Ordering::Acquire) == pos)
        {
            return true;
        }
        if ctrl.head.0.pos.load(Ordering::Relaxed) != pos {
            self.publish(pos);
        }
        false
    }

    /// Records committed and not yet taken, counted by walking from head to tail.
    pub(crate) fn len(&self) -> usize {
        let ctrl = self.ctrl();
        let mut pos = self.read_pos();
        let tail = ctrl.tail.0.pos.load(Ordering::Acquire);
        let mut n = 0;
        while signed(tail, pos) > 0 {
            let h = self.rec_header(pos);
            if h.seq.load(Ordering::Acquire) != pos + 1 {
                break;
            }
            let flags = h.flags.load(Ordering::Relaxed);
            let len = u64::from(h.len.load(Ordering::Relaxed));
            if flags & F_PAD != 0 {
                pos += len.max(REC);
                continue;
            }
            if flags & (F_PART_MID | F_PART_END) == 0 {
                n += 1;
            }
            pos += record_size(len as usize);
        }
        n
    }

    /// Cells' worth of bytes taken by records not yet released.
    pub(crate) fn used_cells(&self) -> u64 {
        let tail = self.ctrl().tail.0.pos.load(Ordering::SeqCst);
        let used = signed(tail, self.read_pos()).max(0) as u64;
        used.div_ceil(self.map.cell_size as u64)
    }

    /// Sends one message, waiting for room until `deadline`.
    pub(crate) fn put(&self, data: &[u8], deadline: Deadline) -> Result<(), WaitFail> {
        if data.len() > self.max_inline() {
            return self.put_streamed(data, deadline);
        }
        let writer = &self.ctrl().tail.0.owner;
        self.wait_loop(deadline, false, || {
            if self.map.is_closed() {
                return Err(Blocked::Closed);
            }
            let held = self.take_end(writer)?;
            self.push(None, data, F_FIRST).map_err(Blocked::Full)?;
            drop(held);
            Ok(())
        })?;
        // Wake a sleeping receiver only once the writer word is free: woken on this CPU,
        // it would otherwise run while the word is held, and, finding it held when it
        // next waits, could only nap instead of sleeping until woken.
        self.map.wake_data();
        Ok(())
    }

    /// Streams `data` in parts while holding the writer word.
    fn put_streamed(&self, data: &[u8], deadline: Deadline) -> Result<(), WaitFail> {
        let writer = &self.ctrl().tail.0.owner;
        let _held = self.wait_loop(deadline, false, || {
            if self.map.is_closed() {
                return Err(Blocked::Closed);
            }
            self.take_end(writer)
        })?;
        let part = self.part_len();
        let head_len = part - 8;
        self.wait_loop(deadline, false, || {
            self.push(
                Some(data.len() as u64),
                &data[..head_len],
                F_FIRST | F_PART_BEGIN,
            )
            .map_err(Blocked::Full)
        })?;
        self.map.wake_data();
        let rest = &data[head_len..];
        let n = rest.len().div_ceil(part);
        for (i, chunk) in rest.chunks(part).enumerate() {
            let flag = if i + 1 == n { F_PART_END } else { F_PART_MID };
            // The first part is in: the message is accepted, and its rest goes in even
            // after `close`, whatever the deadline, unless the receiver is gone.
            self.wait_loop(Deadline::NEVER, false, || {
                self.push(None, chunk, F_FIRST | flag)
                    .map_err(Blocked::Full)
            })?;
            self.map.wake_data();
        }
        Ok(())
    }

    /// Whether the byte at previous-lap position `pos` has been released.
    fn released(&self, pos: u64) -> bool {
        signed(self.ctrl().head.0.pos.load(Ordering::Relaxed), pos) > 0
    }

    /// Sends `msgs` one record each, waiting for room until `deadline`; on failure the
    /// error comes with the count already sent.
    pub(crate) fn put_batch(
        &self,
        msgs: &[&[u8]],
        deadline: Deadline,
    ) -> Result<(), (usize, WaitFail)> {
        for (done, m) in msgs.iter().enumerate() {
            self.put(m, deadline).map_err(|e| (done, e))?;
        }
        Ok(())
    }

    /// Takes the next whole message as a batch of one (records are taken one at a time),
    /// waiting until `deadline`.
    pub(crate) fn get_batch(
        &self,
        deadline: Deadline,
        f: impl FnMut(Bytes<'_>),
    ) -> Result<usize, WaitFail> {
        self.get(deadline, f).map(|()| 1)
    }

    /// Waits until [`readable`](Self::readable) or the deadline; `give_up` is asked now
    /// and then while nothing comes ("is the sender dead?").
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
            Err(Blocked::Idle)
        })
        .unwrap_or(false)
    }
}

/// Classifies a failed look for a record for the wait loop.
fn blocked(fail: GetFail) -> Blocked {
    match fail {
        GetFail::Closed => Blocked::Closed,
        GetFail::Empty { pos } => Blocked::Empty(pos),
    }
}

impl Blocking for Ring {
    fn mapped(&self) -> &Mapped {
        &self.map
    }

    fn spin(&self) -> &Spin {
        &self.spin
    }

    /// The sender's CPU on the writer's line, the receiver's on its own line.
    fn peer_cpu(&self, for_data: bool) -> &AtomicU32 {
        if for_data {
            &self.ctrl().tail.0.cpu
        } else {
            &self.ctrl().count.0.cpu
        }
    }

    fn room_ahead(&self, blocked: u64) -> bool {
        self.released(blocked.wrapping_add(self.ring_bytes() / 8))
    }

    fn peer_gone(&self, for_data: bool) -> bool {
        self.peer_dead(for_data)
    }

    /// A sender takes the bytes read but not yet handed back (see
    /// [`adopt_read_pos`](Ring::adopt_read_pos)). A receiver reads the writer word
    /// before it looks for data: a send in progress commits without a fence, so the
    /// receiver only naps while the word is held (see [`take_end`](Ring::take_end)).
    fn going_to_sleep(&self, for_data: bool) -> bool {
        if for_data {
            self.ctrl().tail.0.owner.load(Ordering::SeqCst) != 0
        } else {
            self.adopt_read_pos();
            false
        }
    }

    /// Nothing to settle here (a dead holder of an end is taken over by the next
    /// attempt): a brief nap while the other end is inside an operation, else until
    /// woken or the next check that the peer lives.
    fn nap(&self, _for_data: bool, blocked: Blocked, busy_peer: bool, _: &mut Stuck) -> Duration {
        match blocked {
            Blocked::Busy | Blocked::Claimed(_) => wait::CLAIM_NAP,
            _ if busy_peer => wait::CLAIM_NAP,
            _ => wait::PEER_CHECK,
        }
    }
}

#[cfg(test)]
mod tests;
