//! A claimed message as seen by its consumer.

use super::layout::{CELL_HEADER, F_FIRST, F_PART_END, F_PART_MID};
use super::Message;

/// The bytes of a received message: in claimed cells, or contiguous (a streamed message
/// gathered in a private buffer, or a record of a single-producer ring read in place).
pub(crate) enum Bytes<'a> {
    Cells(&'a Message<'a>),
    Slice(&'a [u8]),
}

impl Bytes<'_> {
    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Bytes::Cells(m) => m.len,
            Bytes::Slice(b) => b.len(),
        }
    }

    /// The bytes as one slice when they are contiguous (one cell, or owned).
    pub(crate) fn as_slice(&self) -> Option<&[u8]> {
        match self {
            Bytes::Cells(m) if m.cells == 1 => Some(m.first_cell()),
            Bytes::Cells(_) => None,
            Bytes::Slice(b) => Some(b),
        }
    }

    /// The bytes in their pieces, in order, where they lie (one piece unless they span
    /// several cells).
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let (m, contiguous) = match self {
            Bytes::Cells(m) => (Some(*m), None),
            Bytes::Slice(b) => (None, Some(*b)),
        };
        let cells = m.map_or(0, |m| m.cells);
        contiguous
            .into_iter()
            .chain((0..cells).filter_map(move |j| m.map(|m| m.cell_data(j))))
    }

    /// Copies the bytes into the start of `out` (which must be at least `len` long).
    pub(crate) fn copy_to(&self, out: &mut [u8]) {
        match self {
            Bytes::Cells(m) => m.copy_range(0, &mut out[..m.len]),
            Bytes::Slice(b) => out[..b.len()].copy_from_slice(b),
        }
    }

    /// Appends the bytes to `out`.
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            Bytes::Cells(m) if m.cells == 1 => out.extend_from_slice(m.first_cell()),
            Bytes::Cells(m) => m.append_from(0, out),
            Bytes::Slice(b) => out.extend_from_slice(b),
        }
    }

    /// The bytes in a new vector.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.append_to(&mut v);
        v
    }
}

impl Message<'_> {
    pub(super) fn first_cell(&self) -> &[u8] {
        debug_assert!(self.len <= self.ring.data_per_cell);
        // SAFETY: this thread claimed the cell (CAS on head) and no process writes a
        // claimed, committed cell until it is released in `drop`, which cannot run while
        // the returned borrow of `self` lives; `len <= data_per_cell` by `cells == 1`.
        unsafe {
            std::slice::from_raw_parts(self.ring.cell_ptr(self.pos).add(CELL_HEADER), self.len)
        }
    }

    /// The data bytes of the message in its `j`-th cell.
    pub(super) fn cell_data(&self, j: u64) -> &[u8] {
        let per = self.ring.data_per_cell;
        let from = j as usize * per;
        let n = self.len.saturating_sub(from).min(per);
        // SAFETY: the cells are claimed by this thread (see `first_cell`) and not
        // released while the borrow of `self` lives; `n <= per` keeps the slice inside
        // the cell's data area, and `j < cells` for every caller.
        unsafe { std::slice::from_raw_parts(self.ring.cell_ptr(self.pos + j).add(CELL_HEADER), n) }
    }

    /// Copies `out.len()` bytes starting at byte `from` of the message.
    pub(super) fn copy_range(&self, from: usize, out: &mut [u8]) {
        let per = self.ring.data_per_cell;
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
    pub(super) fn append_from(&self, from: usize, out: &mut Vec<u8>) {
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
