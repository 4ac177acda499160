//! Crash recovery: turning a dead process's claims into tombstones or free cells.
//!
//! Only claims whose every covering slot belongs to a dead process are touched; the real
//! claimant is always among the covering slots (it wrote its slot before its CAS), so a
//! live claimant always prevents recovery. A dead process writes nothing more, so a
//! single CAS on the cell's `seq` is the whole repair.

use std::sync::atomic::{AtomicU64, Ordering};

use super::claim;
use super::layout::*;
use super::{signed, Message, Ring, TOMB_BIT};

impl Ring {
    /// Whether a dead owner's slot records no claim that is still unsettled.
    pub(super) fn claim_resolved(&self, s: &Slot) -> bool {
        let head = self.ctrl().head.0.pos.load(Ordering::SeqCst);
        let p = s.put_pos.load(Ordering::SeqCst);
        let put_done =
            p == IDLE || signed(head, p.wrapping_add(s.put_cells.load(Ordering::SeqCst))) >= 0;
        let g = s.get_pos.load(Ordering::SeqCst);
        let get_done = g == IDLE
            || (0..s.get_cells.load(Ordering::SeqCst).min(self.cells)).all(|j| {
                let pos = g + j;
                self.cell(pos).seq.load(Ordering::SeqCst) & !TOMB_BIT != pos + 1
            });
        put_done && get_done
    }

    // ----- crash recovery ------------------------------------------------------------

    /// Whether at least one slot's claim (its first position and length in cells,
    /// picked by `range`) covers `pos` and every such slot belongs to a dead process.
    /// The real claimant is always among the covering slots, so a live one says no.
    fn claimants_all_dead(
        &self,
        pos: u64,
        range: impl Fn(&Slot) -> (&AtomicU64, &AtomicU64),
    ) -> bool {
        let mut dead = false;
        for i in 0..SLOTS {
            let s = self.slot_at(i);
            let owner = s.owner.load(Ordering::SeqCst);
            if owner == 0 {
                continue;
            }
            let (first, cells) = range(s);
            let p = first.load(Ordering::SeqCst);
            let k = cells.load(Ordering::SeqCst);
            if p != IDLE && signed(pos, p) >= 0 && signed(pos, p.wrapping_add(k)) < 0 {
                if claim::owner_alive(owner) {
                    return false;
                }
                dead = true;
            }
        }
        dead
    }

    /// A consumer found the cell at `pos` claimed by a producer but uncommitted for a
    /// while. If every slot whose put claim covers `pos` belongs to a dead process, the
    /// cell becomes a tombstone (the message was never acknowledged: skipping it is
    /// correct). Returns whether the cell is now readable.
    pub(crate) fn recover_put_claim(&self, pos: u64) -> bool {
        if !self.claimants_all_dead(pos, |s| (&s.put_pos, &s.put_cells)) {
            return false;
        }
        // A dead process writes nothing more: one CAS turns the cell into a committed
        // tombstone; a racing recoverer's CAS fails harmlessly.
        let _ = self.cell(pos).seq.compare_exchange(
            pos,
            (pos + 1) | TOMB_BIT,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        self.after_commit(0);
        true
    }

    /// A producer (or a waiting consumer) found the cell at position `pos` consumed
    /// (head passed it) but never released. If every slot whose get claim covers it
    /// belongs to a dead process, the claim is settled: a whole message whose consumer
    /// died before its `get` returned is put again (at the tail: it comes after the
    /// messages put meanwhile), so that no acknowledged message dies with a consumer;
    /// anything else (a tombstone, the rest of a message already partly released, a part
    /// of a streamed message) is released. Returns whether the cell was settled here.
    pub(crate) fn recover_get_claim(&self, pos: u64) -> bool {
        if !self.claimants_all_dead(pos, |s| (&s.get_pos, &s.get_cells)) {
            return false;
        }
        let c = self.cell(pos);
        // Read before the release: once released, the cell may be rewritten at once.
        let flags = c.flags.load(Ordering::Relaxed);
        let whole = flags & F_FIRST != 0 && flags & (F_PART_BEGIN | F_PART_MID | F_PART_END) == 0;
        // A consumer releases the first cell of a message first: while it is held, every
        // cell of the message is, and its bytes are intact. Copy them out now.
        let rescued = (whole && c.seq.load(Ordering::Acquire) == pos + 1).then(|| {
            let len = c.len.load(Ordering::Relaxed) as usize;
            let cells = self.cells_for(len).min(self.cells / 2);
            let m = Message {
                ring: self,
                slot: self.slot_at(0),
                pos,
                cells,
                len: len.min(cells as usize * self.data_per_cell),
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
                    pos + self.cells,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                // The message bound counted this message until its consumer released it.
                let counted = committed & TOMB_BIT == 0 && whole;
                if counted && self.max_messages != 0 {
                    self.ctrl().count.0.n.fetch_sub(1, Ordering::Relaxed);
                }
                if let (Some((bytes, cells)), false) = (rescued, committed & TOMB_BIT != 0) {
                    // This recoverer won the first cell: release the rest, then put the
                    // message again. (Killed in between, it would lose it: a second
                    // crash.)
                    for j in 1..cells {
                        let p = pos + j;
                        let _ = self.cell(p).seq.compare_exchange(
                            p + 1,
                            p + self.cells,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    self.wake_space();
                    let _ = self.force_put_blocking(&bytes);
                    return true;
                }
                self.wake_space();
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
            let s = self.slot_at(i);
            let owner = s.owner.load(Ordering::SeqCst);
            let p = s.get_pos.load(Ordering::SeqCst);
            if owner == 0 || p == IDLE || claim::owner_alive(owner) {
                continue;
            }
            let k = s.get_cells.load(Ordering::SeqCst).min(self.cells);
            for j in 0..k {
                self.recover_get_claim(p + j);
            }
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
