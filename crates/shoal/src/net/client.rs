use std::time::Duration;

use crate::net::connection::Role;
use crate::net::options::Options;
use crate::net::socket::Socket;
use crate::net::{Connection, Digest, NetError, ToAddress};

/// Connects to a [`Listener`](crate::net::Listener) — shoal's or Python's
/// `multiprocessing.connection.Listener` (Python's `Client`).
///
/// With an auth key, the client answers the listener's challenge and then challenges it
/// back, as Python does; a listener with another key is refused with
/// [`NetError::Authentication`] on both sides.
///
/// # Examples
/// ```
/// use shoal::net::{Client, Listener};
///
/// let name = format!("@shoal-doc-client-{}", std::process::id());
/// let listener = Listener::bind(name.as_str(), Some(b"key"))?;
/// let t = std::thread::spawn(move || listener.accept().map(|c| c.recv_bytes()));
/// let conn = Client::builder()
///     .authkey(b"key")
///     .max_frame_size(1 << 20)
///     .connect(name.as_str())?;
/// conn.send_bytes(b"ping")?;
/// assert_eq!(t.join().unwrap()??, b"ping");
/// # Ok::<(), shoal::net::NetError>(())
/// ```
#[derive(Debug)]
pub struct Client;

impl Client {
    /// Connects to `address`, authenticating with `authkey` when given.
    ///
    /// # Errors
    /// [`NetError::Io`] when the connection is refused; [`NetError::Authentication`]
    /// when the keys differ; [`NetError::Timeout`] when the handshake takes longer than
    /// 10 seconds; [`NetError::InvalidAddress`] for an address that does not parse.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", Some(b"key"))?;
    /// let address = listener.address().clone();
    /// let server = std::thread::spawn(move || listener.accept()?.recv_bytes());
    /// let conn = Client::connect(&address, Some(b"key"))?;
    /// conn.send_bytes(b"hi")?;
    /// assert_eq!(server.join().unwrap()?, b"hi");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn connect(
        address: impl ToAddress,
        authkey: Option<&[u8]>,
    ) -> Result<Connection, NetError> {
        let mut b = Client::builder();
        if let Some(k) = authkey {
            b = b.authkey(k);
        }
        b.connect(address)
    }

    /// A builder for the other settings (frame size, time-outs, digest, TLS, compression).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// let conn = Client::builder()
    ///     .max_frame_size(1 << 20)
    ///     .connect_timeout(Duration::from_secs(5))
    ///     .connect(listener.address())?;
    /// assert_eq!(conn.max_frame_size(), 1 << 20);
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            opts: Options::default(),
            connect_timeout: None,
        }
    }
}

/// Settings for [`Client`] connections.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::net::{Client, Digest, Listener};
///
/// let listener = Listener::bind("127.0.0.1:0", Some(b"key"))?;
/// let address = listener.address().clone();
/// let server = std::thread::spawn(move || listener.accept()?.recv::<String>());
/// let conn = Client::builder()
///     .authkey(b"key")
///     .digest(Digest::Sha384)
///     .max_frame_size(1 << 20)
///     .handshake_timeout(Some(Duration::from_secs(5)))
///     .connect(&address)?;
/// conn.send("configured")?;
/// assert_eq!(server.join().unwrap()?, "configured");
/// # Ok::<(), shoal::net::NetError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    opts: Options,
    connect_timeout: Option<Duration>,
}

impl ClientBuilder {
    /// Authenticates with this key (HMAC challenge–response both ways).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener, NetError};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", Some(b"right key"))?;
    /// let address = listener.address().clone();
    /// let server = std::thread::spawn(move || listener.accept().map(drop));
    /// let refused = Client::builder().authkey(b"wrong key").connect(&address);
    /// assert!(matches!(refused, Err(NetError::Authentication(_))));
    /// assert!(server.join().unwrap().is_err()); // both sides see the failure
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn authkey(mut self, key: &[u8]) -> ClientBuilder {
        self.opts.authkey = Some(key.to_vec());
        self
    }

    /// The digest this client's challenge asks the listener for (default SHA-256).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Digest, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", Some(b"key"))?;
    /// let address = listener.address().clone();
    /// let server = std::thread::spawn(move || listener.accept()?.recv_bytes());
    /// let conn = Client::builder()
    ///     .authkey(b"key")
    ///     .digest(Digest::Sha384)
    ///     .connect(&address)?;
    /// conn.send_bytes(b"checked with sha384")?;
    /// assert_eq!(server.join().unwrap()?, b"checked with sha384");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn digest(mut self, digest: Digest) -> ClientBuilder {
        self.opts.digest = digest;
        self
    }

    /// Refuses the legacy untagged HMAC-MD5 form (Python 3.11 and older): a listener that
    /// only speaks it is refused with [`AuthFailure::LegacyRefused`].
    ///
    /// [`AuthFailure::LegacyRefused`]: crate::net::AuthFailure::LegacyRefused
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", Some(b"key"))?;
    /// let address = listener.address().clone();
    /// let server = std::thread::spawn(move || listener.accept()?.recv_bytes());
    /// // A shoal listener speaks the tagged form, so the connection goes through.
    /// let conn = Client::builder()
    ///     .authkey(b"key")
    ///     .refuse_legacy_md5()
    ///     .connect(&address)?;
    /// conn.send_bytes(b"modern")?;
    /// assert_eq!(server.join().unwrap()?, b"modern");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn refuse_legacy_md5(mut self) -> ClientBuilder {
        self.opts.allow_legacy = false;
        self
    }

    /// The largest frame this connection accepts or sends (default 64 MiB).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener, NetError};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// let conn = Client::builder().max_frame_size(8).connect(listener.address())?;
    /// let too_big = conn.send_bytes(&[0; 16]);
    /// assert!(matches!(too_big, Err(NetError::FrameTooLarge { len: 16, max: 8 })));
    /// conn.send_bytes(b"tiny")?; // nothing was sent, the connection stays usable
    /// assert_eq!(listener.accept()?.recv_bytes()?, b"tiny");
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn max_frame_size(mut self, bytes: usize) -> ClientBuilder {
        self.opts.max_frame = bytes;
        self
    }

    /// The time limit of the whole TLS and HMAC handshake (default 10 s; `None`: none).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::net::{Client, NetError};
    ///
    /// // A TCP server that accepts connections but never sends its challenge.
    /// let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let stalled = Client::builder()
    ///     .authkey(b"key")
    ///     .handshake_timeout(Some(Duration::from_millis(50)))
    ///     .connect(silent.local_addr()?);
    /// assert!(matches!(stalled, Err(NetError::Timeout { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> ClientBuilder {
        self.opts.handshake_timeout = timeout;
        self
    }

    /// The time limit of a TCP connect (default: the kernel's).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// let conn = Client::builder()
    ///     .connect_timeout(Duration::from_secs(3))
    ///     .connect(listener.address())?;
    /// assert_eq!(conn.peer_address(), Some(listener.address()));
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Offers zstd compression of large frames at `level` (1–22; 3 is zstd's default).
    /// It is used only when the listener offers it too, which needs an auth key on both
    /// sides (the offer travels inside the authenticated challenges); Python peers never
    /// offer it.
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
    /// let server = std::thread::spawn(move || listener.accept()?.recv_bytes());
    /// let conn = Client::builder().authkey(b"key").compression(3).connect(&address)?;
    /// assert!(conn.is_compressed()); // both sides offered it
    /// conn.send_bytes(&vec![b'a'; 1 << 20])?;
    /// assert_eq!(server.join().unwrap()?, vec![b'a'; 1 << 20]);
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    #[cfg(feature = "compression")]
    pub fn compression(mut self, level: i32) -> ClientBuilder {
        self.opts.compression = Some(level);
        self
    }

    /// Runs TLS under the framing, checking the listener's certificate against
    /// `server_name` with `config`.
    ///
    /// # Errors
    /// [`NetError::Tls`] when `server_name` is not a DNS name or IP address.
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
    /// # let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
    /// #     .with_safe_default_protocol_versions()?
    /// #     .with_no_client_auth()
    /// #     .with_single_cert(vec![cert.clone()], key)?;
    /// # let listener = Listener::builder()
    /// #     .authkey(b"key")
    /// #     .tls(Arc::new(server_config))
    /// #     .bind("127.0.0.1:0")?;
    /// # let address = listener.address().clone();
    /// # let server = std::thread::spawn(move || listener.accept()?.recv_bytes());
    ///
    /// // Trust the listener's certificate (here a self-signed one for "localhost").
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(cert)?;
    /// let config = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let conn = Client::builder()
    ///     .authkey(b"key")
    ///     .tls(Arc::new(config), "localhost")?
    ///     .connect(&address)?;
    /// assert!(conn.is_encrypted());
    /// conn.send_bytes(b"private")?;
    /// assert_eq!(server.join().unwrap()?, b"private");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(
        mut self,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<ClientBuilder, NetError> {
        let name = crate::net::tls::server_name(server_name)?;
        self.opts.tls = Some(crate::net::tls::TlsSide::Client(config, name));
        Ok(self)
    }

    /// Connects to `address`.
    ///
    /// # Errors
    /// Those of [`Client::connect`].
    ///
    /// # Examples
    /// ```
    /// use shoal::net::{Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", None)?;
    /// let builder = Client::builder().max_frame_size(4096);
    /// let a = builder.connect(listener.address())?;
    /// let b = builder.connect(listener.address())?; // one builder, several connections
    /// a.send_bytes(b"a")?;
    /// b.send_bytes(b"b")?;
    /// assert_eq!(listener.accept()?.recv_bytes()?, b"a");
    /// assert_eq!(listener.accept()?.recv_bytes()?, b"b");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn connect(&self, address: impl ToAddress) -> Result<Connection, NetError> {
        let address = address.to_address()?;
        let socket = Socket::connect(&address, self.connect_timeout)?;
        Connection::establish(socket, Role::Client, &self.opts)
    }
}
