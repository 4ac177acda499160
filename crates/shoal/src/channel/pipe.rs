//! `Pipe` and `Connection`: two-ended channels over single-producer rings (see
//! `ring::spsc`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::endpoint::{deserialize_endpoint, serialize_endpoint, Endpoint, Wait};
use crate::channel::ring::RingConfig;
use crate::channel::{CreateError, GetError, PutError, ReadSlot, TAG_PIPE};
use crate::codec::Codec;
use crate::sys::Deadline;

/// Default ring size of each direction of a pipe.
const PIPE_CAPACITY: usize = 512 * 1024;
/// Smallest ring a pipe is given.
const PIPE_MIN: usize = 4096;

/// Makes connected [`Connection`] pairs (Python's `multiprocessing.Pipe`).
///
/// # Examples
/// ```
/// use shoal::channel::Pipe;
///
/// let (a, b) = Pipe::duplex()?;
/// a.send(&"ping")?;
/// assert_eq!(b.recv::<String>()?, "ping");
/// b.send_bytes(b"pong")?;
/// assert_eq!(a.recv_bytes()?, b"pong");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    /// Two connections, each able to send to and receive from the other.
    ///
    /// # Errors
    /// When the kernel refuses the memory or an eventfd.
    ///
    /// # Examples
    /// ```
    /// let (a, b) = shoal::Pipe::duplex()?;
    /// assert!(a.readable() && a.writable() && b.readable() && b.writable());
    /// a.send(&1u32)?;
    /// b.send(&2u32)?;
    /// assert_eq!(b.recv::<u32>()?, 1);
    /// assert_eq!(a.recv::<u32>()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn duplex() -> Result<(Connection, Connection), CreateError> {
        Pipe::builder().duplex()
    }

    /// A one-way pair `(sender, receiver)`: the first can only send, the second only
    /// receive. Python's `Pipe(duplex=False)` returns them in the other order,
    /// `(receiver, sender)`: write `let (tx, rx) = Pipe::simplex()?` where Python has
    /// `r, w = Pipe(duplex=False)`.
    ///
    /// # Errors
    /// When the kernel refuses the memory or an eventfd.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// assert!(tx.writable() && !tx.readable());
    /// assert!(rx.readable() && !rx.writable());
    /// tx.send(&"one way")?;
    /// assert_eq!(rx.recv::<String>()?, "one way");
    /// assert!(rx.send(&"back").unwrap_err().is_closed()); // the receiver cannot send
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn simplex() -> Result<(Connection, Connection), CreateError> {
        Pipe::builder().simplex()
    }

    /// Options for a pipe: the ring size of each direction.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::Pipe;
    ///
    /// // 8 MiB per direction: messages up to 4 MiB go in one piece, read in place.
    /// let (tx, rx) = Pipe::builder().capacity(8 << 20).simplex()?;
    /// tx.send_bytes(&vec![7u8; 3 << 20])?;
    /// assert_eq!(rx.recv_in_place(|m| m.len())?, 3 << 20);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> PipeBuilder {
        PipeBuilder {
            capacity: PIPE_CAPACITY,
        }
    }
}

/// Options for a [`Pipe`] (see [`Pipe::builder`]).
#[derive(Clone, Debug)]
pub struct PipeBuilder {
    capacity: usize,
}

impl PipeBuilder {
    /// Bytes of ring for each direction, rounded up to a power of two (at least 4 KiB;
    /// default 512 KiB). A message up to half of it travels in one piece and is read in
    /// place; a longer one is streamed through in parts (a quarter of the ring each) and
    /// arrives whole.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::Pipe;
    ///
    /// let (a, b) = Pipe::builder().capacity(64 * 1024).duplex()?;
    /// // Larger than the ring: streamed, so a receiver must read while it is sent.
    /// let sender = std::thread::spawn(move || a.send_bytes(&[1u8; 100_000]));
    /// assert_eq!(b.recv_bytes()?.len(), 100_000);
    /// sender.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity(mut self, bytes: usize) -> PipeBuilder {
        self.capacity = bytes;
        self
    }

    /// Two connections, each able to send to and receive from the other.
    ///
    /// # Errors
    /// When the capacity is too large, or the kernel refuses the memory or an eventfd.
    ///
    /// # Examples
    /// ```
    /// let (a, b) = shoal::Pipe::builder().capacity(1 << 20).duplex()?;
    /// a.send(&1u8)?;
    /// b.send(&2u8)?;
    /// assert_eq!((b.recv::<u8>()?, a.recv::<u8>()?), (1, 2));
    /// assert!(shoal::Pipe::builder().capacity(usize::MAX).duplex().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn duplex(&self) -> Result<(Connection, Connection), CreateError> {
        let ab = ring(self.capacity)?;
        let ba = ring(self.capacity)?;
        Ok((
            Connection {
                rx: Some(Arc::clone(&ba)),
                tx: Some(Arc::clone(&ab)),
            },
            Connection {
                rx: Some(ab),
                tx: Some(ba),
            },
        ))
    }

    /// A one-way pair `(sender, receiver)`, as [`Pipe::simplex`].
    ///
    /// # Errors
    /// As [`duplex`](PipeBuilder::duplex).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::builder().capacity(16 * 1024).simplex()?;
    /// tx.send_bytes(b"small ring")?;
    /// assert_eq!(rx.recv_bytes()?, b"small ring");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn simplex(&self) -> Result<(Connection, Connection), CreateError> {
        let r = ring(self.capacity)?;
        Ok((
            Connection {
                rx: None,
                tx: Some(Arc::clone(&r)),
            },
            Connection {
                rx: Some(r),
                tx: None,
            },
        ))
    }
}

fn ring(capacity: usize) -> Result<Arc<Endpoint>, CreateError> {
    let cell = crate::channel::queue::DEFAULT_CELL;
    let cells = (capacity.max(PIPE_MIN) / cell)
        .checked_next_power_of_two()
        .filter(|c| c.checked_mul(cell).is_some_and(|b| b <= 1 << 40))
        .ok_or_else(|| {
            CreateError::invalid(format!(
                "could not create a pipe: {capacity} bytes of ring per direction is too large"
            ))
        })?;
    Endpoint::create(
        RingConfig {
            cell_size: cell,
            cells,
            max_messages: 0,
            tag: TAG_PIPE,
            codec: 0,
        },
        Codec::Bincode,
    )
}

/// One end of a [`Pipe`]: sends to and/or receives from the other end.
///
/// Messages are typed per call ([`send`](Connection::send) / [`recv`](Connection::recv)
/// with bincode) or raw bytes. [`recv`](Connection::recv) reports end of stream
/// ([`GetError::Closed`]) once the peer closed its end, or once the last process that
/// sent on it died, after the messages already sent are drained. Dropping a handle does
/// not close the connection (a copy may live on in a child process): call
/// [`close`](Connection::close).
pub struct Connection {
    rx: Option<Arc<Endpoint>>,
    tx: Option<Arc<Endpoint>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("readable", &self.rx.is_some())
            .field("writable", &self.tx.is_some())
            .finish()
    }
}

impl Clone for Connection {
    fn clone(&self) -> Connection {
        Connection {
            rx: self.rx.clone(),
            tx: self.tx.clone(),
        }
    }
}

impl Connection {
    pub(crate) fn rx_core(&self) -> Option<&Arc<Endpoint>> {
        self.rx.as_ref()
    }

    pub(crate) fn tx_core(&self) -> Option<&Arc<Endpoint>> {
        self.tx.as_ref()
    }

    fn tx(&self) -> Result<&Arc<Endpoint>, PutError<()>> {
        self.tx.as_ref().ok_or(PutError::Closed(()))
    }

    fn rx(&self) -> Result<&Arc<Endpoint>, GetError> {
        self.rx.as_ref().ok_or(GetError::Closed)
    }

    /// Sends raw bytes, copied straight into the ring; blocks while full.
    ///
    /// # Errors
    /// [`PutError::Closed`] when this end cannot send, was closed, or the peer closed
    /// or died while the ring was full.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// tx.send_bytes(b"raw bytes")?;
    /// assert_eq!(rx.recv_bytes()?, b"raw bytes");
    /// tx.close();
    /// assert!(tx.send_bytes(b"late").unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_bytes(&self, data: &[u8]) -> Result<(), PutError<()>> {
        let tx = self.tx()?;
        tx.note_end(true);
        // The ring's wait checks now and then that the receiver lives, and reports a
        // dead one as closed.
        tx.put_bytes(data, Wait::forever())
    }

    /// [`send_bytes`](Connection::send_bytes) without waiting: `Full` when the ring has
    /// no room for `data` now.
    ///
    /// # Errors
    /// `Full`; `Closed` as for [`send_bytes`](Connection::send_bytes).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::builder().capacity(64 * 1024).simplex()?;
    /// tx.try_send_bytes(b"room")?;
    /// while tx.try_send_bytes(&[0u8; 1024]).is_ok() {}
    /// assert!(tx.try_send_bytes(&[0u8; 1024]).unwrap_err().is_full());
    /// assert_eq!(rx.recv_bytes()?, b"room");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send_bytes(&self, data: &[u8]) -> Result<(), PutError<()>> {
        let tx = self.tx()?;
        tx.note_end(true);
        tx.put_bytes(data, Wait::No)
    }

    /// [`send_bytes`](Connection::send_bytes) for at most `timeout`: gives up while the
    /// ring stays too full for the message.
    ///
    /// # Errors
    /// [`PutError::Timeout`] when the time ran out (nothing was sent); `Closed` as for
    /// `send_bytes`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::builder().capacity(4096).simplex()?;
    /// // Nobody reads: the ring fills up, and a timed send gives up.
    /// let err = loop {
    ///     if let Err(e) = tx.send_bytes_timeout(&[7; 1000], Duration::from_millis(10)) {
    ///         break e;
    ///     }
    /// };
    /// assert!(err.is_timeout());
    /// assert_eq!(rx.recv_bytes()?, [7; 1000]); // what was sent is intact
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_bytes_timeout(&self, data: &[u8], timeout: Duration) -> Result<(), PutError<()>> {
        let tx = self.tx()?;
        tx.note_end(true);
        tx.put_bytes(data, Wait::timeout(timeout))
    }

    /// [`send`](Connection::send) for at most `timeout`.
    ///
    /// # Errors
    /// As [`send_bytes_timeout`](Connection::send_bytes_timeout), and `Encode`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// tx.send_timeout(&(1u8, 'x'), Duration::from_secs(10))?;
    /// assert_eq!(rx.recv::<(u8, char)>()?, (1, 'x'));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_timeout<T: Serialize + ?Sized>(
        &self,
        msg: &T,
        timeout: Duration,
    ) -> Result<(), PutError<()>> {
        let bytes = Codec::Bincode
            .encode(msg)
            .map_err(|e| PutError::Encode((), e))?;
        self.send_bytes_timeout(&bytes, timeout)
    }

    /// Sends `msg` encoded with bincode.
    ///
    /// # Errors
    /// As [`send_bytes`](Connection::send_bytes), and `Encode`.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// tx.send(&[1u16, 2, 3][..])?; // an unsized slice goes out like a Vec
    /// assert_eq!(rx.recv::<Vec<u16>>()?, vec![1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&self, msg: &T) -> Result<(), PutError<()>> {
        let bytes = Codec::Bincode
            .encode(msg)
            .map_err(|e| PutError::Encode((), e))?;
        self.send_bytes(&bytes)
    }

    fn recv_with<R>(
        &self,
        deadline: Deadline,
        op: impl FnOnce(&Endpoint, Wait) -> Result<R, GetError>,
    ) -> Result<R, GetError> {
        let rx = self.rx()?;
        rx.note_end(false);
        // The ring's wait checks now and then that the sender lives; once it is dead,
        // what it sent is drained, then end of stream is reported.
        op(rx, Wait::Until(deadline))
    }

    /// Receives the next message as bytes; blocks until one comes.
    ///
    /// # Errors
    /// [`GetError::Closed`] at end of stream (peer closed or died, nothing left).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// tx.send_bytes(b"last")?;
    /// tx.close();
    /// assert_eq!(rx.recv_bytes()?, b"last"); // drained first
    /// assert!(rx.recv_bytes().unwrap_err().is_closed()); // then end of stream
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.recv_with(Deadline::NEVER, |c, w| c.get_bytes_into(&mut v, w))?;
        Ok(v)
    }

    /// [`recv_bytes`](Connection::recv_bytes) for at most `timeout` (Python's
    /// `poll(timeout)` then `recv_bytes()`, in one call).
    ///
    /// # Errors
    /// [`GetError::Timeout`] when nothing arrived in time (the pipe stays usable);
    /// `Closed` at end of stream.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// assert!(rx.recv_bytes_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
    /// tx.send_bytes(b"in time")?;
    /// assert_eq!(rx.recv_bytes_timeout(Duration::from_secs(10))?, b"in time");
    /// tx.close();
    /// assert!(rx.recv_bytes_timeout(Duration::from_secs(10)).unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.recv_with(Deadline::after(timeout), |c, w| c.get_bytes_into(&mut v, w))?;
        Ok(v)
    }

    /// [`recv_bytes_into`](Connection::recv_bytes_into) for at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`] when nothing arrived in time; otherwise those of
    /// `recv_bytes_into`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// let mut buf = [0u8; 16];
    /// let err = rx.recv_bytes_into_timeout(&mut buf, Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// tx.send_bytes(b"into")?;
    /// let n = rx.recv_bytes_into_timeout(&mut buf, Duration::from_secs(10))?;
    /// assert_eq!(&buf[..n], b"into");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_into_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, GetError> {
        let deadline = Deadline::after(timeout);
        match self.recv_with(deadline, |c, w| c.get_bytes_into_slice(buf, w))? {
            Ok(n) => Ok(n),
            Err(bytes) => Err(GetError::BufferTooShort(bytes)),
        }
    }

    /// Receives the next message into `buf`; returns its length.
    ///
    /// # Errors
    /// [`GetError::BufferTooShort`] (with the message, which is consumed) when `buf` is
    /// too small; `Closed` at end of stream.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::GetError;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// let mut buf = [0u8; 8];
    /// tx.send_bytes(b"fits")?;
    /// let n = rx.recv_bytes_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"fits");
    /// tx.send_bytes(b"does not fit")?;
    /// match rx.recv_bytes_into(&mut buf) {
    ///     Err(GetError::BufferTooShort(msg)) => assert_eq!(msg, b"does not fit"),
    ///     other => panic!("expected BufferTooShort, got {other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize, GetError> {
        match self.recv_with(Deadline::NEVER, |c, w| c.get_bytes_into_slice(buf, w))? {
            Ok(n) => Ok(n),
            Err(bytes) => Err(GetError::BufferTooShort(bytes)),
        }
    }

    /// Receives the next message and hands it to `f` where it lies in the ring, without
    /// a copy (a pipe's records are contiguous: [`ReadSlot::as_slice`] gives the whole
    /// message); blocks until one comes. Returns what `f` returns.
    ///
    /// # Errors
    /// [`GetError::Closed`] at end of stream (peer closed or died, nothing left).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// tx.send_bytes(b"hello")?;
    /// let n = rx.recv_in_place(|m| m.as_slice().map_or(0, |s| s.len()))?;
    /// assert_eq!(n, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_in_place<R>(&self, f: impl FnOnce(ReadSlot<'_>) -> R) -> Result<R, GetError> {
        self.recv_with(Deadline::NEVER, |c, w| c.get_in_place(w, f))
    }

    /// [`recv_in_place`](Connection::recv_in_place) waiting at most `timeout` (zero:
    /// only what is there now).
    ///
    /// # Errors
    /// `Timeout`; `Closed` at end of stream.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// let none = rx.recv_in_place_timeout(Duration::ZERO, |m| m.len());
    /// assert!(none.is_err()); // nothing there yet
    /// tx.send_bytes(b"now")?;
    /// assert_eq!(rx.recv_in_place_timeout(Duration::from_millis(10), |m| m.len())?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_in_place_timeout<R>(
        &self,
        timeout: Duration,
        f: impl FnOnce(ReadSlot<'_>) -> R,
    ) -> Result<R, GetError> {
        self.recv_with(Deadline::after(timeout), |c, w| c.get_in_place(w, f))
    }

    /// Receives and decodes the next message (bincode); blocks until one comes.
    ///
    /// # Errors
    /// `Closed` at end of stream; `Decode`.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// std::thread::spawn(move || tx.send(&(7u8, "seven")).unwrap());
    /// assert_eq!(rx.recv::<(u8, String)>()?, (7, "seven".to_owned()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, GetError> {
        self.recv_with(Deadline::NEVER, |c, w| c.get_value(w))
    }

    /// [`recv`](Connection::recv) for at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`; `Closed`; `Decode`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// let err = rx.recv_timeout::<u32>(Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// tx.send(&5u32)?;
    /// assert_eq!(rx.recv_timeout::<u32>(Duration::from_millis(10))?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, GetError> {
        self.recv_with(Deadline::after(timeout), |c, w| c.get_value(w))
    }

    /// Whether a message (or end of stream) is ready, waiting at most `timeout`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// assert!(!rx.poll(Duration::from_millis(10)));
    /// tx.send_bytes(b"ready")?;
    /// assert!(rx.poll(Duration::from_millis(10)));
    /// assert!(rx.poll(Duration::ZERO)); // polling does not consume the message
    /// assert_eq!(rx.recv_bytes()?, b"ready");
    /// assert!(!tx.poll(Duration::ZERO)); // a send-only end never has anything to read
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(&self, timeout: Duration) -> bool {
        let Some(rx) = &self.rx else {
            return false;
        };
        let deadline = Deadline::after(timeout);
        rx.wait_readable(deadline, || rx.end_dead(true)) || rx.end_dead(true)
    }

    /// Whether the death of every process that sent on this connection (for receives)
    /// or received from it (for sends) counts as end of stream, as it does by default.
    ///
    /// Turn it off where end of stream is decided otherwise, e.g. by a socket whose
    /// copies travel with the ends (shoal's Python package does so, because a Python
    /// pipe ends only when every copy of the other end is closed, however many of its
    /// senders died). Then only [`close`](Connection::close) ends the stream. It
    /// applies to this handle and its clones, in this process.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// rx.set_peer_death_ends_stream(false);
    /// tx.send_bytes(b"one")?;
    /// assert_eq!(rx.recv_bytes()?, b"one");
    /// assert!(!rx.poll(Duration::ZERO));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_peer_death_ends_stream(&self, on: bool) {
        for core in [&self.rx, &self.tx].into_iter().flatten() {
            core.set_death_ends(on);
        }
    }

    /// Closes this end for both processes: the peer's `recv` reports end of stream
    /// after draining, and its `send` fails.
    ///
    /// # Examples
    /// ```
    /// let (a, b) = shoal::Pipe::duplex()?;
    /// a.send(&1u8)?;
    /// a.close();
    /// assert_eq!(b.recv::<u8>()?, 1); // what was sent is still delivered
    /// assert!(b.recv::<u8>().unwrap_err().is_closed());
    /// assert!(b.send(&2u8).unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        for c in [&self.rx, &self.tx].into_iter().flatten() {
            c.ring().close();
        }
    }

    /// Whether this end can receive.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// assert!(rx.readable());
    /// assert!(!tx.readable());
    /// assert!(tx.recv_bytes().unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn readable(&self) -> bool {
        self.rx.is_some()
    }

    /// Whether this end can send.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// assert!(tx.writable());
    /// assert!(!rx.writable());
    /// assert!(rx.send_bytes(b"x").unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn writable(&self) -> bool {
        self.tx.is_some()
    }

    /// A readiness descriptor for `epoll`/tokio/asyncio on the receiving direction:
    /// readable after a send, while the returned guard lives (`None` for a send-only
    /// end). Use it as [`Queue::readiness`](crate::Queue::readiness): clear it, read
    /// until nothing is left, then wait for readability again. End of stream is not
    /// signalled on it; check [`poll`](Connection::poll) after each wake.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = shoal::Pipe::simplex()?;
    /// assert!(tx.readiness().is_none());
    /// let ready = rx.readiness().unwrap();
    /// tx.send(&1u8)?;
    /// assert!(ready.wait(Duration::from_secs(5))?);
    /// ready.clear();
    /// assert_eq!(rx.recv::<u8>()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn readiness(&self) -> Option<crate::channel::Readiness> {
        self.rx
            .as_ref()
            .map(|rx| crate::channel::Readiness::new(Arc::clone(rx)))
    }
}

#[derive(Serialize, Deserialize)]
struct WireEnds {
    rx: bool,
    tx: bool,
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        struct Ring<'a>(&'a Endpoint);
        impl Serialize for Ring<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_endpoint(self.0, TAG_PIPE, "Connection", s)
            }
        }
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&WireEnds {
            rx: self.rx.is_some(),
            tx: self.tx.is_some(),
        })?;
        t.serialize_element(&self.rx.as_deref().map(Ring))?;
        t.serialize_element(&self.tx.as_deref().map(Ring))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Connection, D::Error> {
        struct Ring(Arc<Endpoint>);
        impl<'de> Deserialize<'de> for Ring {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ring, D::Error> {
                deserialize_endpoint(d, TAG_PIPE).map(Ring)
            }
        }
        let (_ends, rx, tx): (WireEnds, Option<Ring>, Option<Ring>) = Deserialize::deserialize(d)?;
        Ok(Connection {
            rx: rx.map(|r| r.0),
            tx: tx.map(|r| r.0),
        })
    }
}
