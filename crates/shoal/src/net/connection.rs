use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::net::auth::{self, FrameIo, PeerFeatures};
use crate::net::frame::{self, FrameReader};
use crate::net::options::Options;
use crate::net::socket::Socket;
use crate::net::{Address, NetError};
use crate::sys;

/// The feature name a shoal challenge offers zstd compression under.
pub(crate) const ZSTD_FEATURE: &str = "zstd";

/// Frames smaller than this are never compressed.
#[cfg(feature = "compression")]
const COMPRESS_MIN: usize = 4096;

/// First payload byte of every frame once compression is on.
const FLAG_PLAIN: u8 = 0;
#[cfg(feature = "compression")]
const FLAG_ZSTD: u8 = 1;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another thread while it held the lock leaves the buffers in a state
    // the next frame read or write checks for itself.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which end of the handshake this side plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Delivers its challenge first (the listener).
    Server,
    /// Answers first (the client).
    Client,
}

/// One end of an authenticated socket connection (Python's
/// `multiprocessing.connection.Connection`), from [`Listener::accept`] or
/// [`Client::connect`].
///
/// Messages are frames in Python's format: [`send_bytes`](Connection::send_bytes) /
/// [`recv_bytes`](Connection::recv_bytes) exchange raw bytes with any peer, Python
/// included; [`send`](Connection::send) / [`recv`](Connection::recv) carry Rust values
/// through shoal's serde codec (bincode), for shoal peers.
///
/// A connection may be shared between threads: one thread can receive while another
/// sends (over TLS the two take turns on the session). Frames longer than the maximum
/// frame size ([`ClientBuilder::max_frame_size`], 64 MiB by default) are refused before
/// anything is allocated for them. An error in the middle of a frame (a truncated frame,
/// an oversized or malformed one, a time-out) closes the connection, since the stream can
/// no longer be trusted; later calls return [`NetError::Closed`].
///
/// The connection's descriptor ([`AsFd`]) becomes readable when a message (or the end of
/// the stream) arrives, so it can join an `epoll`/`poll` set or a `wait` over several
/// objects; such a wait checks [`has_pending_input`](Connection::has_pending_input)
/// first, since messages read ahead of the one received wait inside the connection.
///
/// # Examples
/// ```
/// use shoal::net::{Client, Listener};
///
/// let listener = Listener::bind("127.0.0.1:0", Some(b"secret"))?;
/// let address = listener.address().clone();
/// let server = std::thread::spawn(move || -> Result<(), shoal::net::NetError> {
///     let conn = listener.accept()?;
///     let n: u32 = conn.recv()?;
///     conn.send(&(n + 1))
/// });
/// let conn = Client::connect(&address, Some(b"secret"))?;
/// conn.send(&41u32)?;
/// assert_eq!(conn.recv::<u32>()?, 42);
/// server.join().unwrap()?;
/// # Ok::<(), shoal::net::NetError>(())
/// ```
///
/// [`Listener::accept`]: crate::net::Listener::accept
/// [`Client::connect`]: crate::net::Client::connect
/// [`ClientBuilder::max_frame_size`]: crate::net::ClientBuilder::max_frame_size
pub struct Connection {
    socket: Arc<Socket>,
    #[cfg(feature = "tls")]
    tls: Option<Mutex<crate::net::tls::TlsStream>>,
    rx: Mutex<FrameReader>,
    tx: Mutex<Vec<u8>>,
    max_frame: usize,
    /// The zstd level, once both sides agreed on compression.
    compression: Option<i32>,
    closed: AtomicBool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("socket", &self.socket)
            .field("tls", &self.is_tls())
            .field("max_frame", &self.max_frame)
            .field("compression", &self.compression)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The connection's byte stream: the TLS session when there is one, else the socket.
struct Wire<'a>(&'a Connection);

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.0.tls {
            return lock(t).read(buf);
        }
        (&*self.0.socket).read(buf)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.0.tls {
            return lock(t).write(buf);
        }
        (&*self.0.socket).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.0.tls {
            return lock(t).flush();
        }
        Ok(())
    }
}

/// Raw frames for the handshake (before compression is agreed).
struct Handshake<'a>(&'a Connection);

impl FrameIo for Handshake<'_> {
    fn send_frame(&mut self, payload: &[u8]) -> Result<(), NetError> {
        self.0.write_parts(&[payload])
    }

    fn recv_frame(&mut self, limit: usize) -> Result<Vec<u8>, NetError> {
        let mut rx = lock(&self.0.rx);
        rx.read_frame(&mut Wire(self.0), limit.min(self.0.max_frame))
    }
}

impl Connection {
    /// Runs the TLS and HMAC handshakes over a fresh socket.
    pub(crate) fn establish(
        socket: impl Into<Arc<Socket>>,
        role: Role,
        opts: &Options,
    ) -> Result<Connection, NetError> {
        let socket = socket.into();
        let deadline = opts
            .handshake_timeout
            .and_then(|t| Instant::now().checked_add(t));
        let timeouts = |d| {
            socket
                .set_deadline(d)
                .map_err(|e| NetError::io("set the socket's time-outs", e))
        };
        timeouts(deadline)?;
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut conn = Connection {
            socket: socket.clone(),
            #[cfg(feature = "tls")]
            tls: None,
            rx: Mutex::new(FrameReader::new()),
            tx: Mutex::new(Vec::new()),
            max_frame: opts.max_frame,
            compression: None,
            closed: AtomicBool::new(false),
        };
        let result = conn.handshakes(role, opts);
        match result {
            Ok(peer) => {
                if peer.has(ZSTD_FEATURE) {
                    conn.compression = opts.compression;
                }
                timeouts(None)?;
                Ok(conn)
            }
            Err(e) => {
                conn.abort();
                Err(match e {
                    NetError::Timeout { .. } => NetError::Timeout {
                        op: "complete the handshake",
                    },
                    e => e,
                })
            }
        }
    }

    fn handshakes(&mut self, role: Role, opts: &Options) -> Result<PeerFeatures, NetError> {
        #[cfg(feature = "tls")]
        if let Some(side) = &opts.tls {
            let stream = crate::net::tls::TlsStream::handshake(side, self.socket.clone())?;
            self.tls = Some(Mutex::new(stream));
        }
        let Some(cfg) = opts.auth() else {
            return Ok(PeerFeatures::default());
        };
        let mut io = Handshake(self);
        match role {
            Role::Server => {
                auth::deliver_challenge(&mut io, &cfg)?;
                auth::answer_challenge(&mut io, &cfg)
            }
            Role::Client => {
                let peer = auth::answer_challenge(&mut io, &cfg)?;
                auth::deliver_challenge(&mut io, &cfg)?;
                Ok(peer)
            }
        }
    }

    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    fn check_open(&self) -> Result<(), NetError> {
        if self.closed.load(Ordering::Acquire) {
            Err(NetError::Closed)
        } else {
            Ok(())
        }
    }

    /// Closes the connection after an error that leaves the stream unusable.
    fn abort(&self) {
        self.closed.store(true, Ordering::Release);
        self.socket.shutdown();
    }

    fn write_parts(&self, parts: &[&[u8]]) -> Result<(), NetError> {
        self.check_open()?;
        let mut scratch = lock(&self.tx);
        frame::write_frame(&mut Wire(self), parts, &mut scratch).map_err(|e| {
            // Part of a frame may have gone out: the stream is no longer framed.
            self.abort();
            NetError::io("send a frame", e)
        })
    }

    /// Reads one frame, closing the connection on any error that leaves the stream
    /// mid-frame.
    fn read_frame_with<T>(
        &self,
        read: impl FnOnce(&mut FrameReader, &mut Wire<'_>, usize) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        self.check_open()?;
        let mut rx = lock(&self.rx);
        let before = rx.buffered();
        let result = read(&mut rx, &mut Wire(self), self.max_frame);
        if let Err(e) = &result {
            let between_frames =
                matches!(e, NetError::Timeout { .. }) && before == 0 && rx.buffered() == 0;
            if !between_frames && !matches!(e, NetError::BufferTooShort { .. }) {
                self.abort();
            }
        }
        result
    }

    /// Sends `data` as one message (Python's `send_bytes`).
    ///
    /// # Errors
    /// [`NetError::FrameTooLarge`] (nothing is sent, the connection stays open) when
    /// `data` is longer than the maximum frame size; [`NetError::Io`] or
    /// [`NetError::Timeout`] when the socket fails (the connection is then closed);
    /// [`NetError::Closed`] after [`close`](Connection::close).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener};
    /// # let name = format!("@shoal-doc-send-bytes-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// client.send_bytes(b"hello")?;
    /// assert_eq!(server.recv_bytes()?, b"hello");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn send_bytes(&self, data: &[u8]) -> Result<(), NetError> {
        if data.len() > self.max_frame {
            return Err(NetError::FrameTooLarge {
                len: data.len() as u64,
                max: self.max_frame,
            });
        }
        if self.compression.is_none() {
            return self.write_parts(&[data]);
        }
        #[cfg(feature = "compression")]
        if let Some(level) = self.compression {
            if data.len() >= COMPRESS_MIN {
                let packed =
                    zstd::bulk::compress(data, level).map_err(|e| NetError::Compression {
                        reason: format!("could not compress a {}-byte message: {e}", data.len()),
                    })?;
                if packed.len() < data.len() {
                    return self.write_parts(&[&[FLAG_ZSTD], &packed]);
                }
            }
        }
        self.write_parts(&[&[FLAG_PLAIN], data])
    }

    /// Undoes the compression flag of a frame, when compression is on.
    fn unpack(&self, payload: Vec<u8>) -> Result<Vec<u8>, NetError> {
        if self.compression.is_none() {
            return Ok(payload);
        }
        match payload.first() {
            Some(&FLAG_PLAIN) => Ok(payload[1..].to_vec()),
            #[cfg(feature = "compression")]
            Some(&FLAG_ZSTD) => {
                let packed = &payload[1..];
                let fail = |reason: String| {
                    self.abort();
                    NetError::Compression { reason }
                };
                // The declared size sizes the buffer (a frame without one gets the
                // limit); decompression stops with an error at the buffer's end, so a
                // frame that lies about its size cannot overrun it either.
                let capacity = match zstd::zstd_safe::get_frame_content_size(packed) {
                    Ok(Some(n)) if n > self.max_frame as u64 => {
                        return Err(fail(format!(
                            "a compressed frame declares {n} bytes, above the maximum frame size of {} bytes",
                            self.max_frame
                        )))
                    }
                    Ok(Some(n)) => n as usize,
                    Ok(None) => self.max_frame,
                    Err(_) => {
                        return Err(fail(format!(
                            "a {}-byte compressed frame has no valid zstd header",
                            packed.len()
                        )))
                    }
                };
                zstd::bulk::decompress(packed, capacity).map_err(|e| {
                    fail(format!(
                        "could not decompress a {}-byte frame within {capacity} bytes: {e}",
                        packed.len()
                    ))
                })
            }
            other => {
                self.abort();
                Err(NetError::MalformedFrame {
                    reason: format!("unknown compression flag {other:?}"),
                })
            }
        }
    }

    /// Receives one message as bytes (Python's `recv_bytes`), blocking until it arrives.
    ///
    /// # Errors
    /// [`NetError::Eof`] when the peer closed the connection; [`NetError::Truncated`],
    /// [`NetError::FrameTooLarge`] or [`NetError::MalformedFrame`] for a frame that
    /// cannot be trusted (the connection is then closed); [`NetError::Timeout`] after a
    /// read time-out ([`set_read_timeout`](Connection::set_read_timeout)).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener, NetError};
    /// # let name = format!("@shoal-doc-recv-bytes-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// client.send_bytes(b"first")?;
    /// client.send_bytes(b"second")?;
    /// assert_eq!(server.recv_bytes()?, b"first");
    /// assert_eq!(server.recv_bytes()?, b"second");
    /// drop(client);
    /// assert!(matches!(server.recv_bytes(), Err(NetError::Eof)));
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>, NetError> {
        let payload = self.read_frame_with(|rx, wire, max| rx.read_frame(wire, max))?;
        self.unpack(payload)
    }

    /// Receives one message into `buf` and returns its length (Python's
    /// `recv_bytes_into`).
    ///
    /// # Errors
    /// [`NetError::BufferTooShort`], carrying the whole message, when it does not fit
    /// (the connection stays usable); otherwise those of
    /// [`recv_bytes`](Connection::recv_bytes).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener, NetError};
    /// # let name = format!("@shoal-doc-recv-bytes-into-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// let mut buf = [0u8; 8];
    /// client.send_bytes(b"fits")?;
    /// let n = server.recv_bytes_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"fits");
    ///
    /// client.send_bytes(b"does not fit")?;
    /// let Err(NetError::BufferTooShort { message, capacity }) = server.recv_bytes_into(&mut buf) else {
    ///     panic!("expected BufferTooShort");
    /// };
    /// assert_eq!((message.as_slice(), capacity), (&b"does not fit"[..], 8));
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        if self.compression.is_some() {
            let message = self.recv_bytes()?;
            return copy_or_hand_back(message, buf);
        }
        self.read_frame_with(|rx, wire, max| {
            let len = rx.read_header(wire, max)?;
            if len <= buf.len() {
                rx.read_payload_into(wire, &mut buf[..len])?;
                Ok(len)
            } else {
                let message = rx.read_payload(wire, len)?;
                copy_or_hand_back(message, buf)
            }
        })
    }

    /// Sends a value through shoal's serde codec (for shoal peers; Python peers pickle).
    ///
    /// # Errors
    /// [`NetError::Codec`] when the value cannot be encoded; otherwise those of
    /// [`send_bytes`](Connection::send_bytes).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener};
    /// # let name = format!("@shoal-doc-send-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// client.send(&("resize", 640u32, vec![0.5f64, 2.0]))?;
    /// let (op, width, scales): (String, u32, Vec<f64>) = server.recv()?;
    /// assert_eq!((op.as_str(), width, scales), ("resize", 640, vec![0.5, 2.0]));
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), NetError> {
        self.send_bytes(&codec::encode(value)?)
    }

    /// Receives a value sent by [`send`](Connection::send).
    ///
    /// # Errors
    /// [`NetError::Codec`] when the message is not a `T` (the connection stays usable);
    /// otherwise those of [`recv_bytes`](Connection::recv_bytes).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener, NetError};
    /// # let name = format!("@shoal-doc-recv-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// client.send(&"not a number")?;
    /// assert!(matches!(server.recv::<u64>(), Err(NetError::Codec(_))));
    /// client.send(&7u64)?; // the connection stays usable
    /// assert_eq!(server.recv::<u64>()?, 7);
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, NetError> {
        Ok(codec::decode(&self.recv_bytes()?)?)
    }

    /// Whether a message (or the end of the stream) can be read without blocking,
    /// waiting up to `timeout` for one (Python's `poll`).
    ///
    /// # Errors
    /// [`NetError::Closed`] after [`close`](Connection::close); [`NetError::Io`] when
    /// the kernel refuses to poll.
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener};
    /// # let name = format!("@shoal-doc-poll-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// use std::time::Duration;
    ///
    /// assert!(!server.poll(Duration::ZERO)?); // nothing yet
    /// client.send_bytes(b"ping")?;
    /// assert!(server.poll(Duration::from_secs(10))?);
    /// assert_eq!(server.recv_bytes()?, b"ping");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn poll(&self, timeout: Duration) -> Result<bool, NetError> {
        self.check_open()?;
        // A timeout too long to add to now waits forever.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.has_pending_input() {
                return Ok(true);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ready = sys::poll_readable(&[self.socket.as_fd()], left)
                .map_err(|e| NetError::io("poll a connection", e))?;
            if !ready.first().copied().unwrap_or(false) {
                return Ok(false);
            }
            if !self.took_only_tls_records() {
                return Ok(true);
            }
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(false);
            }
        }
    }

    /// After the socket turned readable: whether what came was only TLS records that
    /// carry no message (a session ticket) or part of a record, now taken into the
    /// session — then a poll waits on. The end of the stream and a broken session count
    /// as input: the next receive reports them.
    fn took_only_tls_records(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            let mut t = lock(t);
            return matches!(t.absorb(), Ok(n) if n > 0) && !t.has_plaintext();
        }
        false
    }

    /// Whether input already read from the socket (or decrypted by TLS) waits inside the
    /// connection. The descriptor ([`AsFd`]) does not turn readable for such input, so a
    /// `wait` over descriptors must check this first, as [`poll`](Connection::poll)
    /// does.
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener};
    /// # let name = format!("@shoal-doc-pending-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// assert!(!server.has_pending_input());
    /// client.send_bytes(b"a")?;
    /// client.send_bytes(b"b")?;
    /// assert_eq!(server.recv_bytes()?, b"a");
    /// // "b" was read from the socket along with "a": it waits inside the connection.
    /// assert!(server.has_pending_input());
    /// assert_eq!(server.recv_bytes()?, b"b");
    /// assert!(!server.has_pending_input());
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn has_pending_input(&self) -> bool {
        if lock(&self.rx).buffered() > 0 {
            return true;
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            return lock(t).has_plaintext();
        }
        false
    }

    /// Makes [`recv_bytes`](Connection::recv_bytes) and friends give up with
    /// [`NetError::Timeout`] after `timeout` without data (`None`: wait forever). A
    /// time-out between frames leaves the connection usable; one inside a frame closes
    /// it.
    ///
    /// # Errors
    /// [`NetError::Io`] when the kernel refuses the setting (a zero duration).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener, NetError};
    /// # let name = format!("@shoal-doc-read-timeout-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// use std::time::Duration;
    ///
    /// server.set_read_timeout(Some(Duration::from_millis(20)))?;
    /// assert!(matches!(server.recv_bytes(), Err(NetError::Timeout { .. })));
    /// client.send_bytes(b"late")?; // a time-out between frames leaves the connection usable
    /// assert_eq!(server.recv_bytes()?, b"late");
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), NetError> {
        self.socket
            .set_read_timeout(timeout)
            .map_err(|e| NetError::io("set a read time-out", e))
    }

    /// Makes sends give up with [`NetError::Timeout`] (and close the connection) after
    /// `timeout` blocked on a full socket (`None`: wait forever).
    ///
    /// # Errors
    /// [`NetError::Io`] when the kernel refuses the setting (a zero duration).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener, NetError};
    /// # let name = format!("@shoal-doc-write-timeout-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let _server = listener.accept()?;
    /// use std::time::Duration;
    ///
    /// client.set_write_timeout(Some(Duration::from_millis(20)))?;
    /// // Nobody reads: the socket buffer fills up and the send gives up mid-frame.
    /// let sent = client.send_bytes(&vec![0u8; 8 << 20]);
    /// assert!(matches!(sent, Err(NetError::Timeout { .. })));
    /// assert!(client.is_closed());
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<(), NetError> {
        self.socket
            .set_write_timeout(timeout)
            .map_err(|e| NetError::io("set a write time-out", e))
    }

    /// The address of the other end: the listener's for a client connection, the
    /// client's for an accepted one (Python's `Listener.last_accepted`); `None` for a
    /// Unix client socket without a name.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Address, Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// let client = Client::connect(listener.address(), None)?;
    /// let server = listener.accept()?;
    /// assert_eq!(client.peer_address(), Some(listener.address()));
    /// assert!(matches!(server.peer_address(), Some(Address::Tcp(a)) if a.ip().is_loopback()));
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn peer_address(&self) -> Option<&Address> {
        self.socket.peer()
    }

    /// The maximum frame size this side accepts and sends.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener, DEFAULT_MAX_FRAME_SIZE};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// let small = Client::builder().max_frame_size(1024).connect(listener.address())?;
    /// assert_eq!(small.max_frame_size(), 1024);
    /// assert_eq!(listener.accept()?.max_frame_size(), DEFAULT_MAX_FRAME_SIZE);
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn max_frame_size(&self) -> usize {
        self.max_frame
    }

    /// Whether both sides agreed to compress large frames (zstd).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener};
    /// # let name = format!("@shoal-doc-compressed-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// // Compression needs an auth key and an offer from both sides.
    /// assert!(!client.is_compressed());
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn is_compressed(&self) -> bool {
        self.compression.is_some()
    }

    /// Whether the connection runs over TLS.
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener};
    /// # let name = format!("@shoal-doc-encrypted-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// assert!(!client.is_encrypted()); // no TLS configured
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn is_encrypted(&self) -> bool {
        self.is_tls()
    }

    /// Whether the connection was closed (by [`close`](Connection::close) or an error).
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener};
    /// # let name = format!("@shoal-doc-is-closed-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// assert!(!client.is_closed());
    /// client.close();
    /// assert!(client.is_closed());
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the connection: the peer sees the end of the stream, and a thread blocked
    /// receiving here wakes with an error. Later calls return [`NetError::Closed`].
    /// Dropping the connection closes it too.
    ///
    /// # Examples
    /// ```
    /// # use shoal::net::{Client, Listener, NetError};
    /// # let name = format!("@shoal-doc-close-{}", std::process::id());
    /// # let listener = Listener::bind(name.as_str(), None)?;
    /// # let client = Client::connect(listener.address(), None)?;
    /// # let server = listener.accept()?;
    /// client.close();
    /// assert!(matches!(client.send_bytes(b"x"), Err(NetError::Closed)));
    /// assert!(matches!(server.recv_bytes(), Err(NetError::Eof))); // the peer sees the end
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            // Only when no other thread is inside the session: close must not block.
            if let Ok(mut t) = t.try_lock() {
                t.close_notify();
            }
        }
        self.socket.shutdown();
    }
}

fn copy_or_hand_back(message: Vec<u8>, buf: &mut [u8]) -> Result<usize, NetError> {
    if message.len() <= buf.len() {
        buf[..message.len()].copy_from_slice(&message);
        Ok(message.len())
    } else {
        Err(NetError::BufferTooShort {
            capacity: buf.len(),
            message,
        })
    }
}

impl AsFd for Connection {
    /// The socket's descriptor, readable when a message or the end of the stream
    /// arrives — unless it already arrived and waits inside the connection, which
    /// [`has_pending_input`](Connection::has_pending_input) tells.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// For event loops that take raw descriptors (tokio's `AsyncFd`, mio's `SourceFd`).
impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_fd().as_raw_fd()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Digest;

    fn opts(key: Option<&[u8]>) -> Options {
        Options {
            authkey: key.map(<[u8]>::to_vec),
            handshake_timeout: Some(Duration::from_secs(30)),
            ..Options::default()
        }
    }

    /// Both ends of a socket pair, through the handshakes.
    fn pair(
        server: Options,
        client: Options,
    ) -> (Result<Connection, NetError>, Result<Connection, NetError>) {
        let (a, b) = Socket::pair();
        let t = std::thread::spawn(move || Connection::establish(a, Role::Server, &server));
        let c = Connection::establish(b, Role::Client, &client);
        (t.join().unwrap(), c)
    }

    #[test]
    fn handshake_over_a_socket_pair() {
        let (s, c) = pair(opts(Some(b"k")), opts(Some(b"k")));
        let (s, c) = (s.unwrap(), c.unwrap());
        c.send_bytes(b"hi").unwrap();
        assert_eq!(s.recv_bytes().unwrap(), b"hi");
        assert!(!s.is_compressed() && !s.is_encrypted());
        assert_eq!(s.max_frame_size(), crate::net::DEFAULT_MAX_FRAME_SIZE);
        let (s, c) = pair(opts(Some(b"k")), opts(Some(b"other")));
        assert!(matches!(
            s.unwrap_err(),
            NetError::Authentication(crate::net::AuthFailure::DigestReceivedWrong)
        ));
        assert!(matches!(
            c.unwrap_err(),
            NetError::Authentication(crate::net::AuthFailure::DigestSentRejected)
        ));
        let mut sha3 = opts(Some(b"k"));
        sha3.digest = Digest::Sha3_256;
        let (s, c) = pair(sha3.clone(), sha3);
        assert!(s.is_ok() && c.is_ok());
    }

    #[test]
    fn a_key_on_one_side_only_times_out() {
        let mut quick = opts(Some(b"k"));
        quick.handshake_timeout = Some(Duration::from_millis(100));
        let mut none = opts(None);
        none.handshake_timeout = Some(Duration::from_millis(100));
        // The client waits for a challenge that never comes.
        let (s, c) = pair(none, quick);
        drop(s);
        assert!(c.is_err());
    }

    #[test]
    fn unknown_compression_flags_are_malformed() {
        let (s, c) = pair(opts(None), opts(None));
        let (mut s, c) = (s.unwrap(), c.unwrap());
        // Pretend compression was agreed on the receiving side only.
        s.compression = Some(3);
        c.send_bytes(&[9, 1, 2]).unwrap();
        let err = s.recv_bytes().unwrap_err();
        assert!(matches!(err, NetError::MalformedFrame { .. }), "{err}");
        assert!(s.is_closed());
        c.send_bytes(&[]).unwrap_or(());
        assert!(matches!(s.recv_bytes(), Err(NetError::Closed)));
    }

    #[test]
    fn debug_names_the_state() {
        let (s, _c) = pair(opts(None), opts(None));
        let s = s.unwrap();
        s.close();
        let shown = format!("{s:?}");
        assert!(shown.contains("closed: true"), "{shown}");
    }
}
