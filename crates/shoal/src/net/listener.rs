use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use crate::net::acceptor::{Acceptor, DEFAULT_MAX_PENDING};
use crate::net::options::Options;
use crate::net::socket::ListenSocket;
use crate::net::{Address, Connection, Digest, NetError, ToAddress};

/// A bound socket that accepts authenticated connections (Python's
/// `multiprocessing.connection.Listener`).
///
/// Handshakes run in the background, concurrently: an acceptor thread takes each client
/// off the socket and runs its TLS and HMAC handshake (challenge first, then answer, as
/// Python does) on a handshake thread of its own, within the handshake time limit.
/// [`accept`](Listener::accept) returns the next handshake to *finish*, so a client that
/// connects and says nothing holds one handshake slot and delays nobody else. A client
/// that fails its handshake — wrong key, malformed or oversized frames, silence past the
/// limit — gets its connection closed and `accept` returns that client's error; the
/// listener goes on serving the others (see [`incoming`](Listener::incoming)).
///
/// At most [`max_pending_handshakes`](ListenerBuilder::max_pending_handshakes) clients
/// (64 by default) are in their handshake or finished and waiting for `accept`; beyond
/// that, new clients wait in the kernel's backlog until a slot frees. Dropping the
/// listener ends the handshakes in flight and closes the connections nobody accepted.
///
/// A Unix socket path is removed when the listener is dropped, as Python does.
///
/// # Platform notes
/// The acceptor thread belongs to the process that bound the listener: a child made by
/// the `fork` start method cannot accept on its parent's listener.
///
/// # Examples
/// ```
/// use shoal::net::{Client, Listener};
///
/// let listener = Listener::bind("127.0.0.1:0", Some(b"secret"))?;
/// let address = listener.address().clone();
/// let clients = std::thread::spawn(move || {
///     for i in 0..3u8 {
///         let c = Client::connect(&address, Some(b"secret")).unwrap();
///         c.send_bytes(&[i]).unwrap();
///     }
/// });
/// let mut got = Vec::new();
/// for conn in listener.incoming().take(3) {
///     got.extend(conn?.recv_bytes()?);
/// }
/// clients.join().unwrap();
/// assert_eq!(got, [0, 1, 2]);
/// # Ok::<(), shoal::net::NetError>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    acceptor: Acceptor,
    address: Address,
}

impl Listener {
    /// Binds `address`; clients must authenticate with `authkey` when given.
    ///
    /// # Errors
    /// [`NetError::Io`] when the address is taken or cannot be bound;
    /// [`NetError::InvalidAddress`] for an address that does not parse.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::Listener;
    ///
    /// let path = std::env::temp_dir().join(format!("shoal-doc-bind-{}.sock", std::process::id()));
    /// let listener = Listener::bind(&path, None)?;
    /// assert!(path.exists());
    /// drop(listener);
    /// assert!(!path.exists()); // a Unix socket path is removed with its listener
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn bind(address: impl ToAddress, authkey: Option<&[u8]>) -> Result<Listener, NetError> {
        let mut b = Listener::builder();
        if let Some(k) = authkey {
            b = b.authkey(k);
        }
        b.bind(address)
    }

    /// A builder for the other settings (frame size, time-outs, digest, TLS, compression).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::net::{Address, Listener};
    ///
    /// let listener = Listener::builder()
    ///     .authkey(b"key")
    ///     .max_frame_size(1 << 20)
    ///     .handshake_timeout(Some(Duration::from_secs(5)))
    ///     .bind("127.0.0.1:0")?;
    /// assert!(matches!(listener.address(), Address::Tcp(a) if a.port() != 0));
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn builder() -> ListenerBuilder {
        ListenerBuilder {
            opts: Options::default(),
            max_pending: DEFAULT_MAX_PENDING,
        }
    }

    /// The address clients connect to (with the port the kernel chose for port 0).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Address, Listener};
    ///
    /// let tcp = Listener::bind("127.0.0.1:0", None)?;
    /// assert!(matches!(tcp.address(), Address::Tcp(a) if a.port() != 0)); // the chosen port
    ///
    /// let name = format!("@shoal-doc-address-{}", std::process::id());
    /// let abs = Listener::bind(name.as_str(), None)?;
    /// assert_eq!(abs.address().to_string(), name);
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Returns the next client whose handshake finished, waiting for one.
    ///
    /// Clients are authenticated in the background, several at once; this returns them
    /// in the order their handshakes end, so a slow or silent client never holds up the
    /// ones behind it.
    ///
    /// # Errors
    /// [`NetError::Io`] with op `"accept a connection"` when the listening socket
    /// fails. Any other error concerns one client only, whose connection is closed:
    /// [`NetError::Authentication`] (wrong key), [`NetError::Timeout`] (stalled
    /// handshake), [`NetError::FrameTooLarge`], [`NetError::MalformedFrame`],
    /// [`NetError::Truncated`] or [`NetError::Eof`] (early close).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// let client = Client::connect(listener.address(), None)?;
    /// let server = listener.accept()?;
    /// server.send_bytes(b"welcome")?;
    /// assert_eq!(client.recv_bytes()?, b"welcome");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn accept(&self) -> Result<Connection, NetError> {
        match self.acceptor.take(None) {
            Some(result) => result,
            None => unreachable!("a wait without a deadline ends only with a result"),
        }
    }

    /// Like [`accept`](Listener::accept), but gives up with [`NetError::Timeout`] when no
    /// handshake finishes within `timeout`. Several threads may accept on one listener at
    /// once.
    ///
    /// # Errors
    /// Those of [`accept`](Listener::accept), and [`NetError::Timeout`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::net::{Client, Listener, NetError};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// let nobody = listener.accept_timeout(Duration::from_millis(10));
    /// assert!(matches!(nobody, Err(NetError::Timeout { .. })));
    ///
    /// let _client = Client::connect(listener.address(), None)?;
    /// assert!(listener.accept_timeout(Duration::from_secs(10)).is_ok());
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection, NetError> {
        // A timeout too long to add to now waits forever.
        let deadline = Instant::now().checked_add(timeout);
        self.acceptor
            .take(deadline)
            .unwrap_or(Err(NetError::Timeout {
                op: "accept a connection",
            }))
    }

    /// Accepts the next client without blocking the async runtime: waits on tokio's
    /// reactor for a handshake to finish (handshakes run on the listener's own handshake
    /// threads, as for [`accept`](Listener::accept)). The [`Connection`] it returns is a
    /// blocking one (use it from `spawn_blocking`, or hand it to a thread).
    ///
    /// Must be called from within a tokio runtime with I/O enabled.
    ///
    /// # Errors
    /// Those of [`accept`](Listener::accept).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener};
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    /// let listener = Listener::bind("127.0.0.1:0", Some(b"k"))?;
    /// let address = listener.address().clone();
    /// let client = std::thread::spawn(move || Client::connect(&address, Some(b"k")));
    /// let conn = rt.block_on(listener.accept_async())?;
    /// client.join().unwrap()?.send_bytes(b"hi")?;
    /// assert_eq!(conn.recv_bytes()?, b"hi");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn accept_async(&self) -> Result<Connection, NetError> {
        if let Some(result) = self.acceptor.try_take() {
            return result;
        }
        // A duplicate, registered for the time of the call, so that several tasks may
        // accept on one listener at once.
        let ready = crate::sys::eventfd_async(self.acceptor.ready_fd_dup()?)
            .map_err(|e| NetError::io("register the listener with tokio", e))?;
        loop {
            let mut guard = ready
                .readable()
                .await
                .map_err(|e| NetError::io("wait for a connection", e))?;
            if let Some(result) = self.acceptor.try_take() {
                return result;
            }
            // Another caller took it: wait for the next one.
            guard.clear_ready();
        }
    }

    /// An endless iterator of [`accept`](Listener::accept) results: a serving loop
    /// logs or skips the errors of single clients and goes on.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// for greeting in [b"one", b"two"] {
    ///     Client::connect(listener.address(), None)?.send_bytes(greeting)?;
    /// }
    /// let got: Vec<Vec<u8>> = listener
    ///     .incoming()
    ///     .take(2)
    ///     .map(|conn| conn?.recv_bytes())
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }
}

impl AsFd for Listener {
    /// Readable while a finished handshake (a connection, or a failed client's error)
    /// waits, so that [`accept`](Listener::accept) returns at once. It is not the
    /// listening socket: a client still in its handshake does not make it readable.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.acceptor.ready_fd()
    }
}

/// For event loops that take raw descriptors (tokio's `AsyncFd`, mio's `SourceFd`).
impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.acceptor.ready_fd().as_raw_fd()
    }
}

/// The iterator of [`Listener::incoming`].
///
/// # Examples
/// ```
/// use shoal::net::{Client, Listener};
///
/// let listener = Listener::bind("127.0.0.1:0", Some(b"key"))?;
/// let address = listener.address().clone();
/// let clients = std::thread::spawn(move || {
///     let _ = Client::connect(&address, Some(b"wrong key")); // refused
///     Client::connect(&address, Some(b"key"))?.send_bytes(b"hello")
/// });
/// let mut served = Vec::new();
/// for conn in listener.incoming() {
///     match conn {
///         Ok(conn) => {
///             served.push(conn.recv_bytes()?);
///             break;
///         }
///         // One client's failure; the listener goes on serving.
///         Err(e) => eprintln!("skipping a client: {e}"),
///     }
/// }
/// clients.join().unwrap()?;
/// assert_eq!(served, [b"hello".to_vec()]);
/// # Ok::<(), shoal::net::NetError>(())
/// ```
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a Listener,
}

impl Iterator for Incoming<'_> {
    type Item = Result<Connection, NetError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept())
    }
}

/// Settings for a [`Listener`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::net::{Client, Digest, Listener};
///
/// let listener = Listener::builder()
///     .authkey(b"key")
///     .digest(Digest::Sha3_256)
///     .max_frame_size(1 << 20)
///     .handshake_timeout(Some(Duration::from_secs(5)))
///     .bind("127.0.0.1:0")?;
/// let address = listener.address().clone();
/// let client = std::thread::spawn(move || Client::connect(&address, Some(b"key")));
/// let server = listener.accept()?;
/// client.join().unwrap()?.send_bytes(b"hi")?;
/// assert_eq!(server.recv_bytes()?, b"hi");
/// assert_eq!(server.max_frame_size(), 1 << 20);
/// # Ok::<(), shoal::net::NetError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ListenerBuilder {
    opts: Options,
    max_pending: usize,
}

impl ListenerBuilder {
    /// Requires clients to authenticate with this key.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener, NetError};
    ///
    /// let listener = Listener::builder().authkey(b"secret").bind("127.0.0.1:0")?;
    /// let address = listener.address().clone();
    /// let client = std::thread::spawn(move || Client::connect(&address, Some(b"wrong key")));
    /// assert!(matches!(listener.accept(), Err(NetError::Authentication(_))));
    /// assert!(client.join().unwrap().is_err());
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn authkey(mut self, key: &[u8]) -> ListenerBuilder {
        self.opts.authkey = Some(key.to_vec());
        self
    }

    /// The digest the challenge asks clients for (default SHA-256, as Python 3.12+).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Digest, Listener};
    ///
    /// let listener = Listener::builder()
    ///     .authkey(b"key")
    ///     .digest(Digest::Sha3_256)
    ///     .bind("127.0.0.1:0")?;
    /// let address = listener.address().clone();
    /// let client = std::thread::spawn(move || Client::connect(&address, Some(b"key")));
    /// let server = listener.accept()?;
    /// client.join().unwrap()?.send_bytes(b"authenticated")?;
    /// assert_eq!(server.recv_bytes()?, b"authenticated");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn digest(mut self, digest: Digest) -> ListenerBuilder {
        self.opts.digest = digest;
        self
    }

    /// Refuses the legacy untagged HMAC-MD5 form (Python 3.11 and older clients).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::builder()
    ///     .authkey(b"key")
    ///     .refuse_legacy_md5()
    ///     .bind("127.0.0.1:0")?;
    /// let address = listener.address().clone();
    /// // shoal clients answer in the tagged form, so they are still let in.
    /// let client = std::thread::spawn(move || Client::connect(&address, Some(b"key")));
    /// let server = listener.accept()?;
    /// client.join().unwrap()?.send_bytes(b"tagged")?;
    /// assert_eq!(server.recv_bytes()?, b"tagged");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn refuse_legacy_md5(mut self) -> ListenerBuilder {
        self.opts.allow_legacy = false;
        self
    }

    /// The largest frame a connection accepts or sends (default 64 MiB).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener, NetError};
    ///
    /// let listener = Listener::builder().max_frame_size(16).bind("127.0.0.1:0")?;
    /// let client = Client::connect(listener.address(), None)?; // default limit: 64 MiB
    /// let server = listener.accept()?;
    /// assert_eq!(server.max_frame_size(), 16);
    /// client.send_bytes(&[0; 32])?;
    /// let refused = server.recv_bytes();
    /// assert!(matches!(refused, Err(NetError::FrameTooLarge { len: 32, max: 16 })));
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn max_frame_size(mut self, bytes: usize) -> ListenerBuilder {
        self.opts.max_frame = bytes;
        self
    }

    /// The time limit of a client's whole TLS and HMAC handshake (default 10 s; `None`:
    /// none, so a stalled client holds its handshake slot until it closes or the listener
    /// is dropped). A client past the limit is closed and `accept` returns
    /// [`NetError::Timeout`] for it; other clients never wait for it.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::net::{Address, Listener, NetError};
    ///
    /// let listener = Listener::builder()
    ///     .authkey(b"key")
    ///     .handshake_timeout(Some(Duration::from_millis(50)))
    ///     .bind("127.0.0.1:0")?;
    /// let Address::Tcp(addr) = listener.address().clone() else { unreachable!() };
    /// // A client that connects and never answers the challenge.
    /// let _silent = std::net::TcpStream::connect(addr)?;
    /// assert!(matches!(listener.accept(), Err(NetError::Timeout { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> ListenerBuilder {
        self.opts.handshake_timeout = timeout;
        self
    }

    /// How many clients may be in their handshake, or finished and not yet taken by
    /// [`accept`](Listener::accept), at once (default 64; 0 counts as 1). Each handshake
    /// in flight has a thread; beyond the bound, new clients wait in the kernel's backlog
    /// until a handshake ends and its result is accepted. Silent clients can hold every
    /// slot for the [handshake time limit](ListenerBuilder::handshake_timeout), so the
    /// bound should exceed the number of stalled clients a listener must shrug off.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::net::{Address, Client, Listener, NetError};
    ///
    /// let listener = Listener::builder()
    ///     .authkey(b"key")
    ///     .max_pending_handshakes(1)
    ///     .bind("127.0.0.1:0")?;
    /// let Address::Tcp(addr) = listener.address().clone() else { unreachable!() };
    /// // A client that connects and never answers holds the only slot...
    /// let silent = std::net::TcpStream::connect(addr)?;
    /// let address = listener.address().clone();
    /// let client = std::thread::spawn(move || Client::connect(&address, Some(b"key")));
    /// let waiting = listener.accept_timeout(Duration::from_millis(100));
    /// assert!(matches!(waiting, Err(NetError::Timeout { .. })));
    /// // ...until it leaves (its handshake fails); then the next client gets its turn.
    /// drop(silent);
    /// assert!(listener.accept().is_err());
    /// let server = listener.accept()?;
    /// client.join().unwrap()?.send_bytes(b"served")?;
    /// assert_eq!(server.recv_bytes()?, b"served");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_pending_handshakes(mut self, handshakes: usize) -> ListenerBuilder {
        self.max_pending = handshakes;
        self
    }

    /// Offers zstd compression of large frames at `level` (see
    /// [`ClientBuilder::compression`](crate::net::ClientBuilder::compression)).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::builder()
    ///     .authkey(b"key")
    ///     .compression(3)
    ///     .bind("127.0.0.1:0")?;
    /// let address = listener.address().clone();
    /// let client = std::thread::spawn(move || {
    ///     Client::builder().authkey(b"key").compression(3).connect(&address)
    /// });
    /// let server = listener.accept()?;
    /// let client = client.join().unwrap()?;
    /// assert!(server.is_compressed() && client.is_compressed());
    /// client.send_bytes(&vec![7u8; 1 << 20])?; // travels as a few hundred bytes
    /// assert_eq!(server.recv_bytes()?, vec![7u8; 1 << 20]);
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    #[cfg(feature = "compression")]
    pub fn compression(mut self, level: i32) -> ListenerBuilder {
        self.opts.compression = Some(level);
        self
    }

    /// Runs TLS under the framing with `config` (certificate and key).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use shoal::net::{Client, Listener};
    /// # use shoal::net::rustls::{self, pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer}};
    /// # let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// # let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    /// # let cert = certified.cert.der().clone();
    /// # let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    /// # let mut roots = rustls::RootCertStore::empty();
    /// # roots.add(cert.clone())?;
    ///
    /// // A certificate for "localhost" (here self-signed, made with rcgen).
    /// let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
    ///     .with_safe_default_protocol_versions()?
    ///     .with_no_client_auth()
    ///     .with_single_cert(vec![cert], key)?;
    /// # let client_config = rustls::ClientConfig::builder_with_provider(provider)
    /// #     .with_safe_default_protocol_versions()?
    /// #     .with_root_certificates(roots)
    /// #     .with_no_client_auth();
    /// let listener = Listener::builder()
    ///     .authkey(b"key")
    ///     .tls(Arc::new(server_config))
    ///     .bind("127.0.0.1:0")?;
    /// let address = listener.address().clone();
    /// // `client_config` trusts the certificate.
    /// let client = std::thread::spawn(move || -> Result<_, shoal::net::NetError> {
    ///     Client::builder()
    ///         .authkey(b"key")
    ///         .tls(Arc::new(client_config), "localhost")?
    ///         .connect(&address)
    /// });
    /// let server = listener.accept()?;
    /// assert!(server.is_encrypted());
    /// client.join().unwrap()?.send_bytes(b"private")?;
    /// assert_eq!(server.recv_bytes()?, b"private");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: std::sync::Arc<rustls::ServerConfig>) -> ListenerBuilder {
        self.opts.tls = Some(crate::net::tls::TlsSide::Server(config));
        self
    }

    /// Binds `address`.
    ///
    /// # Errors
    /// Those of [`Listener::bind`].
    ///
    /// # Examples
    /// ```
    /// use shoal::net::Listener;
    ///
    /// let builder = Listener::builder().authkey(b"key");
    /// let first = builder.bind("127.0.0.1:0")?;
    /// let second = builder.bind("127.0.0.1:0")?; // one builder, several listeners
    /// assert_ne!(first.address(), second.address());
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn bind(&self, address: impl ToAddress) -> Result<Listener, NetError> {
        let (socket, address) = ListenSocket::bind(&address.to_address()?)?;
        let acceptor = Acceptor::start(socket, self.opts.clone(), self.max_pending)?;
        Ok(Listener { acceptor, address })
    }
}
