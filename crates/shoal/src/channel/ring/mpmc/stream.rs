//! Messages larger than half the ring, carried whole in consecutive parts.
//!
//! The producer takes the stream writer token (`Control::stream.writer`, CAS 0 -> its
//! token), then sets `STREAM_BIT` in `tail`: from then on every other producer's CAS of
//! `tail` fails and it waits, so the parts are consecutive in the ring. The consumer
//! that claims the first part takes the reader token the same way: other consumers wait
//! at a part they do not own. A dead writer's token is taken over by one producer, which
//! alone clears the bit; a dead reader's token is cleared by whoever finds it, and the
//! parts left without a live reader are skipped; a stream left without a live writer is
//! dropped by its reader (it was never acknowledged), which keeps its token when the
//! next stream begins right after it.

use std::sync::atomic::Ordering;

use crate::sys::Deadline;

use super::super::claim::{self, Token};
use super::super::layout::*;
use super::super::wait::{Blocked, Blocking};
use super::super::{GetFail, PutFail, WaitFail};
use super::{Message, Ring, STREAM_BIT};

impl Ring {
    /// Streams `data` in parts while holding the stream writer token: other producers
    /// wait, so the parts are consecutive in the ring.
    pub(super) fn put_streamed(&self, data: &[u8], deadline: Deadline) -> Result<(), WaitFail> {
        let ctrl = self.ctrl();
        let (_, token) = self.my_slot().ok_or(WaitFail::Timeout)?;
        let st = &ctrl.stream.0;
        self.wait_loop(deadline, false, || {
            if ctrl.geometry.0.closed.load(Ordering::Relaxed) != 0 {
                return Err(Blocked::Closed);
            }
            match st
                .writer
                .compare_exchange(0, token, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => Ok(()),
                Err(_) => Err(self.put_blocked(PutFail::Streaming)),
            }
        })?;
        let tail = &ctrl.tail.0.pos;
        tail.fetch_or(STREAM_BIT, Ordering::SeqCst);
        let finish = || {
            tail.fetch_and(!STREAM_BIT, Ordering::SeqCst);
            let _ = st
                .writer
                .compare_exchange(token, 0, Ordering::SeqCst, Ordering::Relaxed);
            self.map.wake_space();
        };
        // Once the first part is in, the message is accepted: later parts wait without
        // a deadline (crash checks still run) so that no half message is ever left.
        let part = self.max_inline();
        let mut first = Vec::with_capacity(part);
        first.extend_from_slice(&(data.len() as u64).to_le_bytes());
        let head_len = part - 8;
        first.extend_from_slice(&data[..head_len]);
        let r = self.wait_loop(deadline, false, || {
            self.try_put(&first, F_PART_BEGIN)
                .map_err(|f| self.put_blocked(f))
        });
        if let Err(e) = r {
            finish();
            return Err(e);
        }
        let rest = &data[head_len..];
        let n = rest.len().div_ceil(part);
        for (i, chunk) in rest.chunks(part).enumerate() {
            let flag = if i + 1 == n { F_PART_END } else { F_PART_MID };
            // The rest of an accepted message goes in even after `close`, and is not
            // held back by the message bound (it is one message with the first part).
            let _ = self.wait_loop(Deadline::NEVER, false, || {
                self.force_put(chunk, flag).map_err(|f| self.put_blocked(f))
            });
        }
        finish();
        Ok(())
    }

    /// Reopens the ring when the stream writer died mid-stream.
    ///
    /// The recoverer first takes the dead writer's token (a CAS from the dead token to
    /// its own), then clears `STREAM_BIT`, then frees the token. Only the holder of the
    /// token touches the bit: of several producers finding the same dead writer, one
    /// wins the CAS and clears the bit while no new writer can hold the token, so a new
    /// writer's bit is never cleared (which would let other messages in between its
    /// parts, and make its reader drop the acknowledged message as abandoned). A
    /// recoverer killed in between leaves its own dead token, repaired the same way.
    pub(super) fn recover_dead_writer(&self) {
        let ctrl = self.ctrl();
        let st = &ctrl.stream.0;
        let writer = st.writer.load(Ordering::SeqCst);
        if writer == 0 || claim::owner_alive(writer) {
            return;
        }
        let me = claim::my_token();
        if st
            .writer
            .compare_exchange(writer, me, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        ctrl.tail.0.pos.fetch_and(!STREAM_BIT, Ordering::SeqCst);
        st.writer.store(0, Ordering::SeqCst);
        // Producers waiting for the stream to end sleep on the space futex.
        self.map.wake_space();
    }

    /// Puts a message already accepted once (rescued from a dead consumer), waiting for
    /// room as long as it takes; like [`force_put`](Self::force_put) it ignores `closed`
    /// and the message bound.
    pub(super) fn force_put_blocking(&self, data: &[u8]) -> Result<(), WaitFail> {
        self.wait_loop(Deadline::NEVER, false, || {
            self.force_put(data, 0).map_err(|f| self.put_blocked(f))
        })
    }

    /// A put that ignores `closed` (used to finish a streamed message).
    pub(super) fn force_put(&self, data: &[u8], flags: u32) -> Result<(), PutFail> {
        let (slot, token) = self.my_slot().ok_or(PutFail::Full { blocked: 0 })?;
        let pos = self.claim_put(self.cells_for(data.len()), slot, token, true)?;
        self.write_commit(pos, data, flags);
        slot.put_pos.store(IDLE, Ordering::Release);
        self.after_commit(u64::from(flags & (F_PART_MID | F_PART_END) == 0));
        Ok(())
    }

    /// Reads the parts that follow `first` (a `F_PART_BEGIN` message, whose claim made
    /// this thread the stream reader) into one buffer.
    ///
    /// When the writer died before the last part, the partial message is dropped (it was
    /// never acknowledged) and the error carries the next message if one was already
    /// claimed in its place (`None`: the caller waits for the next one). When that next
    /// message is the first part of another stream, this thread is still the reader
    /// (the caller reads that stream next); otherwise the reader token is freed.
    pub(super) fn read_streamed<'a>(
        &'a self,
        first: Message<'a>,
        token: Token,
    ) -> Result<Vec<u8>, Option<Message<'a>>> {
        let st = &self.ctrl().stream.0;
        let mut header = [0u8; 8];
        first.copy_range(0, &mut header);
        let total = u64::from_le_bytes(header) as usize;
        let mut buf = Vec::with_capacity(total.min(1 << 32));
        first.append_from(8, &mut buf);
        drop(first);
        let done = || {
            let _ = st
                .reader
                .compare_exchange(token, 0, Ordering::SeqCst, Ordering::Relaxed);
        };
        loop {
            let part = self.wait_loop(Deadline::NEVER, true, || match self.try_get_raw() {
                Ok((m, _)) => Ok(Some(m)),
                Err(e) => {
                    let b = match e {
                        GetFail::Closed => Blocked::Idle,
                        e => self.get_blocked(e),
                    };
                    if b == Blocked::Idle {
                        let writer = st.writer.load(Ordering::SeqCst);
                        if writer == 0 || !claim::owner_alive(writer) {
                            // Reopen the ring for the producers waiting for the stream
                            // to end (and wake them) rather than leave it to their next
                            // look.
                            self.recover_dead_writer();
                            // A writer commits its last part before it frees the token:
                            // look once more before giving the stream up.
                            return match self.try_get_raw() {
                                Ok((m, _)) => Ok(Some(m)),
                                Err(_) => Ok(None),
                            };
                        }
                    }
                    Err(b)
                }
            });
            match part {
                Ok(Some(m)) if m.flags & (F_PART_MID | F_PART_END) != 0 => {
                    m.append_from(0, &mut buf);
                    let end = m.flags & F_PART_END != 0;
                    drop(m);
                    if end {
                        done();
                        return if buf.len() == total {
                            Ok(buf)
                        } else {
                            Err(None)
                        };
                    }
                }
                Ok(Some(m)) if m.flags & F_PART_BEGIN != 0 => {
                    // The first part of the next stream where a part of this one should
                    // be: the writer died and another one began. Drop the partial
                    // message and read the new one, keeping the reader token: freed
                    // here, another consumer would take the new stream's later parts
                    // for orphans and drop them, losing an acknowledged message.
                    return Err(Some(m));
                }
                Ok(Some(m)) => {
                    // A whole message where a part should be: the writer died and the
                    // ring moved on. Drop the partial message, deliver this one.
                    done();
                    return Err(Some(m));
                }
                _ => {
                    done();
                    return Err(None);
                }
            }
        }
    }
}
