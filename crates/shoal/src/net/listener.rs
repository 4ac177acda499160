use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::net::connection::Role;
use crate::net::options::Options;
use crate::net::socket::ListenSocket;
use crate::net::{Address, Connection, Digest, NetError, ToAddress};

/// A bound socket that accepts authenticated connections (Python's
/// `multiprocessing.connection.Listener`).
///
/// [`accept`](Listener::accept) takes the next client and, with an auth key, runs the
/// handshake (challenge first, then answer, as Python does) within the handshake time
/// limit. A client that fails it — wrong key, malformed or oversized frames, a stalled
/// handshake — gets its connection closed and `accept` returns the error; the listener
/// goes on serving the others (see [`incoming`](Listener::incoming)).
///
/// A Unix socket path is removed when the listener is dropped, as Python does.
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
    socket: ListenSocket,
    address: Address,
    opts: Options,
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

    /// Accepts the next client and authenticates it.
    ///
    /// # Errors
    /// [`NetError::Io`] with op `"accept a connection"` when the listening socket
    /// fails. Any other error concerns this client only, whose connection is closed:
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
        let socket = self.socket.accept(None)?;
        Connection::establish(socket, Role::Server, &self.opts)
    }

    /// Like [`accept`](Listener::accept), but gives up with [`NetError::Timeout`] when no
    /// client arrives within `timeout` (the handshake has its own time limit). Several
    /// threads may accept on one listener at once.
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
        let socket = self.socket.accept(Some(timeout))?;
        Connection::establish(socket, Role::Server, &self.opts)
    }

    /// Accepts the next client without blocking the async runtime: waits for it on
    /// tokio's reactor, then runs the handshake on tokio's blocking pool. The
    /// [`Connection`] it returns is a blocking one (use it from `spawn_blocking`, or hand
    /// it to a thread).
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
        let socket = self.socket.accept_async().await?;
        let opts = self.opts.clone();
        tokio::task::spawn_blocking(move || Connection::establish(socket, Role::Server, &opts))
            .await
            .map_err(|e| NetError::Io {
                op: "run a handshake on tokio's blocking pool".to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?
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
    /// The listening socket: readable when a client waits to be accepted.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// For event loops that take raw descriptors (tokio's `AsyncFd`, mio's `SourceFd`).
impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_fd().as_raw_fd()
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
    /// none, so a stalled client blocks `accept`).
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
        Ok(Listener {
            socket,
            address,
            opts: self.opts.clone(),
        })
    }
}
