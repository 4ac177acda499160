//! Writing a message in place: reserve its cells, write, commit.

use std::io;
use std::sync::atomic::Ordering;

use crate::sys::Deadline;

use super::super::layout::*;
use super::super::wait::Blocking;
use super::super::WaitFail;
use super::{Ring, TOMB_BIT};

/// Cells claimed for one message of a known length, written in place and committed by
/// [`commit`](Reservation::commit). Dropped without a commit, the cells become
/// tombstones that consumers skip: nothing is delivered.
pub(crate) struct Reservation<'a> {
    ring: &'a Ring,
    slot: &'a Slot,
    pos: u64,
    len: usize,
    written: usize,
    committed: bool,
}

impl Ring {
    /// Claims the cells of a `len`-byte message (at most [`max_inline`](Ring::max_inline)),
    /// waiting for room until `deadline`.
    pub(crate) fn reserve(
        &self,
        len: usize,
        deadline: Deadline,
    ) -> Result<Reservation<'_>, WaitFail> {
        debug_assert!(len <= self.max_inline());
        let Some((slot, token)) = self.my_slot() else {
            return Err(WaitFail::Timeout);
        };
        let k = self.cells_for(len);
        let pos = self.wait_loop(deadline, false, || {
            self.claim_put(k, slot, token, false)
                .map_err(|f| self.put_blocked(f))
        })?;
        Ok(Reservation {
            ring: self,
            slot,
            pos,
            len,
            written: 0,
            committed: false,
        })
    }
}

impl Reservation<'_> {
    /// The message length reserved.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> usize {
        self.written
    }

    /// The next writable bytes, in place in the ring: the rest of the current cell (or an
    /// empty slice once `len` bytes are written). Call [`advance`](Self::advance) with how
    /// many were filled.
    pub(crate) fn chunk_mut(&mut self) -> &mut [u8] {
        let per = self.ring.map.data_per_cell;
        let cell = (self.written / per) as u64;
        let off = self.written % per;
        let n = (per - off).min(self.len - self.written);
        // SAFETY: the cells of the reservation are claimed by this thread and not yet
        // committed, so no other process reads or writes them; `off + n <= per` keeps the
        // slice inside one cell's data area, and `cell < cells_for(len)` because
        // `written < len` whenever `n > 0`. The borrow of `self` keeps the mapping alive.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ring.cell_ptr(self.pos + cell).add(CELL_HEADER + off),
                n,
            )
        }
    }

    /// Marks `n` more bytes of [`chunk_mut`](Self::chunk_mut) as written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.written = (self.written + n).min(self.len);
    }

    /// Commits the message (unwritten bytes are zeroed first, so that no stale bytes of
    /// an older message are ever delivered).
    pub(crate) fn commit(mut self) {
        while self.written < self.len {
            let c = self.chunk_mut();
            c.fill(0);
            let n = c.len();
            self.advance(n);
        }
        self.ring.commit_cells(self.pos, self.len, 0);
        self.slot.put_pos.store(IDLE, Ordering::Release);
        self.ring.after_commit(1);
        self.committed = true;
    }
}

impl io::Write for Reservation<'_> {
    /// Copies as much of `buf` as still fits; `Ok(0)` once the reservation is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let c = self.chunk_mut();
            if c.is_empty() {
                break;
            }
            let n = c.len().min(buf.len() - done);
            c[..n].copy_from_slice(&buf[done..done + n]);
            self.advance(n);
            done += n;
        }
        Ok(done)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Abandoned: every cell becomes a committed tombstone, skipped by consumers.
        let k = self.ring.cells_for(self.len);
        for j in (0..k).rev() {
            let p = self.pos + j;
            self.ring
                .cell(p)
                .seq
                .store((p + 1) | TOMB_BIT, Ordering::Release);
        }
        self.slot.put_pos.store(IDLE, Ordering::Release);
        self.ring.after_commit(0);
    }
}
