//! TLS (rustls) under the framing and the HMAC handshake.
//!
//! TLS comes first on the socket; Python's framing and challenge–response then run
//! inside it unchanged, so the auth key still proves the peer's identity when the
//! certificate check is relaxed (a self-signed certificate), and TLS keeps the frames
//! private. Python's `multiprocessing.connection` has no TLS, so TLS connections are
//! shoal to shoal.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection, StreamOwned};

use crate::net::socket::Socket;
use crate::net::NetError;

/// The socket shared between the TLS session and the connection (which keeps it for
/// its descriptor and for shutting it down).
pub(crate) struct SharedSocket(pub(crate) Arc<Socket>);

impl Read for SharedSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The TLS side a builder was given.
#[derive(Clone)]
pub(crate) enum TlsSide {
    Server(Arc<rustls::ServerConfig>),
    Client(Arc<rustls::ClientConfig>, ServerName<'static>),
}

impl std::fmt::Debug for TlsSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsSide::Server(_) => write!(f, "TlsSide::Server"),
            TlsSide::Client(_, name) => write!(f, "TlsSide::Client({name:?})"),
        }
    }
}

/// A TLS session over a socket.
pub(crate) enum TlsStream {
    Server(StreamOwned<ServerConnection, SharedSocket>),
    Client(StreamOwned<ClientConnection, SharedSocket>),
}

/// Turns a server name into the form rustls checks certificates against.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, NetError> {
    ServerName::try_from(name.to_owned()).map_err(|e| NetError::Tls {
        reason: format!("{name:?} is not a valid server name: {e}"),
    })
}

impl TlsStream {
    /// Runs the TLS handshake to its end on `socket` (whose time-outs bound it).
    pub(crate) fn handshake(side: &TlsSide, socket: Arc<Socket>) -> Result<TlsStream, NetError> {
        let tls_err = |e: rustls::Error| NetError::Tls {
            reason: format!("could not start a session: {e}"),
        };
        let mut sock = SharedSocket(socket);
        let mut stream = match side {
            TlsSide::Server(cfg) => {
                let mut conn = ServerConnection::new(cfg.clone()).map_err(tls_err)?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock).map_err(handshake_error)?;
                }
                TlsStream::Server(StreamOwned::new(conn, sock))
            }
            TlsSide::Client(cfg, name) => {
                let mut conn = ClientConnection::new(cfg.clone(), name.clone()).map_err(tls_err)?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock).map_err(handshake_error)?;
                }
                TlsStream::Client(StreamOwned::new(conn, sock))
            }
        };
        stream.flush().map_err(handshake_error)?;
        Ok(stream)
    }

    /// Whether decrypted bytes wait to be read.
    pub(crate) fn has_plaintext(&mut self) -> bool {
        let state = match self {
            TlsStream::Server(s) => s.conn.process_new_packets(),
            TlsStream::Client(s) => s.conn.process_new_packets(),
        };
        // A broken session reports its error on the next read.
        state.map_or(true, |s| s.plaintext_bytes_to_read() > 0)
    }

    /// Reads what the socket holds into the session (one read: the caller saw the socket
    /// readable) and decrypts it. `Ok(0)` at the end of the stream.
    pub(crate) fn absorb(&mut self) -> io::Result<usize> {
        let n = match self {
            TlsStream::Server(s) => s.conn.read_tls(&mut s.sock)?,
            TlsStream::Client(s) => s.conn.read_tls(&mut s.sock)?,
        };
        let state = match self {
            TlsStream::Server(s) => s.conn.process_new_packets(),
            TlsStream::Client(s) => s.conn.process_new_packets(),
        };
        state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(n)
    }

    /// Sends a close_notify alert (best effort: the socket is shut down next).
    pub(crate) fn close_notify(&mut self) {
        match self {
            TlsStream::Server(s) => s.conn.send_close_notify(),
            TlsStream::Client(s) => s.conn.send_close_notify(),
        }
        let _ = self.flush();
    }
}

fn handshake_error(e: io::Error) -> NetError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NetError::Timeout {
            op: "complete the tls handshake",
        },
        io::ErrorKind::UnexpectedEof => NetError::Eof,
        _ => NetError::Tls {
            reason: format!("handshake failed: {e}"),
        },
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = match self {
            TlsStream::Server(s) => s.read(buf),
            TlsStream::Client(s) => s.read(buf),
        };
        match r {
            // A peer that closes without close_notify ends the stream like a socket.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            r => r,
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            TlsStream::Server(s) => s.write(buf),
            TlsStream::Client(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            TlsStream::Server(s) => s.flush(),
            TlsStream::Client(s) => s.flush(),
        }
    }
}
