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
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// let slot = q.reserve(5)?;
    /// assert_eq!(slot.len(), 5);
    /// slot.commit();
    /// assert_eq!(q.get_bytes()?.len(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the message is empty (zero bytes long).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// let slot = q.reserve(0)?;
    /// assert!(slot.is_empty());
    /// slot.commit();
    /// assert_eq!(q.get_bytes()?, b""); // an empty message is still a message
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Bytes written so far.
    ///
    /// # Examples
    /// ```
    /// use std::io::Write;
    ///
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// let mut slot = q.reserve(6)?;
    /// slot.write_all(b"abc")?;
    /// assert_eq!(slot.written(), 3);
    /// slot.write_all(b"def")?;
    /// assert_eq!(slot.written(), slot.len());
    /// slot.commit();
    /// assert_eq!(q.get_bytes()?, b"abcdef");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn written(&self) -> usize {
        self.inner.written()
    }

    /// The next bytes to write, in place in the ring (the rest of the current cell;
    /// empty once the message is complete). Report how many were filled with
    /// [`advance`](WriteSlot::advance).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// let mut slot = q.reserve(4)?;
    /// let chunk = slot.chunk_mut();
    /// assert_eq!(chunk.len(), 4); // a short message: the chunk is the whole of it
    /// chunk.copy_from_slice(b"data");
    /// slot.advance(4);
    /// assert!(slot.chunk_mut().is_empty()); // complete
    /// slot.commit();
    /// assert_eq!(q.get_bytes()?, b"data");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chunk_mut(&mut self) -> &mut [u8] {
        self.inner.chunk_mut()
    }

    /// Marks `n` more bytes of [`chunk_mut`](WriteSlot::chunk_mut) as written.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::builder().cell_size(64).build()?;
    /// let mut slot = q.reserve(200)?; // spans several 64-byte cells
    /// let mut chunks = 0;
    /// while slot.written() < slot.len() {
    ///     let chunk = slot.chunk_mut();
    ///     chunk.fill(9);
    ///     let n = chunk.len();
    ///     slot.advance(n);
    ///     chunks += 1;
    /// }
    /// assert!(chunks > 1);
    /// slot.commit();
    /// assert_eq!(q.get_bytes()?, vec![9u8; 200]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn advance(&mut self, n: usize) {
        self.inner.advance(n);
    }

    /// Publishes the message: from now on a consumer can take it, whole.
    ///
    /// # Examples
    /// ```
    /// use std::io::Write;
    ///
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// let mut slot = q.reserve(2)?;
    /// slot.write_all(b"ok")?;
    /// assert!(q.try_get_bytes().unwrap_err().is_empty()); // invisible before the commit
    /// slot.commit();
    /// assert_eq!(q.try_get_bytes()?, b"ok");
    /// drop(q.reserve(2)?); // a slot dropped without a commit delivers nothing
    /// assert!(q.try_get_bytes().unwrap_err().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
