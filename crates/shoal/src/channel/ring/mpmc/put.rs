//! The producer side of the multi-producer ring, top to bottom: `put` waits for room
//! and hands over to `try_put`, which claims cells (`claim_put`), copies the message in
//! (`write_commit`) and commits it (`commit_cells`), then wakes sleeping consumers
//! (`after_commit`). Batches (`put_batch`) claim the cells of several messages at once.

use std::sync::atomic::Ordering;

use crate::sys::Deadline;

use super::super::claim::Token;
use super::super::layout::*;
use super::super::wait::{self, Blocked, Blocking};
use super::super::{signed, PutFail, WaitFail};
use super::{Ring, STREAM_BIT, TOMB_BIT};

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

impl Ring {
    /// Puts one message, waiting for room until `deadline`.
    pub(crate) fn put(&self, data: &[u8], deadline: Deadline) -> Result<(), WaitFail> {
        if data.len() > self.max_inline() {
            return self.put_streamed(data, deadline);
        }
        self.wait_loop(deadline, false, || {
            self.try_put(data, 0).map_err(|f| self.put_blocked(f))
        })
    }

    /// Puts one message (at most [`max_inline`](Self::max_inline) bytes) without waiting.
    pub(crate) fn try_put(&self, data: &[u8], flags: u32) -> Result<(), PutFail> {
        debug_assert!(data.len() <= self.max_inline());
        let (slot, token) = self.my_slot().ok_or(PutFail::Full { blocked: 0 })?;
        let k = self.cells_for(data.len());
        let pos = self.claim_put(k, slot, token, false)?;
        self.write_commit(pos, data, flags);
        slot.put_pos.store(IDLE, Ordering::Release);
        self.after_commit(u64::from(flags & (F_PART_MID | F_PART_END) == 0));
        Ok(())
    }

    /// Classifies a failed put for the wait loop.
    pub(super) fn put_blocked(&self, fail: PutFail) -> Blocked {
        match fail {
            PutFail::Closed => Blocked::Closed,
            PutFail::Streaming => {
                self.recover_dead_writer();
                Blocked::Idle
            }
            PutFail::Full { blocked } => {
                // Consumed but not released: a consumer is between its CAS and release.
                let head = self.ctrl().head.0.pos.load(Ordering::SeqCst);
                if signed(head, blocked) > 0 && self.map.max_messages == 0 {
                    Blocked::Claimed(blocked)
                } else {
                    Blocked::Full(blocked)
                }
            }
        }
    }

    /// Claims `k` free cells; returns the first position. `finishing` is set for the
    /// parts of a streamed message already accepted: they ignore `closed` and the bound.
    pub(super) fn claim_put(
        &self,
        k: u64,
        slot: &Slot,
        token: Token,
        finishing: bool,
    ) -> Result<u64, PutFail> {
        let ctrl = self.ctrl();
        if !finishing {
            if ctrl.geometry.0.closed.load(Ordering::Relaxed) != 0 {
                return Err(PutFail::Closed);
            }
            if self.map.max_messages != 0
                && ctrl.count.0.n.load(Ordering::Relaxed) >= self.map.max_messages as i64
            {
                let head = ctrl.head.0.pos.load(Ordering::Relaxed);
                return Err(PutFail::Full {
                    blocked: head.wrapping_sub(self.map.cells),
                });
            }
        }
        let mut raw = ctrl.tail.0.pos.load(Ordering::Relaxed);
        'outer: loop {
            // While a message is streamed, `tail` carries STREAM_BIT and only the stream
            // writer may claim: a producer that read `tail` before the bit was set fails
            // its CAS, so no message can land between two parts.
            if raw & STREAM_BIT != 0 && ctrl.stream.0.writer.load(Ordering::Acquire) != token {
                return Err(PutFail::Streaming);
            }
            let pos = raw & !STREAM_BIT;
            for j in 0..k {
                let p = pos + j;
                let seq = self.cell(p).seq.load(Ordering::Acquire) & !TOMB_BIT;
                let diff = signed(seq, p);
                if diff < 0 {
                    let now = ctrl.tail.0.pos.load(Ordering::Relaxed);
                    if now != raw {
                        raw = now;
                        continue 'outer;
                    }
                    return Err(PutFail::Full {
                        blocked: p.wrapping_sub(self.map.cells),
                    });
                } else if diff > 0 {
                    raw = ctrl.tail.0.pos.load(Ordering::Relaxed);
                    continue 'outer;
                }
            }
            slot.put_cells.store(k, Ordering::Relaxed);
            slot.put_pos.store(pos, Ordering::Relaxed);
            match ctrl.tail.0.pos.compare_exchange_weak(
                raw,
                (pos + k) | (raw & STREAM_BIT),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    wait::note_cpu(&ctrl.tail.0.cpu);
                    // The cells a few messages ahead were last written by a consumer one
                    // lap ago: fetch them for writing now, so that the next puts find
                    // them owned instead of paying a shared read and then an upgrade.
                    prefetch_write(self.cell_ptr(pos + k + PREFETCH_AHEAD));
                    return Ok(pos);
                }
                Err(now) => {
                    // No claim: a record left behind would cover cells another producer
                    // claims, and keep a dead one's claim there from being repaired for
                    // as long as this thread waits (it rewrites the record only when it
                    // next finds room).
                    slot.put_pos.store(IDLE, Ordering::Relaxed);
                    raw = now;
                }
            }
        }
    }

    /// Copies `data` into the cells from `pos` and commits them; returns cells used.
    pub(super) fn write_commit(&self, pos: u64, data: &[u8], flags: u32) -> u64 {
        let per = self.map.data_per_cell;
        for (j, chunk) in data.chunks(per).enumerate() {
            // SAFETY: the cells pos..pos+k are claimed by this thread (CAS on tail) and
            // free (seq checked), so nobody else reads or writes their data; each chunk
            // is at most data_per_cell bytes, which fit after the header.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    chunk.as_ptr(),
                    self.cell_ptr(pos + j as u64).add(CELL_HEADER),
                    chunk.len(),
                );
            }
        }
        self.commit_cells(pos, data.len(), flags)
    }

    /// Writes the headers of the message of `len` bytes at `pos` (its data in place) and
    /// commits it: continuation cells first, the first cell last. Returns cells used.
    pub(super) fn commit_cells(&self, pos: u64, len: usize, flags: u32) -> u64 {
        let k = self.cells_for(len);
        for j in 1..k {
            let c = self.cell(pos + j);
            c.len.store(j as u32, Ordering::Relaxed);
            c.flags.store(F_CONT, Ordering::Relaxed);
            c.seq.store(pos + j + 1, Ordering::Release);
        }
        let c = self.cell(pos);
        c.len.store(len as u32, Ordering::Relaxed);
        c.flags.store(F_FIRST | flags, Ordering::Relaxed);
        // The commit: everything above becomes visible to the consumer that acquires it.
        c.seq.store(pos + 1, Ordering::Release);
        k
    }

    /// After the commit of `messages` messages: counts them when the ring is bounded,
    /// and wakes the sleeping consumers (Dekker pair: our CAS of `tail` precedes the
    /// load of `sleepers`, see [`Mapped::wake_data`](super::super::Mapped::wake_data)).
    pub(super) fn after_commit(&self, messages: u64) {
        if self.map.max_messages != 0 {
            let count = &self.ctrl().count.0.n;
            count.fetch_add(messages as i64, Ordering::Relaxed);
        }
        self.map.wake_data();
    }

    /// Puts as many of `msgs` as fit, in one claim; returns how many were put.
    /// Every message must be at most `max_inline` bytes.
    pub(crate) fn try_put_batch(&self, msgs: &[&[u8]]) -> Result<usize, PutFail> {
        let (slot, token) = self.my_slot().ok_or(PutFail::Full { blocked: 0 })?;
        let mut n = msgs.len();
        if self.map.max_messages != 0 {
            let count = self.ctrl().count.0.n.load(Ordering::Relaxed).max(0) as u64;
            n = n.min(self.map.max_messages.saturating_sub(count) as usize);
        }
        let mut k: u64 = 0;
        let mut take = 0;
        for m in &msgs[..n] {
            let c = self.cells_for(m.len());
            if k + c > self.map.cells / 2 && take > 0 {
                break;
            }
            k += c;
            take += 1;
        }
        if take == 0 {
            return self.try_put(msgs[0], 0).map(|()| 1);
        }
        // Fall back to fewer messages when the whole batch does not fit.
        loop {
            match self.claim_put(k, slot, token, false) {
                Ok(mut pos) => {
                    for m in &msgs[..take] {
                        pos += self.write_commit(pos, m, 0);
                    }
                    slot.put_pos.store(IDLE, Ordering::Release);
                    self.after_commit(take as u64);
                    return Ok(take);
                }
                Err(PutFail::Full { blocked }) if take > 1 => {
                    take = take.div_ceil(2);
                    k = msgs[..take].iter().map(|m| self.cells_for(m.len())).sum();
                    let _ = blocked;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Puts a batch, waiting for room; returns how many were put (all unless closed
    /// or timed out, in which case the error comes with the count already put).
    pub(crate) fn put_batch(
        &self,
        msgs: &[&[u8]],
        deadline: Deadline,
    ) -> Result<(), (usize, WaitFail)> {
        let mut done = 0;
        while done < msgs.len() {
            if msgs[done].len() > self.max_inline() {
                self.put_streamed(msgs[done], deadline)
                    .map_err(|e| (done, e))?;
                done += 1;
                continue;
            }
            let end = msgs[done..]
                .iter()
                .position(|m| m.len() > self.max_inline())
                .map_or(msgs.len(), |i| done + i);
            let n = self
                .wait_loop(deadline, false, || {
                    self.try_put_batch(&msgs[done..end])
                        .map_err(|f| self.put_blocked(f))
                })
                .map_err(|e| (done, e))?;
            done += n;
        }
        Ok(())
    }
}
