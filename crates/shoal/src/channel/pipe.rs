//! `Pipe` and `Connection`: two-ended channels over single-producer rings (see
//! `ring::spsc`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::core::{deserialize_core, serialize_core, Core, Wait};
use crate::channel::ring::RingConfig;
use crate::channel::{CreateError, GetError, PutError, ReadSlot, TAG_PIPE};
use crate::codec::Codec;
use crate::sys::Deadline;

/// Ring size of each direction of a pipe.
const PIPE_CAPACITY: usize = 512 * 1024;

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
    pub fn duplex() -> Result<(Connection, Connection), CreateError> {
        let ab = ring()?;
        let ba = ring()?;
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

    /// A one-way pair `(sender, receiver)`: the first can only send, the second only
    /// receive. (Python's `Pipe(duplex=False)` returns them in the other order.)
    ///
    /// # Errors
    /// When the kernel refuses the memory or an eventfd.
    pub fn simplex() -> Result<(Connection, Connection), CreateError> {
        let r = ring()?;
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

fn ring() -> Result<Arc<Core>, CreateError> {
    let cell = crate::channel::queue::DEFAULT_CELL;
    Core::create(
        RingConfig {
            cell_size: cell,
            cells: PIPE_CAPACITY / cell,
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
    rx: Option<Arc<Core>>,
    tx: Option<Arc<Core>>,
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
    pub(crate) fn rx_core(&self) -> Option<&Arc<Core>> {
        self.rx.as_ref()
    }

    pub(crate) fn tx_core(&self) -> Option<&Arc<Core>> {
        self.tx.as_ref()
    }

    fn tx(&self) -> Result<&Arc<Core>, PutError<()>> {
        self.tx.as_ref().ok_or(PutError::Closed(()))
    }

    fn rx(&self) -> Result<&Arc<Core>, GetError> {
        self.rx.as_ref().ok_or(GetError::Closed)
    }

    /// Sends raw bytes, copied straight into the ring; blocks while full.
    ///
    /// # Errors
    /// [`PutError::Closed`] when this end cannot send, was closed, or the peer closed
    /// or died while the ring was full.
    pub fn send_bytes(&self, data: &[u8]) -> Result<(), PutError<()>> {
        let tx = self.tx()?;
        tx.ring.note_end(true);
        // The ring's wait checks now and then that the receiver lives, and reports a
        // dead one as closed.
        tx.put_bytes(data, Wait::forever())
    }

    /// Sends `msg` encoded with bincode.
    ///
    /// # Errors
    /// As [`send_bytes`](Connection::send_bytes), and `Encode`.
    pub fn send<T: Serialize + ?Sized>(&self, msg: &T) -> Result<(), PutError<()>> {
        let bytes = Codec::Bincode
            .encode(msg)
            .map_err(|e| PutError::Encode((), e))?;
        self.send_bytes(&bytes)
    }

    fn recv_with<R>(
        &self,
        deadline: Deadline,
        op: impl FnOnce(&Core, Wait) -> Result<R, GetError>,
    ) -> Result<R, GetError> {
        let rx = self.rx()?;
        rx.ring.note_end(false);
        // The ring's wait checks now and then that the sender lives; once it is dead,
        // what it sent is drained, then end of stream is reported.
        op(rx, Wait::Until(deadline))
    }

    /// Receives the next message as bytes; blocks until one comes.
    ///
    /// # Errors
    /// [`GetError::Closed`] at end of stream (peer closed or died, nothing left).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.recv_with(Deadline::NEVER, |c, w| c.get_bytes_into(&mut v, w))?;
        Ok(v)
    }

    /// Receives the next message into `buf`; returns its length.
    ///
    /// # Errors
    /// [`GetError::BufferTooShort`] (with the message, which is consumed) when `buf` is
    /// too small; `Closed` at end of stream.
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

    /// Receives and decodes the next message (bincode); blocks until one comes.
    ///
    /// # Errors
    /// `Closed` at end of stream; `Decode`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, GetError> {
        self.recv_with(Deadline::NEVER, |c, w| c.get_value(w))
    }

    /// [`recv`](Connection::recv) for at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`; `Closed`; `Decode`.
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, GetError> {
        self.recv_with(Deadline::after(timeout), |c, w| c.get_value(w))
    }

    /// Whether a message (or end of stream) is ready, waiting at most `timeout`.
    pub fn poll(&self, timeout: Duration) -> bool {
        let Some(rx) = &self.rx else {
            return false;
        };
        let deadline = Deadline::after(timeout);
        rx.ring.wait_readable(deadline, || rx.ring.end_dead(true)) || rx.ring.end_dead(true)
    }

    /// Closes this end for both processes: the peer's `recv` reports end of stream
    /// after draining, and its `send` fails.
    pub fn close(&self) {
        for c in [&self.rx, &self.tx].into_iter().flatten() {
            c.ring.close();
        }
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.rx.is_some()
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.tx.is_some()
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
        struct Ring<'a>(&'a Core);
        impl Serialize for Ring<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_core(self.0, TAG_PIPE, "Connection", s)
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
        struct Ring(Arc<Core>);
        impl<'de> Deserialize<'de> for Ring {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ring, D::Error> {
                deserialize_core(d, TAG_PIPE).map(Ring)
            }
        }
        let (_ends, rx, tx): (WireEnds, Option<Ring>, Option<Ring>) = Deserialize::deserialize(d)?;
        Ok(Connection {
            rx: rx.map(|r| r.0),
            tx: tx.map(|r| r.0),
        })
    }
}
