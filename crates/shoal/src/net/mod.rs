//! Authenticated socket connections, wire-compatible with Python's
//! `multiprocessing.connection` (`Listener`, `Client`, `Connection`).
//!
//! A [`Listener`] binds a TCP address (IPv4 or IPv6), a Unix socket path or a Linux
//! abstract name; a [`Client`] connects to one; both give a [`Connection`]. Frames are
//! Python's (a big-endian length, then the payload) and the optional authentication is
//! Python's HMAC challenge–response on a shared key, in the legacy HMAC-MD5 form of
//! Python ≤ 3.11 and the `{sha256}`-tagged form of Python ≥ 3.12, so a shoal program and
//! a plain Python program with the same key exchange `send_bytes`/`recv_bytes` messages
//! in both directions.
//!
//! Hardening beyond Python: a maximum frame size checked before anything is allocated
//! ([`DEFAULT_MAX_FRAME_SIZE`], 64 MiB), a time limit on the whole handshake (10 s),
//! handshakes that run concurrently in the background (a bounded number per listener),
//! so that a silent client delays nobody, and a listener that closes a misbehaving
//! client's connection — wrong key, malformed or oversized frame, stalled handshake —
//! with a specific [`NetError`] and goes on serving.
//!
//! A listener serves many clients: loop over [`Listener::incoming`] and hand each
//! [`Connection`] to a thread (one connection may also be shared by a sending and a
//! receiving thread). Several threads may accept on one listener.
//!
//! Cargo features, all off by default:
//!
//! | feature | adds |
//! |---|---|
//! | `tls` | `ListenerBuilder::tls` / `ClientBuilder::tls`: rustls under the framing and the handshake (shoal to shoal) |
//! | `compression` | `ClientBuilder::compression` / `ListenerBuilder::compression`: zstd for large frames, used when both shoal peers offer it inside the authenticated handshake |
//! | `tokio` | `Listener::accept_async`: waits on tokio's reactor for the next finished handshake |
//!
//! A [`Connection`] is a descriptor ([`AsFd`](std::os::fd::AsFd)) for `epoll`, tokio or
//! a `wait` over several objects; such a wait looks at
//! [`Connection::has_pending_input`] first.
//!
//! # Examples
//! ```
//! use shoal::net::{Client, Listener};
//!
//! let listener = Listener::bind("127.0.0.1:0", Some(b"secret key"))?;
//! let address = listener.address().clone();
//! let server = std::thread::spawn(move || -> Result<(), shoal::net::NetError> {
//!     let conn = listener.accept()?;
//!     let msg = conn.recv_bytes()?;
//!     conn.send_bytes(&msg.to_ascii_uppercase())
//! });
//! let conn = Client::connect(&address, Some(b"secret key"))?;
//! conn.send_bytes(b"hello")?;
//! assert_eq!(conn.recv_bytes()?, b"HELLO");
//! server.join().unwrap()?;
//! # Ok::<(), shoal::net::NetError>(())
//! ```
#![deny(unsafe_code)]

mod acceptor;
mod address;
mod auth;
mod client;
mod connection;
mod error;
mod frame;
#[doc(hidden)]
pub mod fuzz;
mod listener;
mod options;
mod socket;
#[cfg(feature = "tls")]
mod tls;

pub use address::{Address, ToAddress};
pub use auth::Digest;
pub use client::{Client, ClientBuilder};
pub use connection::Connection;
pub use error::{AuthFailure, NetError};
pub use frame::DEFAULT_MAX_FRAME_SIZE;
pub use listener::{Incoming, Listener, ListenerBuilder};

/// The rustls crate shoal's TLS option is built on, for making configurations.
#[cfg(feature = "tls")]
pub use rustls;
