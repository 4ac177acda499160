//! `WriteSlot`: a message written in place in a queue's ring, then committed.

use std::fmt;
use std::io;

use crate::channel::ring::Reservation;

/// Room for one message of a fixed length, reserved in a queue's ring and written in
/// place: no intermediate buffer (see [`Queue::reserve`](crate::channel::Queue::reserve)).
///
/// Write with [`std::io::Write`] (a serializer can encode straight into the ring) or
/// chunk by chunk with [`chunk_mut`](WriteSlot::chunk_mut) and
/// [`advance`](WriteSlot::advance), then [`commit`](WriteSlot::commit). Consumers see
/// the message only at the commit, whole. Bytes left unwritten are zeroes. A slot
/// dropped without a commit delivers nothing (its cells are skipped), and a process
/// killed while holding one blocks nobody.
pub struct WriteSlot<'a> {
    inner: Reservation<'a>,
}

impl fmt::Debug for WriteSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteSlot")
            .field("len", &self.len())
            .field("written", &self.written())
            .finish()
    }
}

impl<'a> WriteSlot<'a> {
    pub(crate) fn new(inner: Reservation<'a>) -> WriteSlot<'a> {
        WriteSlot { inner }
    }

    /// The length of the message, fixed at the reservation.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the message is empty (zero bytes long).
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.inner.written()
    }

    /// The next bytes to write, in place in the ring (the rest of the current cell;
    /// empty once the message is complete). Report how many were filled with
    /// [`advance`](WriteSlot::advance).
    pub fn chunk_mut(&mut self) -> &mut [u8] {
        self.inner.chunk_mut()
    }

    /// Marks `n` more bytes of [`chunk_mut`](WriteSlot::chunk_mut) as written.
    pub fn advance(&mut self, n: usize) {
        self.inner.advance(n);
    }

    /// Publishes the message: from now on a consumer can take it, whole.
    pub fn commit(self) {
        self.inner.commit();
    }
}

impl io::Write for WriteSlot<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
