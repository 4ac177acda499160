//! `shoal::net` connections (Python's `multiprocessing.connection`): a [`Connection`]
//! over a Unix socket and over TCP loopback, authenticated with a key, against the raw
//! socket of the same kind (`unix-socket`, `tcp-loopback`) measured in the same run.
//!
//! The parent binds a [`Listener`]; the peer is a shoal [`Process`](shoal::Process)
//! that connects with a [`Client`] (the handshake is not timed) and sends `R` when it
//! is ready. Ping-pong: the parent sends a message, the peer sends the same bytes back.
//! Throughput: the parent sends messages (one `send_bytes` each) for the budget, then
//! an empty message; the peer reads them with `recv_bytes_into` and answers the count
//! it read, which ends the time. Both patterns end with the empty message.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use shoal::net::{Address, Client, Connection, Listener};
use shoal::Process;

use crate::bench::case::{Case, Pattern};
use crate::bench::measure::{round_trips, Measure};
use crate::bench::peer::{self, ShoalPeer, GRACE};
use crate::bench::placement::pin_peer;
use crate::bench::transport::{combine, Transport};
use crate::bench::Conditions;

/// The key both ends authenticate with (HMAC challenge in both directions).
const AUTHKEY: &[u8] = b"shoal-bench";

/// How many messages the producer sends between two looks at the clock.
const CLOCK_EVERY: u64 = 16;

/// Where the listener waits.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Place {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Place {
    fn address(&self) -> Address {
        match self {
            Place::Unix(p) => Address::unix(p),
            Place::Tcp(a) => Address::Tcp(*a),
        }
    }
}

/// The argument of a net peer.
#[derive(Serialize, Deserialize)]
pub(crate) struct NetPeer {
    place: Place,
    pattern: Pattern,
    size: usize,
    limit_ms: u64,
    cpu: Option<usize>,
}

/// A net peer: connects, then echoes (ping-pong) or counts (throughput).
pub(crate) fn net_peer(args: NetPeer) -> Result<(), String> {
    run_peer(args).map_err(|e| format!("{e:#}"))
}
shoal::entry!(net_peer);

fn run_peer(args: NetPeer) -> anyhow::Result<()> {
    pin_peer(args.cpu)?;
    let limit = Duration::from_millis(args.limit_ms);
    let conn = Client::builder()
        .authkey(AUTHKEY)
        .connect_timeout(GRACE)
        .connect(args.place.address())
        .context("could not connect to the benchmark listener")?;
    // A parent that died leaves this peer a timeout, not a hang.
    conn.set_read_timeout(Some(limit))?;
    conn.send_bytes(b"R")?;
    let mut buf = vec![0u8; args.size];
    match args.pattern {
        Pattern::PingPong => loop {
            let n = conn.recv_bytes_into(&mut buf)?;
            conn.send_bytes(&buf[..n])?;
            if n == 0 {
                return Ok(());
            }
        },
        Pattern::Throughput => {
            let mut count = 0u64;
            while conn.recv_bytes_into(&mut buf)? > 0 {
                count += 1;
            }
            conn.send_bytes(&count.to_le_bytes())?;
            Ok(())
        }
        other => bail!("net connections do not run {}", other.name()),
    }
}

/// Binds a listener of the kind `transport` says, starts the peer and measures.
pub(crate) fn measure(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    if case.size == 0 {
        bail!("net benchmarks need messages of at least one byte");
    }
    let (listener, place, _socket_file) = match case.transport {
        Transport::ShoalNetUnix => {
            let path = std::env::temp_dir().join(format!(
                "shoal-bench-net-{}-{}.sock",
                std::process::id(),
                next_id()
            ));
            let listener = Listener::bind(path.as_path(), Some(AUTHKEY))
                .with_context(|| format!("could not listen on {path:?}"))?;
            (
                listener,
                Place::Unix(path.clone()),
                Some(RemoveOnDrop(path)),
            )
        }
        Transport::ShoalNetTcp => {
            let listener =
                Listener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), Some(AUTHKEY))
                    .context("could not listen on TCP loopback")?;
            let Address::Tcp(addr) = listener.address().clone() else {
                bail!("a TCP listener has a non-TCP address");
            };
            (listener, Place::Tcp(addr), None)
        }
        other => bail!("{} is not a net connection", other.name()),
    };
    let peer = ShoalPeer::start(Process::new(
        net_peer,
        NetPeer {
            place,
            pattern: case.pattern,
            size: case.size,
            limit_ms: peer::limit_ms(how.budget),
            cpu: how.pinned.peer_cpu,
        },
    ))?;
    let measure = (|| -> anyhow::Result<Measure> {
        let conn = listener
            .accept_timeout(GRACE)
            .context("the benchmark peer did not connect")?;
        conn.set_read_timeout(Some(how.budget + GRACE))?;
        let ready = conn
            .recv_bytes()
            .context("the benchmark peer did not start")?;
        if ready != b"R" {
            bail!("the benchmark peer sent a wrong greeting");
        }
        let msg = vec![0xa5u8; case.size];
        match case.pattern {
            Pattern::PingPong => ping_pong(&conn, &msg, how.budget),
            Pattern::Throughput => throughput(&conn, &msg, how.budget),
            other => bail!("net connections do not run {}", other.name()),
        }
    })()
    .with_context(|| format!("benchmark {} failed", case.name()));
    combine(measure, peer.finish())
}

fn ping_pong(conn: &Connection, msg: &[u8], budget: Duration) -> anyhow::Result<Measure> {
    let mut back = vec![0u8; msg.len()];
    let mut got = 0;
    let measure = round_trips(budget, || {
        conn.send_bytes(msg)?;
        got = conn.recv_bytes_into(&mut back)?;
        Ok(())
    })?;
    if got != msg.len() || back != msg {
        bail!("the peer sent back other bytes than it received");
    }
    conn.send_bytes(&[])?;
    conn.recv_bytes()?;
    Ok(measure)
}

fn throughput(conn: &Connection, msg: &[u8], budget: Duration) -> anyhow::Result<Measure> {
    let mut sent: u64 = 0;
    let start = Instant::now();
    loop {
        conn.send_bytes(msg)?;
        sent += 1;
        if sent.is_multiple_of(CLOCK_EVERY) && start.elapsed() >= budget {
            break;
        }
    }
    conn.send_bytes(&[])?;
    let count = conn
        .recv_bytes()
        .context("the peer did not confirm what it read")?;
    // The time ends when the consumer has read every message.
    let seconds = start.elapsed().as_secs_f64();
    let received = u64::from_le_bytes(
        count
            .try_into()
            .map_err(|_| anyhow!("the peer's count is not 8 bytes"))?,
    );
    if received != sent {
        bail!("sent {sent} messages but the peer read {received}");
    }
    Ok(Measure::Throughput {
        messages: sent,
        seconds,
    })
}

/// Removes a Unix socket's file when the case ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A number that differs between calls, for unique socket names.
fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
