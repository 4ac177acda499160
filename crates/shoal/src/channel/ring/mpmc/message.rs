//! A claimed message as seen by its consumer: its cells, read in place until it is
//! dropped (which releases them).

use super::super::layout::{Slot, CELL_HEADER, F_FIRST, F_PART_END, F_PART_MID};
use super::Ring;

/// One claimed, committed message, readable until dropped (dropping releases its cells).
pub(crate) struct Message<'a> {
    pub(super) ring: &'a Ring,
    pub(super) slot: &'a Slot,
    pub(super) pos: u64,
    pub(super) cells: u64,
    pub(super) len: usize,
    pub(super) flags: u32,
    /// Whether dropping the message releases its cells (not for the messages of a batch,
    /// whose cells are released together).
    pub(super) release: bool,
}

impl Message<'_> {
    /// Length in bytes.
    pub(in crate::channel::ring) fn len(&self) -> usize {
        self.len
    }

    /// Cells the message takes.
    pub(in crate::channel::ring) fn cells(&self) -> u64 {
        self.cells
    }

    /// The data of a message that fits one cell.
    pub(in crate::channel::ring) fn first_cell(&self) -> &[u8] {
        debug_assert!(self.len <= self.ring.map.data_per_cell);
        // SAFETY: this thread claimed the cell (CAS on head) and no process writes a
        // claimed, committed cell until it is released in `drop`, which cannot run while
        // the returned borrow of `self` lives; `len <= data_per_cell` by `cells == 1`.
        unsafe {
            std::slice::from_raw_parts(self.ring.cell_ptr(self.pos).add(CELL_HEADER), self.len)
        }
    }

    /// The data bytes of the message in its `j`-th cell.
    pub(in crate::channel::ring) fn cell_data(&self, j: u64) -> &[u8] {
        let per = self.ring.map.data_per_cell;
        let from = j as usize * per;
        let n = self.len.saturating_sub(from).min(per);
        // SAFETY: the cells are claimed by this thread (see `first_cell`) and not
        // released while the borrow of `self` lives; `n <= per` keeps the slice inside
        // the cell's data area, and `j < cells` for every caller.
        unsafe { std::slice::from_raw_parts(self.ring.cell_ptr(self.pos + j).add(CELL_HEADER), n) }
    }

    /// Copies `out.len()` bytes starting at byte `from` of the message.
    pub(in crate::channel::ring) fn copy_range(&self, from: usize, out: &mut [u8]) {
        let per = self.ring.map.data_per_cell;
        let mut done = 0;
        while done < out.len() {
            let at = from + done;
            let cell = (at / per) as u64;
            let off = at % per;
            let n = (per - off).min(out.len() - done);
            // SAFETY: the cell is claimed by this thread (see `first_cell`); `off + n <=
            // per` keeps the copy inside its data area; `cell < self.cells` because
            // `from + out.len() <= len` and len <= cells * per.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.ring.cell_ptr(self.pos + cell).add(CELL_HEADER + off),
                    out.as_mut_ptr().add(done),
                    n,
                );
            }
            done += n;
        }
    }

    /// Appends bytes `from..len` of the message to `out`.
    pub(in crate::channel::ring) fn append_from(&self, from: usize, out: &mut Vec<u8>) {
        let n = self.len.saturating_sub(from);
        out.reserve(n);
        let spare = &mut out.spare_capacity_mut()[..n];
        // SAFETY: `MaybeUninit<u8>` and `u8` have the same layout, and `copy_range` only
        // writes (never reads) the `n` bytes of the slice: copying into spare capacity
        // this way skips zeroing a large buffer that is overwritten at once.
        let dst = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), n) };
        self.copy_range(from, dst);
        // SAFETY: the `n` bytes after the old length were all written just above.
        unsafe { out.set_len(out.len() + n) };
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        if self.release {
            let counted = self.flags & F_FIRST != 0 && self.flags & (F_PART_MID | F_PART_END) == 0;
            self.ring
                .release(self.pos, self.cells, u64::from(counted), self.slot);
        }
    }
}
