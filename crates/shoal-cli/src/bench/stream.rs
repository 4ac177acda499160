//! Byte-stream transports (OS pipes, Unix sockets, TCP over loopback): the link between
//! the two processes and the patterns run over it.
//!
//! Protocol, both patterns: the peer writes one byte when it is ready, so that process
//! start-up is never timed. Ping-pong: the parent sends a message, the peer sends the
//! same bytes back. Throughput: the parent sends messages (one `write` each), the peer
//! reads them one message at a time and, at end-of-file, answers the count it read.
//! The parent ends both patterns by closing its writing end.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bench::case::{Case, Pattern};
use crate::bench::measure::{round_trips, Measure};
use crate::bench::peer::PeerProcess;
use crate::bench::transport::{combine, Transport};
use crate::bench::Conditions;

/// One end of a byte-stream link between the parent and the peer.
#[derive(Debug)]
pub(crate) enum Link {
    /// Two pipes: one to read from, one to write to (`None` once closed).
    Pipe { rx: File, tx: Option<File> },
    /// A connected Unix stream socket.
    Unix(UnixStream),
    /// A TCP connection over the loopback interface, Nagle's algorithm off.
    Tcp(TcpStream),
}

impl Link {
    /// Starts the peer for `case` and connects to it.
    pub(crate) fn spawn(case: &Case, how: &Conditions) -> anyhow::Result<(Link, PeerProcess)> {
        let mut cmd = PeerProcess::command(case, &how.pinned)?;
        let budget = how.budget;
        let what = || format!("could not start the benchmark peer for {}", case.name());
        match case.transport {
            Transport::OsPipe => {
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
                let mut child = cmd.spawn().with_context(what)?;
                let (Some(tx), Some(rx)) = (child.stdin.take(), child.stdout.take()) else {
                    bail!("the benchmark peer has no pipes");
                };
                let link = Link::Pipe {
                    rx: File::from(OwnedFd::from(rx)),
                    tx: Some(File::from(OwnedFd::from(tx))),
                };
                Ok((link, PeerProcess::watch(child, budget)))
            }
            Transport::UnixSocket => {
                let (ours, theirs) =
                    UnixStream::pair().context("could not create a socket pair")?;
                let child = spawn_with_socket(cmd, OwnedFd::from(theirs)).with_context(what)?;
                Ok((Link::Unix(ours), PeerProcess::watch(child, budget)))
            }
            Transport::TcpLoopback => {
                let (ours, theirs) = tcp_pair().context("could not connect over loopback")?;
                let child = spawn_with_socket(cmd, OwnedFd::from(theirs)).with_context(what)?;
                Ok((Link::Tcp(ours), PeerProcess::watch(child, budget)))
            }
            other => bail!("{} is not a byte stream", other.name()),
        }
    }

    /// The peer's end: standard input and output (pipes), or standard input (sockets).
    pub(crate) fn for_peer(transport: Transport) -> anyhow::Result<Link> {
        // Own duplicates of the descriptors, so that reads and writes go straight to the
        // kernel, without std's buffering of stdin and stdout.
        let stdin = io::stdin().as_fd().try_clone_to_owned()?;
        Ok(match transport {
            Transport::OsPipe => Link::Pipe {
                rx: File::from(stdin),
                tx: Some(File::from(io::stdout().as_fd().try_clone_to_owned()?)),
            },
            Transport::UnixSocket => Link::Unix(UnixStream::from(stdin)),
            Transport::TcpLoopback => {
                let stream = TcpStream::from(stdin);
                stream.set_nodelay(true)?;
                Link::Tcp(stream)
            }
            other => bail!("{} is not a byte stream", other.name()),
        })
    }

    /// Closes the writing direction: the other side reads end-of-file.
    pub(crate) fn close_write(&mut self) -> io::Result<()> {
        match self {
            Link::Pipe { tx, .. } => {
                tx.take();
                Ok(())
            }
            Link::Unix(s) => s.shutdown(Shutdown::Write),
            Link::Tcp(s) => s.shutdown(Shutdown::Write),
        }
    }
}

/// Starts the peer with `socket` as its standard input.
fn spawn_with_socket(mut cmd: Command, socket: OwnedFd) -> io::Result<Child> {
    cmd.stdin(Stdio::from(socket)).stdout(Stdio::null());
    let child = cmd.spawn();
    // Dropping the command closes our copy of the peer's end, so that the peer's death
    // reads as end-of-file here.
    drop(cmd);
    child
}

/// Both ends of a TCP connection over loopback, Nagle's algorithm off on ours (the
/// peer turns it off on its own).
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let ours = TcpStream::connect(listener.local_addr()?)?;
    let (theirs, _) = listener.accept()?;
    ours.set_nodelay(true)?;
    Ok((ours, theirs))
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Pipe { rx, .. } => rx.read(buf),
            Link::Unix(s) => s.read(buf),
            Link::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Link::Pipe { tx: Some(tx), .. } => tx.write(buf),
            Link::Pipe { tx: None, .. } => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
            Link::Unix(s) => s.write(buf),
            Link::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How many messages the producer sends between two looks at the clock.
const CLOCK_EVERY: u64 = 16;

/// The parent side of `case`: waits for the peer, then measures for about `budget`.
pub(crate) fn measure(link: &mut Link, case: &Case, budget: Duration) -> anyhow::Result<Measure> {
    if case.size == 0 {
        bail!("stream benchmarks need messages of at least one byte");
    }
    let mut ready = [0u8; 1];
    link.read_exact(&mut ready)
        .context("the benchmark peer did not start")?;
    let msg = vec![0xa5u8; case.size];
    let result = match case.pattern {
        Pattern::PingPong => ping_pong(link, &msg, budget),
        Pattern::Throughput => throughput(link, &msg, budget),
        other => bail!("byte streams do not run {}", other.name()),
    };
    result.with_context(|| format!("benchmark {} failed", case.name()))
}

fn ping_pong(link: &mut Link, msg: &[u8], budget: Duration) -> anyhow::Result<Measure> {
    let mut back = vec![0u8; msg.len()];
    let measure = round_trips(budget, || {
        link.write_all(msg)?;
        link.read_exact(&mut back)?;
        Ok(())
    })?;
    link.close_write()?;
    if back != msg {
        bail!("the peer sent back other bytes than it received");
    }
    Ok(measure)
}

fn throughput(link: &mut Link, msg: &[u8], budget: Duration) -> anyhow::Result<Measure> {
    let mut sent: u64 = 0;
    let start = Instant::now();
    loop {
        link.write_all(msg)?;
        sent += 1;
        if sent.is_multiple_of(CLOCK_EVERY) && start.elapsed() >= budget {
            break;
        }
    }
    link.close_write()?;
    let mut count = [0u8; 8];
    link.read_exact(&mut count)
        .context("the peer did not confirm what it read")?;
    // The time ends when the consumer has read every message, not when the last one
    // entered the kernel.
    let seconds = start.elapsed().as_secs_f64();
    let received = u64::from_le_bytes(count);
    if received != sent {
        bail!("sent {sent} messages but the peer read {received}");
    }
    Ok(Measure::Throughput {
        messages: sent,
        seconds,
    })
}

/// Two independent producer → consumer pairs at once (a byte stream connects only two
/// ends): the producers are two threads of this process, each writing to its own
/// consumer process. The rate is both pairs' messages over the longer of their times.
pub(crate) fn two_pairs(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    let pair = Case {
        pattern: Pattern::Throughput,
        ..*case
    };
    let mut links = Vec::new();
    for _ in 0..2 {
        links.push(Link::spawn(&pair, how)?);
    }
    let measured: Vec<anyhow::Result<Measure>> = std::thread::scope(|s| {
        let producers: Vec<_> = links
            .iter_mut()
            .map(|(link, _)| s.spawn(|| measure(link, &pair, how.budget)))
            .collect();
        producers
            .into_iter()
            .map(|p| {
                p.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a producer thread panicked")))
            })
            .collect()
    });
    let (mut messages, mut seconds) = (0, 0f64);
    let mut outcome = Ok(());
    for ((link, peer), m) in links.into_iter().zip(measured) {
        drop(link);
        match combine(m, peer.finish()) {
            Ok(Measure::Throughput {
                messages: n,
                seconds: t,
            }) => {
                messages += n;
                seconds = seconds.max(t);
            }
            Ok(other) => outcome = Err(anyhow::anyhow!("unexpected figures {other:?}")),
            Err(e) => outcome = Err(e),
        }
    }
    outcome.with_context(|| format!("benchmark {} failed", case.name()))?;
    Ok(Measure::Throughput { messages, seconds })
}

/// The peer side of `case`, until the parent closes its end.
pub(crate) fn peer(link: &mut Link, case: &Case) -> anyhow::Result<()> {
    if case.size == 0 {
        bail!("stream benchmarks need messages of at least one byte");
    }
    link.write_all(&[1]).context("could not signal readiness")?;
    let mut buf = vec![0u8; case.size];
    match case.pattern {
        Pattern::PingPong => loop {
            if !read_message(link, &mut buf)? {
                return Ok(());
            }
            link.write_all(&buf)?;
        },
        Pattern::Throughput => {
            let mut count: u64 = 0;
            while read_message(link, &mut buf)? {
                count += 1;
            }
            link.write_all(&count.to_le_bytes())?;
            Ok(())
        }
        other => bail!("byte streams do not run {}", other.name()),
    }
}

/// Reads one whole message; `false` at end-of-file between messages.
fn read_message(link: &mut Link, buf: &mut [u8]) -> anyhow::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match link.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => bail!("the link closed in the middle of a message"),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_whole_or_not_at_all() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut link = Link::Unix(b);
        a.write_all(b"abcdefg").unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        let mut buf = [0u8; 4];
        assert!(read_message(&mut link, &mut buf).unwrap());
        assert_eq!(&buf, b"abcd");
        let err = read_message(&mut link, &mut buf).unwrap_err();
        assert!(err.to_string().contains("middle of a message"), "{err}");
        assert!(!read_message(&mut link, &mut buf).unwrap());
    }
}
