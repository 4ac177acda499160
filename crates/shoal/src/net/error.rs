use std::fmt;
use std::io;

use crate::codec::CodecError;

/// Why a network connection, listener or handshake failed.
///
/// Errors that concern one connection (every variant except [`NetError::Io`] with
/// `op == "accept"` or `op == "bind"`) close that connection; a [`Listener`] that
/// returned one from [`accept`](crate::net::Listener::accept) goes on serving others.
///
/// [`Listener`]: crate::net::Listener
///
/// # Examples
/// ```
/// use shoal::net::{Address, Client, Listener, NetError};
///
/// let listener = Listener::bind("127.0.0.1:0", None)?;
/// let conn = Client::connect(listener.address(), None)?;
/// drop(listener.accept()?); // the server hangs up
/// assert!(matches!(conn.recv_bytes(), Err(NetError::Eof))); // Python's EOFError
///
/// let bad = "host:notaport".parse::<Address>().unwrap_err();
/// assert!(matches!(bad, NetError::InvalidAddress { .. }));
/// assert!(bad.to_string().starts_with("invalid address"));
/// # Ok::<(), NetError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum NetError {
    /// The operating system refused an operation.
    Io {
        /// What shoal was doing, as a verb phrase ("connect to 127.0.0.1:4000").
        op: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The peer closed the connection at a frame boundary (Python's `EOFError`).
    Eof,
    /// The connection ended, or was shut down, in the middle of a frame.
    Truncated {
        /// How many bytes the frame (header or payload) needed.
        expected: u64,
        /// How many of them arrived.
        received: u64,
    },
    /// A frame announced a length above the connection's maximum frame size; nothing was
    /// allocated for it and the connection was closed.
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The maximum this connection accepts.
        max: usize,
    },
    /// A frame header or payload that cannot come from a well-behaved peer.
    MalformedFrame {
        /// What was wrong.
        reason: String,
    },
    /// The authentication handshake failed.
    Authentication(AuthFailure),
    /// An operation did not complete within its time limit (the connection is closed
    /// when the time ran out in the middle of a frame or of the handshake).
    Timeout {
        /// What shoal was doing.
        op: &'static str,
    },
    /// [`recv_bytes_into`](crate::net::Connection::recv_bytes_into) was given a buffer
    /// smaller than the message; the message is handed back (Python's `BufferTooShort`).
    BufferTooShort {
        /// The whole message that was received.
        message: Vec<u8>,
        /// The size of the buffer that was given.
        capacity: usize,
    },
    /// A value could not be encoded or decoded.
    Codec(CodecError),
    /// A string that is not a TCP address, a Unix socket path or an abstract name.
    InvalidAddress {
        /// The address given.
        address: String,
        /// What was wrong.
        reason: String,
    },
    /// The connection was closed by [`close`](crate::net::Connection::close) or by an
    /// earlier error.
    Closed,
    /// The TLS layer refused a configuration or a peer.
    Tls {
        /// What went wrong.
        reason: String,
    },
    /// A compressed frame could not be compressed or decompressed.
    Compression {
        /// What went wrong.
        reason: String,
    },
}

/// Why the authentication handshake failed.
///
/// # Examples
/// ```
/// use shoal::net::{AuthFailure, Client, Listener, NetError};
///
/// let listener = Listener::bind("127.0.0.1:0", Some(b"one key"))?;
/// let address = listener.address().clone();
/// let server = std::thread::spawn(move || listener.accept().map(drop));
/// let client_side = Client::connect(&address, Some(b"another key")).unwrap_err();
/// let server_side = server.join().unwrap().unwrap_err();
/// // The listener checks the client's answer first and refuses it.
/// assert!(matches!(server_side, NetError::Authentication(AuthFailure::DigestReceivedWrong)));
/// assert!(matches!(client_side, NetError::Authentication(AuthFailure::DigestSentRejected)));
/// # Ok::<(), NetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The peer answered our challenge with a wrong digest (it has another key).
    DigestReceivedWrong,
    /// The peer refused the digest we sent (`#FAILURE#`: it has another key).
    DigestSentRejected,
    /// The peer sent something other than the message the protocol expects.
    Protocol {
        /// What was expected and what came.
        reason: String,
    },
    /// The peer named a digest this side does not accept.
    UnsupportedDigest {
        /// The digest's name as sent.
        name: String,
    },
    /// The peer speaks only the legacy HMAC-MD5 form, which this side was told to refuse.
    LegacyRefused,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::DigestReceivedWrong => write!(f, "digest received was wrong"),
            AuthFailure::DigestSentRejected => write!(f, "digest sent was rejected"),
            AuthFailure::Protocol { reason } => write!(f, "protocol error: {reason}"),
            AuthFailure::UnsupportedDigest { name } => {
                write!(f, "the peer asked for unsupported digest {name:?}")
            }
            AuthFailure::LegacyRefused => write!(
                f,
                "the peer uses the legacy HMAC-MD5 handshake, which this side refuses"
            ),
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Io { op, source } => write!(f, "could not {op}: {source}"),
            NetError::Eof => write!(f, "the peer closed the connection"),
            NetError::Truncated { expected, received } => write!(
                f,
                "the connection ended {received} bytes into a {expected}-byte frame"
            ),
            NetError::FrameTooLarge { len, max } => write!(
                f,
                "a frame of {len} bytes exceeds the maximum frame size of {max} bytes"
            ),
            NetError::MalformedFrame { reason } => write!(f, "malformed frame: {reason}"),
            NetError::Authentication(why) => write!(f, "authentication failed: {why}"),
            NetError::Timeout { op } => write!(f, "timed out while trying to {op}"),
            NetError::BufferTooShort { message, capacity } => write!(
                f,
                "a {}-byte message does not fit a {capacity}-byte buffer",
                message.len()
            ),
            NetError::Codec(e) => write!(f, "{e}"),
            NetError::InvalidAddress { address, reason } => {
                write!(f, "invalid address {address:?}: {reason}")
            }
            NetError::Closed => write!(f, "the connection is closed"),
            NetError::Tls { reason } => write!(f, "tls error: {reason}"),
            NetError::Compression { reason } => write!(f, "compression error: {reason}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Io { source, .. } => Some(source),
            NetError::Codec(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CodecError> for NetError {
    fn from(e: CodecError) -> NetError {
        NetError::Codec(e)
    }
}

impl NetError {
    /// Wraps an I/O error met while doing `op`; time-outs become [`NetError::Timeout`]
    /// and TLS failures [`NetError::Tls`].
    pub(crate) fn io(op: &'static str, source: io::Error) -> NetError {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NetError::Timeout { op },
            #[cfg(feature = "tls")]
            io::ErrorKind::InvalidData
                if source
                    .get_ref()
                    .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some()) =>
            {
                NetError::Tls {
                    reason: format!("{op}: {source}"),
                }
            }
            _ => NetError::Io {
                op: op.to_owned(),
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sentences_with_context() {
        let e = NetError::FrameTooLarge {
            len: 1 << 40,
            max: 64,
        };
        assert_eq!(
            e.to_string(),
            "a frame of 1099511627776 bytes exceeds the maximum frame size of 64 bytes"
        );
        let e = NetError::Authentication(AuthFailure::DigestReceivedWrong);
        assert_eq!(
            e.to_string(),
            "authentication failed: digest received was wrong"
        );
        let e = NetError::io("read", io::Error::from(io::ErrorKind::WouldBlock));
        assert!(matches!(e, NetError::Timeout { op: "read" }));
    }
}
