//! Taking several messages with one claim (`get_many`).

use std::sync::atomic::Ordering;

use crate::sys::Deadline;

use super::super::layout::*;
use super::super::wait::{self, Blocking};
use super::super::{Bytes, GetFail, WaitFail};
use super::{Message, Ring, TOMB_BIT};

const PARTS: u32 = F_PART_BEGIN | F_PART_MID | F_PART_END;

impl Ring {
    /// Claims, in one CAS of `head`, up to `max` consecutive committed messages (and the
    /// tombstones between them) that are not parts of a streamed message. Returns the
    /// first position and the number of cells; `Ok((pos, 0))` when the message at `head`
    /// is a part (the caller takes it with the single-message path).
    fn claim_batch(&self, slot: &Slot, max: usize) -> Result<(u64, u64), GetFail> {
        let ctrl = self.ctrl();
        let mut pos = ctrl.head.0.pos.load(Ordering::Relaxed);
        loop {
            let mut end = pos;
            let mut n = 0;
            let mut part_at_head = false;
            while n < max && end - pos < self.map.cells {
                let c = self.cell(end);
                let raw = c.seq.load(Ordering::Acquire);
                if raw & !TOMB_BIT != end + 1 {
                    break;
                }
                let k = if raw & TOMB_BIT != 0 {
                    1
                } else {
                    let flags = c.flags.load(Ordering::Relaxed);
                    if flags & F_FIRST == 0 {
                        1
                    } else if flags & PARTS != 0 {
                        part_at_head = end == pos;
                        break;
                    } else {
                        n += 1;
                        let k = self.cells_for(c.len.load(Ordering::Relaxed) as usize);
                        if k > self.map.cells / 2 {
                            1 // an impossible header (stale read): the CAS will fail
                        } else {
                            k
                        }
                    }
                };
                end += k;
            }
            if end == pos {
                if part_at_head {
                    return Ok((pos, 0));
                }
                let now = ctrl.head.0.pos.load(Ordering::Relaxed);
                if now != pos {
                    pos = now;
                    continue;
                }
                return Err(self.nothing_at(pos));
            }
            slot.get_cells.store(end - pos, Ordering::Relaxed);
            slot.get_pos.store(pos, Ordering::Relaxed);
            match ctrl.head.0.pos.compare_exchange_weak(
                pos,
                end,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    wait::note_cpu(&ctrl.head.0.cpu);
                    return Ok((pos, end - pos));
                }
                Err(now) => {
                    slot.get_pos.store(IDLE, Ordering::Relaxed);
                    pos = now;
                }
            }
        }
    }

    /// Takes up to `max` messages (at least one, waiting until `deadline` for it) with as
    /// few claims as possible, handing each to `f` in order; returns how many.
    pub(crate) fn get_batch(
        &self,
        max: usize,
        deadline: Deadline,
        mut f: impl FnMut(Bytes<'_>),
    ) -> Result<usize, WaitFail> {
        let Some((slot, _)) = self.my_slot() else {
            return Err(WaitFail::Timeout);
        };
        loop {
            let (pos, cells) = self.wait_loop(deadline, true, || {
                self.claim_batch(slot, max)
                    .map_err(|e| self.get_blocked_lazy(e))
            })?;
            if cells == 0 {
                // A streamed message at the head: take it alone.
                return self.get(deadline, f).map(|()| 1);
            }
            let n = self.read_batch(slot, pos, cells, &mut f);
            if n > 0 {
                return Ok(n);
            }
            // Only tombstones: go on waiting for a message.
        }
    }

    /// Hands the messages of a claimed batch to `f`, then releases all its cells.
    fn read_batch(
        &self,
        slot: &Slot,
        pos: u64,
        cells: u64,
        f: &mut impl FnMut(Bytes<'_>),
    ) -> usize {
        let mut n = 0;
        let mut at = pos;
        while at < pos + cells {
            let c = self.cell(at);
            let raw = c.seq.load(Ordering::Acquire);
            let flags = c.flags.load(Ordering::Relaxed);
            if raw & TOMB_BIT != 0 || flags & F_FIRST == 0 {
                at += 1;
                continue;
            }
            let len = c.len.load(Ordering::Relaxed) as usize;
            let k = self.cells_for(len);
            let m = Message {
                ring: self,
                slot,
                pos: at,
                cells: k,
                len,
                flags,
                release: false,
            };
            f(Bytes::Cells(&m));
            n += 1;
            at += k;
        }
        self.release(pos, cells, n as u64, slot);
        n
    }
}
