//! Start method `ForkServer`: a clean helper process forks the children.
//!
//! The helper is spawned (a fresh copy of the executable, so single-threaded whatever
//! the parent runs) on first use and talks over a Unix socket pair:
//!
//! - request: one message of a 4-byte little-endian length and the encoded
//!   [`Bootstrap`], with the object descriptors attached (`SCM_RIGHTS`);
//! - reply: the child's pid and an errno (4 + 4 bytes, little-endian; errno 0 on
//!   success) with two descriptors attached on success: a pidfd on the child (opened by
//!   the server before it can reap, so it names the right process) and the read end of
//!   a status socket on which the server writes the exit code once it has reaped the
//!   child.
//!
//! The server exits when its socket reaches end of file, which happens when the process
//! that started it is gone; daemonic children, whose death signal is tied to the
//! server, go with it.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

use crate::codec;
use crate::process::bootstrap::{self, Bootstrap, Task};
use crate::process::start::{spawn, Exit, Launched};
use crate::process::ProcessError;
use crate::sys;

struct Client {
    /// The process this client belongs to: a forked child must not share its parent's
    /// connection.
    owner: u32,
    sock: UnixStream,
    server: Launched,
    /// A status socket of this server reached end of file: it is exiting.
    dying: bool,
}

static CLIENT: Mutex<Option<Client>> = Mutex::new(None);

/// Closes, in a forked child, its copy of the parent's connection: the forkserver sees
/// end of file (and exits) only when every copy is closed. Skipped when another thread
/// held the lock at the moment of the fork (then the copy lives as long as the child).
pub(crate) fn forget_inherited() {
    if let Ok(mut guard) = CLIENT.try_lock() {
        *guard = None;
    }
}

fn start_server() -> io::Result<Client> {
    let (ours, theirs) = UnixStream::pair()?;
    let boot = Bootstrap {
        task: Task::ForkServer,
        name: "ForkServer".to_owned(),
        parent_pid: std::process::id(),
        parent_name: crate::process::current_process().name().to_owned(),
        // Not daemonic: a death signal would follow the *thread* that spawned it; the
        // server watches its socket instead.
        daemon: false,
        fds: Vec::new(),
    };
    let server = spawn::start(boot, vec![OwnedFd::from(theirs)])?;
    Ok(Client {
        owner: std::process::id(),
        sock: ours,
        server,
        dying: false,
    })
}

/// Whether the server is gone: its pidfd is readable (it ended) or our socket is
/// (it never speaks unasked, so readable means end of file: it is exiting and has
/// closed its descriptors, maybe before its pidfd says so).
fn server_dead(client: &Client) -> bool {
    if client.dying {
        return true;
    }
    let ready = sys::poll_readable(
        &[client.server.pidfd.as_fd(), client.sock.as_fd()],
        Some(Duration::ZERO),
    );
    !matches!(ready.as_deref(), Ok([false, false]))
}

/// Records that the server `pid` closed a status socket without writing the code: it is
/// exiting, even if its pidfd and our socket do not show it yet (it closes its
/// descriptors one by one), so the next start must not send it a request.
pub(crate) fn note_death(pid: u32) {
    let mut guard = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(client) = guard.as_mut() {
        if client.server.pid == pid && client.owner == std::process::id() {
            client.dying = true;
        }
    }
}

/// Reaps a server that is gone or going (bounded: it may still be tearing down).
fn bury(client: Client) {
    let pidfd = client.server.pidfd.as_fd();
    let _ = sys::poll_readable(&[pidfd], Some(Duration::from_secs(1)));
    let _ = sys::pidfd_wait(pidfd, false);
}

/// Asks the forkserver (starting it if needed) to start a child running `boot`.
pub(crate) fn start(boot: Bootstrap, fds: Vec<OwnedFd>) -> Result<Launched, ProcessError> {
    let name = boot.name.clone();
    let start_err = |source| ProcessError::Start {
        name: name.clone(),
        source,
    };
    let bytes = codec::encode(&boot).map_err(|e| start_err(io::Error::other(e)))?;
    // Refuse what one request cannot carry here, so that a failed send below can only
    // mean a broken connection.
    if fds.len() > sys::MAX_FDS_PER_MESSAGE || u32::try_from(bytes.len()).is_err() {
        return Err(start_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} shoal objects and {} bytes of arguments; the forkserver takes at most {} \
                 objects and 4 GiB (use StartMethod::Spawn)",
                fds.len(),
                bytes.len(),
                sys::MAX_FDS_PER_MESSAGE
            ),
        )));
    }
    let mut guard = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    // A request that could not be sent whole never reached a fork: it is safe to send
    // it again to a new server, once.
    for attempt in 0..2 {
        if let Some(client) = guard.take() {
            if client.owner != std::process::id() {
                // A forked copy of our parent's connection: closing our copies of the
                // descriptors leaves the parent's intact.
                drop(client);
            } else if server_dead(&client) {
                bury(client);
            } else {
                *guard = Some(client);
            }
        }
        if guard.is_none() {
            *guard = Some(start_server().map_err(start_err)?);
        }
        let client = guard.as_mut().expect("started above");
        if send_request(client, &bytes, &fds).is_err() {
            bury(guard.take().expect("present"));
            if attempt == 0 {
                continue;
            }
            return Err(ProcessError::ForkServerDied);
        }
        return match recv_reply(client) {
            Ok(Ok(launched)) => Ok(launched),
            Ok(Err(errno)) => Err(start_err(io::Error::from_raw_os_error(errno))),
            Err(_) => {
                // Gone after it read the request: whether the child was forked is
                // unknown, so this start fails; the next one gets a new server.
                bury(guard.take().expect("present"));
                Err(ProcessError::ForkServerDied)
            }
        };
    }
    unreachable!("the second attempt returns")
}

/// Sends a request in one message (one wake-up of the server, which reads it whole).
fn send_request(client: &mut Client, bytes: &[u8], fds: &[OwnedFd]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
    let mut request = Vec::with_capacity(4 + bytes.len());
    request.extend_from_slice(&len.to_le_bytes());
    request.extend_from_slice(bytes);
    let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    sys::send_with_fds(client.sock.as_fd(), &request, &fds)
}

/// The server's reply: the child, or the errno of a failed fork. The outer error means
/// the connection broke.
fn recv_reply(client: &mut Client) -> io::Result<Result<Launched, i32>> {
    let mut reply = [0u8; 8];
    let (n, got) = sys::recv_with_fds(client.sock.as_fd(), &mut reply)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    client.sock.read_exact(&mut reply[n..])?;
    let pid = u32::from_le_bytes(reply[..4].try_into().expect("4 bytes"));
    let errno = i32::from_le_bytes(reply[4..].try_into().expect("4 bytes"));
    if errno != 0 {
        return Ok(Err(errno));
    }
    let mut got = got.into_iter();
    let (Some(pidfd), Some(status)) = (got.next(), got.next()) else {
        return Err(io::Error::other(
            "the forkserver replied without descriptors",
        ));
    };
    Ok(Ok(Launched {
        pid,
        pidfd,
        exit: Exit::Relayed {
            status: UnixStream::from(status),
            server: client.server.pid,
        },
    }))
}

/// Bytes of a request the server reads at once.
const REQUEST_READ: usize = 4096;

/// A child of the server, until it is reaped.
struct Kid {
    pidfd: OwnedFd,
    status: UnixStream,
}

/// The server loop (runs in the forkserver process); returns its exit code.
pub(crate) fn serve(sock: OwnedFd) -> i32 {
    let mut sock = Some(UnixStream::from(sock));
    let mut kids: Vec<Kid> = Vec::new();
    let me = std::process::id();
    loop {
        let ready = {
            let server = sock.as_ref().expect("the server keeps its socket");
            let mut watched = vec![server.as_fd()];
            watched.extend(kids.iter().map(|k| k.pidfd.as_fd()));
            match sys::poll_readable(&watched, None) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("shoal forkserver: poll failed: {e}");
                    return 1;
                }
            }
        };
        // Reap first: the exit codes of ended children go out before new work.
        let mut i = kids.len();
        while i > 0 {
            i -= 1;
            if ready[i + 1] {
                let kid = kids.swap_remove(i);
                if let Ok(Some(code)) = sys::pidfd_wait(kid.pidfd.as_fd(), true) {
                    // The requester may be gone; nothing to do then.
                    let _ = sys::send_with_fds(kid.status.as_fd(), &code.to_le_bytes(), &[]);
                }
            }
        }
        if ready[0] {
            match serve_one(&mut sock, &mut kids, me) {
                Ok(true) => {}
                Ok(false) => return 0,
                // The requester exited with a reply unread (a thread of it was starting
                // a child): gone, as at end of file.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return 0,
                Err(e) => {
                    eprintln!("shoal forkserver: {e}");
                    return 1;
                }
            }
        }
    }
}

/// Serves one request; `Ok(false)` at end of file (the requester is gone).
fn serve_one(sock: &mut Option<UnixStream>, kids: &mut Vec<Kid>, me: u32) -> io::Result<bool> {
    let server = sock.as_mut().expect("the server keeps its socket");
    // Most requests arrive whole in the first read.
    let mut first = [0u8; REQUEST_READ];
    let (n, fds) = sys::recv_with_fds(server.as_fd(), &mut first)?;
    if n == 0 {
        return Ok(false);
    }
    let mut got = n;
    if got < 4 {
        server.read_exact(&mut first[got..4])?;
        got = 4;
    }
    let len = u32::from_le_bytes(first[..4].try_into().expect("4 bytes")) as usize;
    if got - 4 > len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a request of {len} bytes came with {} more: requests are sent one at a time",
                got - 4 - len
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&first[4..got]);
    bytes.resize(len, 0);
    server.read_exact(&mut bytes[got - 4..])?;
    let boot: Bootstrap = codec::decode(&bytes).map_err(io::Error::other)?;

    let (status_r, status_w) = UnixStream::pair()?;
    let daemon = boot.daemon;
    let mut fds = Some(fds);
    let mut boot = Some(boot);
    let mut status = Some((status_r, status_w));
    let forked = sys::fork_run(|| {
        // The child keeps nothing of the server: its socket, the other children's
        // pidfds and status sockets, its own status socket.
        drop(sock.take());
        drop(std::mem::take(kids));
        drop(status.take());
        if daemon && (sys::set_parent_death_kill().is_err() || sys::parent_pid() != me) {
            return 1;
        }
        bootstrap::run(
            boot.take().expect("taken once"),
            fds.take().expect("taken once"),
        )
    });
    drop(fds);
    let server = sock.as_ref().expect("the server keeps its socket");
    let (status_r, status_w) = status.take().expect("not taken in the server");
    let reply = |pid: u32, errno: i32| {
        let mut r = [0u8; 8];
        r[..4].copy_from_slice(&pid.to_le_bytes());
        r[4..].copy_from_slice(&errno.to_le_bytes());
        r
    };
    match forked.and_then(|pid| Ok((pid, sys::pidfd_open(pid)?))) {
        Ok((pid, pidfd)) => {
            sys::send_with_fds(
                server.as_fd(),
                &reply(pid, 0),
                &[pidfd.as_fd(), status_r.as_fd()],
            )?;
            kids.push(Kid {
                pidfd,
                status: status_w,
            });
        }
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(sys::EIO);
            sys::send_with_fds(server.as_fd(), &reply(0, errno), &[])?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::entry;

    fn quick(code: u8) -> i32 {
        i32::from(code)
    }
    crate::entry!(quick);

    #[test]
    fn a_requester_gone_with_its_reply_unread_ends_the_server_quietly() {
        let mut client = start_server().unwrap();
        let boot = Bootstrap {
            task: Task::Entry {
                entry: entry::name_of(quick).to_owned(),
                args: crate::handoff::encode(&0u8).unwrap().bytes,
            },
            name: "quick".to_owned(),
            parent_pid: std::process::id(),
            parent_name: "test".to_owned(),
            daemon: false,
            fds: Vec::new(),
        };
        let bytes = codec::encode(&boot).unwrap();
        send_request(&mut client, &bytes, &[]).unwrap();
        // The reply has come: the requester leaves without reading it.
        let limit = Some(Duration::from_secs(30));
        assert_eq!(
            sys::poll_readable(&[client.sock.as_fd()], limit).unwrap(),
            [true]
        );
        let Client { sock, server, .. } = client;
        drop(sock);
        // The server sees its requester gone (a reset, not an end of file) and exits
        // as it does at end of file.
        assert_eq!(
            sys::poll_readable(&[server.pidfd.as_fd()], limit).unwrap(),
            [true]
        );
        assert_eq!(
            sys::pidfd_wait(server.pidfd.as_fd(), true).unwrap(),
            Some(0)
        );
    }
}
