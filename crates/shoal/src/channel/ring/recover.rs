//! Crash recovery: turning a dead process's claims into tombstones or free cells.
//!
//! Only claims whose every covering slot belongs to a dead process are touched; the real
//! claimant is always among the covering slots (it wrote its slot before its CAS), so a
//! live claimant always prevents recovery. A dead process writes nothing more, so a
//! single CAS on the cell's `seq` is the whole repair.

use std::sync::atomic::{AtomicU64, Ordering};

use super::claim;
use super::layout::*;
use super::{signed, Ring, TOMB_BIT};

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

    /// A producer found the cell at previous-lap position `pos` consumed (head passed
    /// it) but never released. If every slot whose get claim covers it belongs to a dead
    /// process, the cell is released (the message died with its consumer).
    pub(crate) fn recover_get_claim(&self, pos: u64) -> bool {
        if !self.claimants_all_dead(pos, |s| (&s.get_pos, &s.get_cells)) {
            return false;
        }
        let c = self.cell(pos);
        // Read before the release: once released, the cell may be rewritten at once.
        let flags = c.flags.load(Ordering::Relaxed);
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
                let counted = committed & TOMB_BIT == 0
                    && flags & F_FIRST != 0
                    && flags & (F_PART_MID | F_PART_END) == 0;
                if counted && self.max_messages != 0 {
                    self.ctrl().count.0.n.fetch_sub(1, Ordering::Relaxed);
                }
                self.wake_space();
                return true;
            }
        }
        false
    }

    /// Releases every cell still held by a dead consumer. Producers of a queue bounded by
    /// message count call it while they wait: there, a dead consumer's claim would hold
    /// a unit of the bound forever without ever being met at the tail.
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
        }
    }
}
