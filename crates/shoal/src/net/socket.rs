//! The byte streams under a connection: TCP or Unix sockets, through `std`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::net::{Address, NetError};

/// A connected stream socket, with an optional deadline for every read and write (set
/// during the handshakes, so that a peer that trickles bytes cannot stretch them).
#[derive(Debug)]
pub(crate) struct Socket {
    kind: Kind,
    deadline: Mutex<Option<Instant>>,
    /// The other end, when it has a name.
    peer: Option<Address>,
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpStream),
    Unix(UnixStream),
}

fn abstract_addr(name: &[u8]) -> io::Result<UnixAddr> {
    UnixAddr::from_abstract_name(name)
}

fn unix_address(a: &UnixAddr) -> Option<Address> {
    if let Some(p) = a.as_pathname() {
        Some(Address::unix(p))
    } else {
        a.as_abstract_name().map(Address::abstract_name)
    }
}

impl Socket {
    /// Connects to `address`, giving up after `timeout` for TCP.
    pub(crate) fn connect(
        address: &Address,
        timeout: Option<Duration>,
    ) -> Result<Socket, NetError> {
        let fail = |e: io::Error| NetError::Io {
            op: format!("connect to {address}"),
            source: e,
        };
        let socket = match address {
            Address::Tcp(a) => {
                let s = match timeout {
                    Some(t) => TcpStream::connect_timeout(a, t),
                    None => TcpStream::connect(a),
                }
                .map_err(fail)?;
                // Frames go out whole; Nagle's delay would only add latency.
                s.set_nodelay(true).map_err(fail)?;
                Kind::Tcp(s)
            }
            Address::Unix(p) => Kind::Unix(UnixStream::connect(p).map_err(fail)?),
            Address::Abstract(n) => {
                let a = abstract_addr(n).map_err(fail)?;
                Kind::Unix(UnixStream::connect_addr(&a).map_err(fail)?)
            }
        };
        let mut socket = Socket::new(socket);
        socket.peer = Some(address.clone());
        Ok(socket)
    }

    /// The address of the other end, when it has one (a Unix client socket usually has
    /// no name).
    pub(crate) fn peer(&self) -> Option<&Address> {
        self.peer.as_ref()
    }

    /// One end of a connected Unix socket pair (tests).
    #[cfg(test)]
    pub(crate) fn pair() -> (Socket, Socket) {
        let (a, b) = UnixStream::pair().expect("socketpair");
        (Socket::new(Kind::Unix(a)), Socket::new(Kind::Unix(b)))
    }

    fn new(kind: Kind) -> Socket {
        Socket {
            kind,
            deadline: Mutex::new(None),
            peer: None,
        }
    }

    /// Makes every later read and write fail with `TimedOut` once `deadline` passes;
    /// `None` lifts the deadline and every time-out.
    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = deadline;
        if deadline.is_none() {
            self.set_read_timeout(None)?;
            self.set_write_timeout(None)?;
        }
        Ok(())
    }

    /// Before an I/O call: applies what is left of the deadline as the socket time-out.
    fn arm(&self, read: bool) -> io::Result<()> {
        let Some(deadline) = *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if read {
            self.set_read_timeout(Some(left))
        } else {
            self.set_write_timeout(Some(left))
        }
    }

    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match &self.kind {
            Kind::Tcp(s) => s.set_read_timeout(t),
            Kind::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match &self.kind {
            Kind::Tcp(s) => s.set_write_timeout(t),
            Kind::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Shuts both directions down, so that a peer blocked on us sees the end at once
    /// (the descriptor itself is closed on drop).
    pub(crate) fn shutdown(&self) {
        // Already shut down or reset: nothing left to do.
        let _ = match &self.kind {
            Kind::Tcp(s) => s.shutdown(Shutdown::Both),
            Kind::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for &Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(true)?;
        match &self.kind {
            Kind::Tcp(s) => (&*s).read(buf),
            Kind::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(false)?;
        match &self.kind {
            Kind::Tcp(s) => (&*s).write(buf),
            Kind::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::Tcp(s) => s.as_fd(),
            Kind::Unix(s) => s.as_fd(),
        }
    }
}

/// A bound, listening socket.
#[derive(Debug)]
pub(crate) enum ListenSocket {
    Tcp(TcpListener),
    /// A Unix socket; the path (if any) is unlinked when the listener is dropped.
    Unix(UnixListener, Option<PathBuf>),
}

impl ListenSocket {
    /// Binds `address` and returns the socket with the address it got (the port the
    /// kernel chose for port 0).
    pub(crate) fn bind(address: &Address) -> Result<(ListenSocket, Address), NetError> {
        let fail = |e: io::Error| NetError::Io {
            op: format!("bind {address}"),
            source: e,
        };
        let socket = match address {
            Address::Tcp(a) => {
                // std sets SO_REUSEADDR, as Python's SocketListener does.
                let l = TcpListener::bind(a).map_err(fail)?;
                let bound = l.local_addr().map_err(fail)?;
                (ListenSocket::Tcp(l), Address::Tcp(bound))
            }
            Address::Unix(p) => {
                let l = UnixListener::bind(p).map_err(fail)?;
                (ListenSocket::Unix(l, Some(p.clone())), address.clone())
            }
            Address::Abstract(n) => {
                let a = abstract_addr(n).map_err(fail)?;
                let l = UnixListener::bind_addr(&a).map_err(fail)?;
                (ListenSocket::Unix(l, None), address.clone())
            }
        };
        // Non-blocking: the acceptor thread polls it beside its wake eventfd.
        socket.0.set_nonblocking().map_err(fail)?;
        Ok(socket)
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            ListenSocket::Tcp(l) => l.set_nonblocking(true),
            ListenSocket::Unix(l, _) => l.set_nonblocking(true),
        }
    }

    /// Accepts a waiting connection, or returns `Ok(None)` when none waits.
    pub(crate) fn try_accept(&self) -> Result<Option<Socket>, NetError> {
        loop {
            let r = match self {
                ListenSocket::Tcp(l) => l.accept().and_then(|(s, peer)| {
                    // Accepted sockets do not inherit O_NONBLOCK on Linux; say it anyway.
                    s.set_nonblocking(false)?;
                    s.set_nodelay(true)?;
                    let mut s = Socket::new(Kind::Tcp(s));
                    s.peer = Some(Address::Tcp(peer));
                    Ok(s)
                }),
                ListenSocket::Unix(l, _) => l.accept().and_then(|(s, peer)| {
                    s.set_nonblocking(false)?;
                    let mut s = Socket::new(Kind::Unix(s));
                    s.peer = unix_address(&peer);
                    Ok(s)
                }),
            };
            match r {
                Ok(s) => return Ok(Some(s)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A peer that connected and reset before we got to it: not our failure.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    return Err(NetError::Io {
                        op: "accept a connection".to_owned(),
                        source: e,
                    })
                }
            }
        }
    }
}

impl AsFd for ListenSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            ListenSocket::Tcp(l) => l.as_fd(),
            ListenSocket::Unix(l, _) => l.as_fd(),
        }
    }
}

impl Drop for ListenSocket {
    fn drop(&mut self) {
        if let ListenSocket::Unix(_, Some(path)) = self {
            // Python's SocketListener unlinks its path on close too; someone may have
            // removed it already.
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_deadline_fails_reads_and_writes_at_once() {
        let (a, _b) = Socket::pair();
        a.set_deadline(Some(Instant::now())).unwrap();
        let mut buf = [0u8; 1];
        let err = (&a).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let err = (&a).write(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        a.set_deadline(None).unwrap();
        assert_eq!((&a).write(b"x").unwrap(), 1);
    }

    #[test]
    fn a_deadline_bounds_a_silent_peer() {
        let (a, _b) = Socket::pair();
        let start = Instant::now();
        a.set_deadline(Some(start + Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 1];
        let err = (&a).read(&mut buf).unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn binding_a_taken_address_names_it() {
        let (l, a) = ListenSocket::bind(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let err = ListenSocket::bind(&a).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("could not bind {a}: ")),
            "{err}"
        );
        assert!(l.try_accept().unwrap().is_none());
        let err = Socket::connect(&Address::unix("/nonexistent/shoal.sock"), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("could not connect to /nonexistent/shoal.sock: "),
            "{err}"
        );
    }
}
