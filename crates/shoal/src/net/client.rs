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
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            opts: Options::default(),
            connect_timeout: None,
        }
    }
}

/// Settings for [`Client`] connections.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    opts: Options,
    connect_timeout: Option<Duration>,
}

impl ClientBuilder {
    /// Authenticates with this key (HMAC challenge–response both ways).
    pub fn authkey(mut self, key: &[u8]) -> ClientBuilder {
        self.opts.authkey = Some(key.to_vec());
        self
    }

    /// The digest this client's challenge asks the listener for (default SHA-256).
    pub fn digest(mut self, digest: Digest) -> ClientBuilder {
        self.opts.digest = digest;
        self
    }

    /// Refuses the legacy untagged HMAC-MD5 form (Python 3.11 and older): a listener that
    /// only speaks it is refused with [`AuthFailure::LegacyRefused`].
    ///
    /// [`AuthFailure::LegacyRefused`]: crate::net::AuthFailure::LegacyRefused
    pub fn refuse_legacy_md5(mut self) -> ClientBuilder {
        self.opts.allow_legacy = false;
        self
    }

    /// The largest frame this connection accepts or sends (default 64 MiB).
    pub fn max_frame_size(mut self, bytes: usize) -> ClientBuilder {
        self.opts.max_frame = bytes;
        self
    }

    /// The time limit of the whole TLS and HMAC handshake (default 10 s; `None`: none).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> ClientBuilder {
        self.opts.handshake_timeout = timeout;
        self
    }

    /// The time limit of a TCP connect (default: the kernel's).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Offers zstd compression of large frames at `level` (1–22; 3 is zstd's default).
    /// It is used only when the listener offers it too, which needs an auth key on both
    /// sides (the offer travels inside the authenticated challenges); Python peers never
    /// offer it.
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
    pub fn connect(&self, address: impl ToAddress) -> Result<Connection, NetError> {
        let address = address.to_address()?;
        let socket = Socket::connect(&address, self.connect_timeout)?;
        Connection::establish(socket, Role::Client, &self.opts)
    }
}
