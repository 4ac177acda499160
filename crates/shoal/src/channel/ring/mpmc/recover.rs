//! Crash recovery: turning a dead process's claims into tombstones or free cells.
//!
//! Only claims whose every covering slot belongs to a dead process are touched; the real
//! claimant is always among the covering slots (it wrote its slot before its CAS), so a
//! live claimant always prevents recovery. A dead process writes nothing more, so one
//! CAS per cell on its `seq` is the whole repair. The slots are read once per repair and
//! each dead process is asked about once: the whole claim of a dead process is repaired
//! in one pass, whatever its length.

use std::sync::atomic::{AtomicU64, Ordering};

use super::super::claim;
use super::super::layout::*;
use super::super::signed;
use super::{Message, Ring, TOMB_BIT};

impl Ring {
    /// Whether a dead owner's slot records no claim that is still unsettled.
    pub(super) fn claim_resolved(&self, s: &Slot) -> bool {
        let head = self.ctrl().head.0.pos.load(Ordering::SeqCst);
        let p = s.put_pos.load(Ordering::SeqCst);
        let put_done =
            p == IDLE || signed(head, p.wrapping_add(s.put_cells.load(Ordering::SeqCst))) >= 0;
        let g = s.get_pos.load(Ordering::SeqCst);
        let get_done = g == IDLE
            || (0..s.get_cells.load(Ordering::SeqCst).min(self.map.cells)).all(|j| {
                let pos = g + j;
                self.cell(pos).seq.load(Ordering::SeqCst) & !TOMB_BIT != pos + 1
            });
        put_done && get_done
    }

    /// A consumer found the cell at `pos` claimed by a producer but uncommitted for a
    /// while. If every slot whose put claim covers `pos` belongs to a dead process, the
    /// cell becomes a tombstone (the message was never acknowledged: skipping it is
    /// correct), and so does every cell after it up to the first one that a live claim
    /// covers, that no claim covers, or that nobody has claimed yet: the whole claim of
    /// the dead producer is repaired at once, with one liveness check per dead process.
    /// Returns whether the cell at `pos` is now readable.
    pub(crate) fn recover_put_claim(&self, pos: u64) -> bool {
        // `tail` first: every claim below it was recorded in its claimant's slot before
        // the CAS that moved `tail` past it, so the snapshot taken next includes it.
        let tail = self.tail_pos();
        if signed(tail, pos) <= 0 {
            return false;
        }
        let mut claims = Claims::of(self, |s| (&s.put_pos, &s.put_cells));
        if !claims.dead_only(pos) {
            return false;
        }
        // Each cell is checked against the same snapshot: a cell below `tail` is claimed
        // once per lap, and its claimant's record is in the snapshot until it commits; a
        // cell that a live claimant has committed meanwhile no longer holds `seq == q`,
        // so the CAS fails on it. A racing recoverer's CAS fails harmlessly too.
        let mut q = pos;
        while signed(tail, q) > 0 && q.wrapping_sub(pos) < self.map.cells && claims.dead_only(q) {
            let _ = self.cell(q).seq.compare_exchange(
                q,
                (q + 1) | TOMB_BIT,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            q += 1;
        }
        self.after_commit(0);
        true
    }

    /// A producer (or a waiting consumer) found the cell at position `pos` consumed
    /// (head passed it) but never released. If every slot whose get claim covers it
    /// belongs to a dead process, the claim is settled, together with the cells after
    /// it that only dead consumers' claims cover (one liveness check per dead process):
    /// a whole message whose consumer died before its `get` returned is put again (at the
    /// tail: it comes after the messages put meanwhile), so that no acknowledged message
    /// dies with a consumer; anything else (a tombstone, the rest of a message already
    /// partly released, a part of a streamed message) is released. Returns whether a
    /// cell was settled here.
    pub(crate) fn recover_get_claim(&self, pos: u64) -> bool {
        self.settle_dead_gets(pos, self.map.cells)
    }

    /// Settles the cells from `from` on (at most `most` of them) that are behind `head`
    /// and covered only by dead consumers' get claims; see
    /// [`recover_get_claim`](Self::recover_get_claim).
    fn settle_dead_gets(&self, from: u64, most: u64) -> bool {
        // `head` first, for the same reason as `tail` in `recover_put_claim`: a cell
        // behind it was claimed, and its claimant's record is in the snapshot. A record
        // covering cells at or past `head` is stale (its owner died before its CAS, or
        // after losing it): those cells hold messages nobody has claimed, left alone.
        let head = self.ctrl().head.0.pos.load(Ordering::SeqCst);
        let mut claims = Claims::of(self, |s| (&s.get_pos, &s.get_cells));
        let mut settled = false;
        let mut rescued = Vec::new();
        let mut q = from;
        while signed(head, q) > 0 && q.wrapping_sub(from) < most && claims.dead_only(q) {
            settled |= self.settle_get_cell(q, &mut rescued);
            q += 1;
        }
        if settled {
            self.map.wake_space();
        }
        // The rescued messages are put again only once the whole range is free: putting
        // one may need the room the rest of the range holds. (A recoverer killed before
        // these puts loses them: a second crash.)
        for bytes in rescued {
            let _ = self.force_put_blocking(&bytes);
        }
        settled
    }

    /// Frees the cell at `pos` of a dead consumer's claim, first copying the message out
    /// into `rescued` when the cell is the first one of a whole message. Returns whether
    /// this call freed it (of racing recoverers, one does).
    fn settle_get_cell(&self, pos: u64, rescued: &mut Vec<Vec<u8>>) -> bool {
        let c = self.cell(pos);
        // Read before the release: once released, the cell may be rewritten at once.
        let flags = c.flags.load(Ordering::Relaxed);
        let whole = flags & F_FIRST != 0 && flags & (F_PART_BEGIN | F_PART_MID | F_PART_END) == 0;
        // A consumer releases the first cell of a message first: while it is held, every
        // cell of the message is, and its bytes are intact. Copy them out now.
        let copy = (whole && c.seq.load(Ordering::Acquire) == pos + 1).then(|| {
            let len = c.len.load(Ordering::Relaxed) as usize;
            let cells = self.cells_for(len).min(self.map.cells / 2);
            let m = Message {
                ring: self,
                slot: self.map.slot_at(0),
                pos,
                cells,
                len: len.min(cells as usize * self.map.data_per_cell),
                flags,
                release: false,
            };
            let mut v = Vec::new();
            m.append_from(0, &mut v);
            (v, cells)
        });
        for committed in [pos + 1, (pos + 1) | TOMB_BIT] {
            if c.seq
                .compare_exchange(
                    committed,
                    pos + self.map.cells,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                // The message bound counted this message until its consumer released it.
                let counted = committed & TOMB_BIT == 0 && whole;
                if counted && self.map.max_messages != 0 {
                    self.ctrl().count.0.n.fetch_sub(1, Ordering::Relaxed);
                }
                if let (Some((bytes, cells)), false) = (copy, committed & TOMB_BIT != 0) {
                    // This recoverer won the first cell: release the rest of the message;
                    // the caller puts it again.
                    for j in 1..cells {
                        let p = pos + j;
                        let _ = self.cell(p).seq.compare_exchange(
                            p + 1,
                            p + self.map.cells,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    rescued.push(bytes);
                }
                return true;
            }
        }
        false
    }

    /// Settles every claim still held by a dead consumer (see
    /// [`recover_get_claim`](Self::recover_get_claim)). Producers of a queue bounded by
    /// message count call it while they wait (a dead consumer's claim would otherwise
    /// hold a unit of the bound without ever being met at the tail), and consumers while
    /// they wait for data (so that a message whose consumer died is put again even when
    /// no producer laps the ring).
    pub(crate) fn recover_dead_consumers(&self) {
        for i in 0..SLOTS {
            let s = self.map.slot_at(i);
            let owner = s.owner.load(Ordering::SeqCst);
            let p = s.get_pos.load(Ordering::SeqCst);
            if owner == 0 || p == IDLE || claim::owner_alive(owner) {
                continue;
            }
            let k = s.get_cells.load(Ordering::SeqCst).min(self.map.cells);
            self.settle_dead_gets(p, k);
            // Settled: forget the claim, so that later scans skip this slot without
            // asking the kernel about its dead owner again.
            let settled = (0..k).all(|j| {
                let q = p + j;
                self.cell(q).seq.load(Ordering::SeqCst) & !TOMB_BIT != q + 1
            });
            if settled {
                let _ = s
                    .get_pos
                    .compare_exchange(p, IDLE, Ordering::SeqCst, Ordering::Relaxed);
            }
        }
    }
}

/// A snapshot of the put (or get) claims recorded in the slots, and the liveness of
/// their owners, asked of the kernel at most once per process and snapshot.
struct Claims {
    /// First position, length in cells, owner's pid.
    claims: Vec<(u64, u64, u32)>,
    /// Pids asked about so far, and whether they run.
    asked: Vec<(u32, bool)>,
}

impl Claims {
    /// The claims of every owned slot, as picked by `range` (first position, cells).
    fn of(ring: &Ring, range: impl Fn(&Slot) -> (&AtomicU64, &AtomicU64)) -> Claims {
        let mut claims = Vec::new();
        for i in 0..SLOTS {
            let s = ring.map.slot_at(i);
            let owner = s.owner.load(Ordering::SeqCst);
            if owner == 0 {
                continue;
            }
            let (first, cells) = range(s);
            let p = first.load(Ordering::SeqCst);
            if p != IDLE {
                let k = cells.load(Ordering::SeqCst).min(ring.map.cells);
                claims.push((p, k, (owner >> 32) as u32));
            }
        }
        Claims {
            claims,
            asked: Vec::new(),
        }
    }

    /// Whether the process `pid` runs (this process always does).
    fn alive(&mut self, pid: u32) -> bool {
        if let Some(&(_, alive)) = self.asked.iter().find(|(p, _)| *p == pid) {
            return alive;
        }
        let alive = claim::owner_alive(u64::from(pid) << 32);
        self.asked.push((pid, alive));
        alive
    }

    /// Whether at least one claim covers `pos` and every claim covering it belongs to a
    /// dead process. The real claimant is always among the covering claims (it wrote
    /// its slot before its CAS), so a live one says no.
    fn dead_only(&mut self, pos: u64) -> bool {
        let mut covered = false;
        for i in 0..self.claims.len() {
            let (p, k, pid) = self.claims[i];
            if signed(pos, p) >= 0 && signed(pos, p.wrapping_add(k)) < 0 {
                if self.alive(pid) {
                    return false;
                }
                covered = true;
            }
        }
        covered
    }
}
