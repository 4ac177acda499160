//! `ReadSlot`: a received message read where it lies in the ring, without a copy.

use std::fmt;

use crate::channel::ring::Bytes;

/// A received message where it lies in the ring, valid while the callback that gets it
/// runs (see [`Queue::get_in_place`](crate::channel::Queue::get_in_place),
/// [`Queue::get_many_in_place`](crate::channel::Queue::get_many_in_place) and
/// [`Connection::recv_in_place`](crate::channel::Connection::recv_in_place)).
///
/// A queue's message spanning several cells lies in several pieces (each cell starts
/// with a small header): [`chunks`](ReadSlot::chunks) walks them in order, in place.
/// A pipe's records are contiguous: [`as_slice`](ReadSlot::as_slice) gives the whole
/// message. Nothing is copied unless asked ([`to_vec`](ReadSlot::to_vec),
/// [`copy_to_slice`](ReadSlot::copy_to_slice)). The cells are handed back to producers
/// when the callback returns.
///
/// # Examples
/// ```
/// use shoal::Queue;
///
/// let q: Queue<()> = Queue::builder().cell_size(64).build()?;
/// let big = vec![7u8; 1000]; // spans many 64-byte cells
/// q.put_bytes(&big)?;
/// let sum = q.get_in_place(None, |m| {
///     assert_eq!(m.len(), 1000);
///     m.chunks().flatten().map(|&b| u64::from(b)).sum::<u64>()
/// })?;
/// assert_eq!(sum, 7000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReadSlot<'a> {
    bytes: Bytes<'a>,
}

impl fmt::Debug for ReadSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSlot")
            .field("len", &self.len())
            .field("contiguous", &self.as_slice().is_some())
            .finish()
    }
}

impl<'a> ReadSlot<'a> {
    pub(crate) fn new(bytes: Bytes<'a>) -> ReadSlot<'a> {
        ReadSlot { bytes }
    }

    /// The message length in bytes.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes(b"four")?;
    /// assert_eq!(q.get_in_place(None, |m| m.len())?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the message is empty.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes(b"")?;
    /// assert!(q.get_in_place(None, |m| m.is_empty())?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole message as one slice, when it lies in one piece (a pipe's record, a
    /// queue message within one cell, a streamed message gathered whole).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// tx.send_bytes(&[1u8; 100_000])?;
    /// assert_eq!(rx.recv_in_place(|m| m.as_slice().map(|s| s.len()))?, Some(100_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_slice(&self) -> Option<&[u8]> {
        self.bytes.as_slice()
    }

    /// The pieces of the message, in order, where they lie.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::builder().cell_size(64).build()?;
    /// q.put_bytes(&[3u8; 200])?;
    /// let (pieces, total) = q.get_in_place(None, |m| {
    ///     (m.chunks().count(), m.chunks().map(<[u8]>::len).sum::<usize>())
    /// })?;
    /// assert!(pieces > 1);
    /// assert_eq!(total, 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.bytes.chunks()
    }

    /// Copies the message into the start of `out`.
    ///
    /// # Panics
    /// When `out` is shorter than [`len`](ReadSlot::len).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes(b"abc")?;
    /// let mut buf = [0u8; 8];
    /// let n = q.get_in_place(None, |m| {
    ///     m.copy_to_slice(&mut buf);
    ///     m.len()
    /// })?;
    /// assert_eq!(&buf[..n], b"abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy_to_slice(&self, out: &mut [u8]) {
        assert!(
            out.len() >= self.len(),
            "a buffer of {} bytes cannot hold a message of {} bytes",
            out.len(),
            self.len()
        );
        self.bytes.copy_to(out);
    }

    /// The message in a new vector.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes(b"xyz")?;
    /// assert_eq!(q.get_in_place(None, |m| m.to_vec())?, b"xyz");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes.to_vec()
    }
}
