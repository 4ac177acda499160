//! The consumer side of the multi-producer ring, top to bottom: `get` waits for a
//! message and hands over to `take_whole`, which takes the next whole message
//! (`try_get_whole`, skipping tombstones and orphaned parts; a message streamed in
//! parts is gathered by `read_streamed`); `claim_get` claims the message at `head`, the
//! caller reads it in place, and dropping the [`Message`] releases its cells
//! (`release`), waking sleeping producers.

use std::sync::atomic::Ordering;

use crate::sys::Deadline;

use super::super::claim::{self, Token};
use super::super::layout::*;
use super::super::wait::{self, Blocking};
use super::super::{signed, Bytes, GetFail, WaitFail};
use super::{Message, Ring, TOMB_BIT};

impl Ring {
    /// Takes the next whole message, waiting until `deadline`; `f` reads it in place.
    pub(crate) fn get<R>(
        &self,
        deadline: Deadline,
        f: impl FnOnce(Bytes<'_>) -> R,
    ) -> Result<R, WaitFail> {
        self.take_whole(
            || {
                self.wait_loop(deadline, true, || {
                    self.try_get_whole().map_err(|f| self.get_blocked_lazy(f))
                })
            },
            f,
        )
    }

    /// Takes the next message without waiting (a streamed message is read whole, waiting
    /// for its parts).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn try_get<R>(&self, f: impl FnOnce(Bytes<'_>) -> R) -> Result<R, GetFail> {
        self.take_whole(|| self.try_get_whole(), f)
    }

    /// The body of [`get`](Self::get) and [`try_get`](Self::try_get): `fetch` claims the
    /// next message; a streamed one is gathered whole, stray parts are skipped.
    fn take_whole<'a, R, E>(
        &'a self,
        mut fetch: impl FnMut() -> Result<(Message<'a>, Token), E>,
        f: impl FnOnce(Bytes<'_>) -> R,
    ) -> Result<R, E> {
        let mut next = None;
        loop {
            let (m, token) = match next.take() {
                Some(m) => m,
                None => fetch()?,
            };
            if m.flags & F_PART_BEGIN != 0 {
                match self.read_streamed(m, token) {
                    Ok(buf) => return Ok(f(Bytes::Slice(&buf))),
                    Err(other) => next = other.map(|o| (o, token)),
                }
                continue;
            }
            if m.flags & (F_PART_MID | F_PART_END) != 0 {
                continue;
            }
            let out = f(Bytes::Cells(&m));
            drop(m);
            return Ok(out);
        }
    }

    /// Takes the next whole message (not a part) without waiting, skipping orphan parts.
    pub(super) fn try_get_whole(&self) -> Result<(Message<'_>, Token), GetFail> {
        loop {
            let (m, token) = self.try_get_raw()?;
            if m.flags & (F_PART_MID | F_PART_END) != 0 {
                // Parts with no live reader: the rest of a message whose consumer died.
                continue;
            }
            return Ok((m, token));
        }
    }

    /// Takes the next message or part without waiting, skipping tombstones and orphaned
    /// continuations.
    pub(super) fn try_get_raw(&self) -> Result<(Message<'_>, Token), GetFail> {
        let (slot, token) = self.my_slot().ok_or(GetFail::Empty { pos: 0 })?;
        loop {
            let m = self.claim_get(slot, token)?;
            if m.flags & F_FIRST != 0 {
                return Ok((m, token));
            }
            drop(m);
        }
    }

    /// Claims the committed message (or tombstone) at `head`.
    ///
    /// Parts of a streamed message belong to the consumer holding the stream reader
    /// token: others see them as "not yet" and wait, unless that consumer died, in which
    /// case the parts are orphans, claimed and skipped by whoever comes.
    pub(super) fn claim_get<'a>(
        &'a self,
        slot: &'a Slot,
        token: Token,
    ) -> Result<Message<'a>, GetFail> {
        let ctrl = self.ctrl();
        let st = &ctrl.stream.0;
        let mut pos = ctrl.head.0.pos.load(Ordering::Relaxed);
        loop {
            let c = self.cell(pos);
            let raw = c.seq.load(Ordering::Acquire);
            let diff = signed(raw & !TOMB_BIT, pos + 1);
            if diff == 0 {
                let (flags, len) = if raw & TOMB_BIT != 0 {
                    (F_TOMB, 0)
                } else {
                    (
                        c.flags.load(Ordering::Relaxed),
                        c.len.load(Ordering::Relaxed) as usize,
                    )
                };
                let mut cells = 1;
                if flags & F_FIRST != 0 {
                    cells = self.cells_for(len);
                } else if raw & TOMB_BIT != 0 {
                    // A run of tombstones (a dead producer's claim, repaired at once) is
                    // skipped with one claim.
                    while cells < self.map.cells / 2
                        && self.cell(pos + cells).seq.load(Ordering::Acquire)
                            == (pos + cells + 1) | TOMB_BIT
                    {
                        cells += 1;
                    }
                }
                // A header that cannot be right (a stale read the CAS below would reject
                // anyway, or a corrupt writer) is consumed as a single skipped cell.
                let (flags, cells) = if cells <= self.map.cells / 2 {
                    (flags, cells)
                } else {
                    (F_TOMB, 1)
                };
                let mut took_reader = false;
                if flags & F_FIRST != 0 && flags & (F_PART_BEGIN | F_PART_MID | F_PART_END) != 0 {
                    let reader = st.reader.load(Ordering::SeqCst);
                    if reader != token && reader != 0 {
                        if claim::owner_alive(reader) {
                            if ctrl.head.0.pos.load(Ordering::Relaxed) == pos {
                                return Err(GetFail::Empty { pos });
                            }
                            pos = ctrl.head.0.pos.load(Ordering::Relaxed);
                            continue;
                        }
                        let _ = st.reader.compare_exchange(
                            reader,
                            0,
                            Ordering::SeqCst,
                            Ordering::Relaxed,
                        );
                        continue;
                    }
                    if flags & F_PART_BEGIN != 0 && reader == 0 {
                        if st
                            .reader
                            .compare_exchange(0, token, Ordering::SeqCst, Ordering::Relaxed)
                            .is_err()
                        {
                            continue;
                        }
                        took_reader = true;
                    }
                }
                slot.get_cells.store(cells, Ordering::Relaxed);
                slot.get_pos.store(pos, Ordering::Relaxed);
                match ctrl.head.0.pos.compare_exchange_weak(
                    pos,
                    pos + cells,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        wait::note_cpu(&ctrl.head.0.cpu);
                        return Ok(Message {
                            ring: self,
                            slot,
                            pos,
                            cells,
                            len,
                            flags,
                            release: true,
                        });
                    }
                    Err(now) => {
                        slot.get_pos.store(IDLE, Ordering::Relaxed);
                        if took_reader {
                            st.reader.store(0, Ordering::SeqCst);
                        }
                        pos = now;
                    }
                }
            } else if diff < 0 {
                let now = ctrl.head.0.pos.load(Ordering::Relaxed);
                if now != pos {
                    pos = now;
                    continue;
                }
                return Err(self.nothing_at(pos));
            } else {
                pos = ctrl.head.0.pos.load(Ordering::Relaxed);
            }
        }
    }

    /// Releases the `cells` cells of a claim from `pos` (holding `messages` counted
    /// messages) for the next lap, then clears the claim and wakes sleeping producers.
    pub(super) fn release(&self, pos: u64, cells: u64, messages: u64, slot: &Slot) {
        let ctrl = self.ctrl();
        // Uncount first: a consumer killed between the two steps then leaves the bound
        // one message looser (recovery uncounts again), never one message tighter.
        if messages != 0 && self.map.max_messages != 0 {
            ctrl.count.0.n.fetch_sub(messages as i64, Ordering::Relaxed);
        }
        for j in 0..cells {
            self.cell(pos + j)
                .seq
                .store(pos + j + self.map.cells, Ordering::Release);
        }
        slot.get_pos.store(IDLE, Ordering::Release);
        // Dekker with the sleep phase of a wait for room, as in `after_commit`.
        let w = &ctrl.space.0;
        if w.sleepers.load(Ordering::SeqCst) != 0 {
            self.map.wake_space();
        }
    }
}
