//! shoal's channels: a [`Queue`] of raw bytes (one message per call, in batches, or
//! written in place) and a [`Pipe`], with shoal [`Process`] peers.
//!
//! Protocol: every peer puts `R` on a control queue when it is ready, so that process
//! start-up is never timed, and reports its count there at the end (`C` + count from a
//! consumer, `P` + count from a producer).
//!
//! * Ping-pong: the parent sends a message on one end, the peer sends the same bytes
//!   back on another (two queues; the two directions of a duplex pipe).
//! * Throughput: the parent produces for the budget, then closes the channel; the peer
//!   consumes until the channel reports it closed and drained, then reports its count.
//!   The time ends when that count arrives.
//! * 2→2 throughput: two producer processes (on the parent's CPU) and two consumer
//!   processes (on the peer's CPU) around one queue, or two independent pairs for a
//!   pipe (which connects two ends). The parent sets a start [`Event`], collects both
//!   producers' counts, closes the channel and collects both consumers' counts.
//!
//! Batches (`-batch`) put with `put_bytes_many` and read with `get_bytes_with` (each
//! message handed over where it lies in the ring): one claim of ring space per batch on
//! each side. The in-place form (`-zero-copy`) writes each message straight into the
//! ring through `reserve` → `WriteSlot` → `commit` (the producer generates the bytes
//! there instead of copying them from a buffer of its own) and reads it where it lies
//! with `get_many_in_place` (no copy on either side).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use shoal::channel::{Connection, GetError, Pipe, Queue};
use shoal::sync::Event;
use shoal::Process;

use crate::bench::case::{Case, Pattern};
use crate::bench::measure::{round_trips, Measure};
use crate::bench::peer::{self, ShoalPeer};
use crate::bench::placement::pin_peer;
use crate::bench::transport::Transport;
use crate::bench::Conditions;

/// How the messages are put and got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Style {
    /// One message per call: `put_bytes` / `get_bytes_into`, `send_bytes` /
    /// `recv_bytes_into`.
    Single,
    /// `put_bytes_many` / `get_bytes_with`.
    Batch,
    /// `reserve` → write in place → `commit` / `get_bytes_with`.
    ZeroCopy,
}

/// Bytes of the messages of one batch, at most.
const BATCH_BYTES: usize = 256 * 1024;
/// Messages in one batch, at most.
const BATCH_MAX: usize = 64;

/// Messages per batch for `size`-byte messages.
fn batch_len(size: usize) -> usize {
    (BATCH_BYTES / size.max(1)).clamp(1, BATCH_MAX)
}

/// One end of the channel a case measures.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum End {
    Queue(Queue<()>),
    Pipe(Connection),
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

impl End {
    /// Sends one message (or a batch of `batch` copies of it) as `style` says;
    /// returns how many messages were sent.
    fn send(&self, style: Style, msg: &[u8], batch: &[&[u8]]) -> anyhow::Result<u64> {
        match (self, style) {
            (End::Queue(q), Style::Single) => q.put_bytes(msg).map_err(err).map(|()| 1),
            (End::Queue(q), Style::Batch) => q
                .put_bytes_many(batch)
                .map_err(err)
                .map(|()| batch.len() as u64),
            (End::Queue(q), Style::ZeroCopy) => {
                let mut slot = q.reserve(msg.len()).map_err(err)?;
                loop {
                    let chunk = slot.chunk_mut();
                    let n = chunk.len();
                    if n == 0 {
                        break;
                    }
                    // The producer generates its message in the ring.
                    chunk.fill(0xa5);
                    slot.advance(n);
                }
                slot.commit();
                Ok(1)
            }
            (End::Pipe(c), _) => c.send_bytes(msg).map_err(err).map(|()| 1),
        }
    }

    /// Receives one message (or a batch) into `buf`; how many, `None` once the channel
    /// is closed and drained.
    fn recv(&self, style: Style, buf: &mut Vec<u8>, batch: usize) -> anyhow::Result<Option<u64>> {
        let got = match (self, style) {
            (End::Queue(q), Style::Single) => q.get_bytes_into(buf).map(|_| 1),
            (End::Queue(q), Style::Batch) => {
                let want = buf.len();
                let mut wrong = 0;
                let n = q.get_bytes_with(batch, None, |m| {
                    // Read where it lies: its length and its first and last bytes.
                    if m.len() != want || m.first() != m.last() {
                        wrong += 1;
                    }
                });
                if wrong > 0 {
                    bail!("{wrong} messages arrived with another length or content");
                }
                n.map(|n| n as u64)
            }
            (End::Queue(q), Style::ZeroCopy) => {
                let want = buf.len();
                let mut wrong = 0;
                let n = q.get_many_in_place(batch, None, |m| {
                    // Read where it lies, even across cells: its length and its first
                    // and last bytes, nothing copied.
                    let first = m.chunks().find(|c| !c.is_empty()).map(|c| c[0]);
                    let last = m
                        .chunks()
                        .filter(|c| !c.is_empty())
                        .last()
                        .map(|c| c[c.len() - 1]);
                    if m.len() != want || first != last {
                        wrong += 1;
                    }
                });
                if wrong > 0 {
                    bail!("{wrong} messages arrived with another length or content");
                }
                n.map(|n| n as u64)
            }
            (End::Pipe(c), _) => c.recv_bytes_into(buf).map(|_| 1),
        };
        match got {
            Ok(n) => Ok(Some(n)),
            Err(GetError::Closed) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Closes the channel for every process: puts fail, gets drain then report closed.
    fn close(&self) {
        match self {
            End::Queue(q) => q.close(),
            End::Pipe(c) => c.close(),
        }
    }
}

/// What a peer process does.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Role {
    /// Sends every message back on `back`.
    Echo,
    /// Reads until the channel closes; reports `C` + count.
    Consume,
    /// Waits for the start event, sends for the budget; reports `P` + count.
    Produce,
}

/// The argument of a channel peer.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChannelPeer {
    role: Role,
    style: Style,
    data: End,
    back: Option<End>,
    control: Queue<()>,
    go: Option<Event>,
    size: usize,
    budget_ms: u64,
    cpu: Option<usize>,
}

/// A channel peer: echoes, consumes or produces, as its role says.
pub(crate) fn channel_peer(args: ChannelPeer) -> Result<(), String> {
    run_peer(args).map_err(|e| format!("{e:#}"))
}
shoal::entry!(channel_peer);

fn run_peer(args: ChannelPeer) -> anyhow::Result<()> {
    pin_peer(args.cpu)?;
    let ChannelPeer {
        role,
        style,
        data,
        back,
        control,
        go,
        size,
        budget_ms,
        ..
    } = args;
    let mut buf = vec![0u8; size];
    control.put_bytes(b"R").map_err(err)?;
    match role {
        Role::Echo => {
            let back = back.context("an echo peer needs a way back")?;
            while data.recv(Style::Single, &mut buf, 1)?.is_some() {
                back.send(Style::Single, &buf, &[])?;
            }
            Ok(())
        }
        Role::Consume => {
            let batch = batch_len(size);
            let mut count = 0u64;
            while let Some(n) = data.recv(style, &mut buf, batch)? {
                count += n;
            }
            report(&control, b'C', count)
        }
        Role::Produce => {
            let go = go.context("a producer needs a start event")?;
            if !go.wait_timeout(peer::GRACE) {
                bail!("the start signal did not come");
            }
            let msg = vec![0xa5u8; size];
            let batch = vec![&msg[..]; batch_len(size)];
            let sent = produce(&data, style, &msg, &batch, Duration::from_millis(budget_ms))?;
            report(&control, b'P', sent)
        }
    }
}

fn report(control: &Queue<()>, tag: u8, count: u64) -> anyhow::Result<()> {
    let mut msg = vec![tag];
    msg.extend_from_slice(&count.to_le_bytes());
    control.put_bytes(&msg).map_err(err)
}

/// Sends for `budget`; returns how many messages were sent.
fn produce(
    data: &End,
    style: Style,
    msg: &[u8],
    batch: &[&[u8]],
    budget: Duration,
) -> anyhow::Result<u64> {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut calls = 0u32;
    loop {
        sent += data.send(style, msg, batch)?;
        calls += 1;
        // The clock costs more than a small message: look at it now and then.
        if calls.is_multiple_of(16) && start.elapsed() >= budget {
            return Ok(sent);
        }
    }
}

/// The reports of a case's peers, read from the control queue in whatever order they
/// come (a pipe's consumer may report as soon as its producer exits).
struct Reports {
    control: Queue<()>,
    early: Vec<(u8, u64)>,
}

impl Reports {
    /// Waits until `n` reports tagged `tag` came (at most `within`); their counts.
    fn collect(&mut self, tag: u8, n: usize, within: Duration) -> anyhow::Result<Vec<u64>> {
        let deadline = Instant::now() + within;
        let mut counts = Vec::new();
        self.early.retain(|&(t, c)| {
            let mine = t == tag && counts.len() < n;
            if mine {
                counts.push(c);
            }
            !mine
        });
        while counts.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.control.get_bytes_timeout(left).map_err(|e| match e {
                GetError::Timeout => anyhow!("a benchmark peer did not answer in time"),
                e => err(e),
            })?;
            let (t, count) = match msg.split_first() {
                Some((&t, [])) => (t, 0),
                Some((&t, rest)) if rest.len() == 8 => {
                    (t, u64::from_le_bytes(rest.try_into().expect("8 bytes")))
                }
                _ => bail!("a benchmark peer sent a malformed report"),
            };
            if !matches!(t, b'R' | b'P' | b'C') {
                bail!("a benchmark peer sent an unknown report");
            }
            if t == tag {
                counts.push(count);
            } else {
                self.early.push((t, count));
            }
        }
        Ok(counts)
    }
}

/// Closes `ends` when `after` passes, unless dropped first: a producer blocked on a
/// full channel whose consumer died fails instead of hanging.
struct Guard {
    _dismiss: mpsc::Sender<()>,
}

impl Guard {
    fn new(ends: Vec<End>, after: Duration) -> Guard {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(after) {
                for e in &ends {
                    e.close();
                }
            }
        });
        Guard { _dismiss: tx }
    }
}

fn style_of(transport: Transport) -> Style {
    match transport {
        Transport::ShoalQueueBatch => Style::Batch,
        Transport::ShoalQueueZeroCopy => Style::ZeroCopy,
        _ => Style::Single,
    }
}

/// A queue for `size`-byte messages: the default ring for small ones, 4 KiB cells and
/// room for four messages (at least 1 MiB) for large ones.
fn queue(size: usize) -> anyhow::Result<Queue<()>> {
    let q = if size >= 4096 {
        Queue::builder()
            .capacity_bytes((4 * size).max(1 << 20))
            .cell_size(4096)
            .build()
    } else {
        Queue::new()
    };
    q.context("could not create a queue")
}

/// A pipe for `size`-byte messages: the default 512 KiB rings, grown like the queue's
/// (room for four messages) for large ones, so that they travel whole.
fn pipe(size: usize) -> shoal::channel::PipeBuilder {
    Pipe::builder().capacity((4 * size).max(512 << 10))
}

fn simplex(size: usize) -> anyhow::Result<(End, End)> {
    let (tx, rx) = pipe(size).simplex().context("could not create a pipe")?;
    Ok((End::Pipe(tx), End::Pipe(rx)))
}

/// The parent side of one shoal channel case.
pub(crate) fn measure(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    let m = match case.pattern {
        Pattern::PingPong => ping_pong(case, how),
        Pattern::Throughput => one_to_one(case, how),
        Pattern::Throughput2x2 => two_to_two(case, how),
        other => bail!("shoal channels do not run {}", other.name()),
    };
    m.with_context(|| format!("benchmark {} failed", case.name()))
}

struct Peers {
    reports: Reports,
    peers: Vec<ShoalPeer>,
}

impl Peers {
    fn new() -> anyhow::Result<Peers> {
        Ok(Peers {
            reports: Reports {
                control: Queue::new().context("could not create the control queue")?,
                early: Vec::new(),
            },
            peers: Vec::new(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        role: Role,
        style: Style,
        data: &End,
        back: Option<&End>,
        go: Option<&Event>,
        size: usize,
        budget: Duration,
        cpu: Option<usize>,
    ) -> anyhow::Result<()> {
        self.peers.push(ShoalPeer::start(Process::new(
            channel_peer,
            ChannelPeer {
                role,
                style,
                data: data.clone(),
                back: back.cloned(),
                control: self.reports.control.clone(),
                go: go.cloned(),
                size,
                budget_ms: budget.as_millis() as u64,
                cpu,
            },
        ))?);
        Ok(())
    }

    /// Waits until every peer said it is ready.
    fn ready(&mut self) -> anyhow::Result<()> {
        let n = self.peers.len();
        self.reports.collect(b'R', n, peer::GRACE).map(drop)
    }

    /// Waits for every peer to exit; the first failure wins over `measure`'s error.
    fn finish(self, measure: anyhow::Result<Measure>) -> anyhow::Result<Measure> {
        let mut failed = None;
        for p in self.peers {
            if let Err(e) = p.finish() {
                failed.get_or_insert(e);
            }
        }
        match (measure, failed) {
            (Ok(m), None) => Ok(m),
            (Err(e), None) => Err(e),
            (Ok(_), Some(p)) => Err(p),
            (Err(e), Some(p)) => Err(anyhow!("{e:#} (and a benchmark peer: {p:#})")),
        }
    }
}

fn ping_pong(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    let (to, from, peer_in, peer_out) = match case.transport {
        Transport::ShoalPipe => {
            let (a, b) = pipe(case.size)
                .duplex()
                .context("could not create a pipe")?;
            let (a, b) = (End::Pipe(a), End::Pipe(b));
            (a.clone(), a, b.clone(), b)
        }
        _ => {
            let (there, back) = (End::Queue(queue(case.size)?), End::Queue(queue(case.size)?));
            (there.clone(), back.clone(), there, back)
        }
    };
    let mut peers = Peers::new()?;
    peers.start(
        Role::Echo,
        Style::Single,
        &peer_in,
        Some(&peer_out),
        None,
        case.size,
        how.budget,
        how.pinned.peer_cpu,
    )?;
    let _guard = Guard::new(vec![to.clone(), from.clone()], how.budget + peer::GRACE);
    let measure = (|| {
        peers.ready()?;
        let msg = vec![0xa5u8; case.size];
        let mut back = vec![0u8; case.size];
        let measure = round_trips(how.budget, || {
            to.send(Style::Single, &msg, &[])?;
            if from.recv(Style::Single, &mut back, 1)?.is_none() {
                bail!("the peer closed the channel");
            }
            Ok(())
        });
        to.close();
        if measure.is_ok() && back != msg {
            bail!("the peer sent back other bytes than it received");
        }
        measure
    })();
    peers.finish(measure)
}

fn one_to_one(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    let style = style_of(case.transport);
    let (tx, rx) = match case.transport {
        Transport::ShoalPipe => simplex(case.size)?,
        _ => {
            let q = End::Queue(queue(case.size)?);
            (q.clone(), q)
        }
    };
    let mut peers = Peers::new()?;
    peers.start(
        Role::Consume,
        style,
        &rx,
        None,
        None,
        case.size,
        how.budget,
        how.pinned.peer_cpu,
    )?;
    let _guard = Guard::new(vec![tx.clone()], how.budget + peer::GRACE);
    let measure = (|| {
        peers.ready()?;
        let msg = vec![0xa5u8; case.size];
        let batch = vec![&msg[..]; batch_len(case.size)];
        let start = Instant::now();
        let sent = produce(&tx, style, &msg, &batch, how.budget);
        tx.close();
        let sent = sent?;
        let got = peers.reports.collect(b'C', 1, peer::GRACE)?[0];
        let seconds = start.elapsed().as_secs_f64();
        if got != sent {
            bail!("sent {sent} messages but the peer read {got}");
        }
        Ok(Measure::Throughput {
            messages: sent,
            seconds,
        })
    })();
    peers.finish(measure)
}

fn two_to_two(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    let style = style_of(case.transport);
    // (producer end, consumer end) of each pair; a queue is one channel for all four.
    let pairs = match case.transport {
        Transport::ShoalPipe => vec![simplex(case.size)?, simplex(case.size)?],
        _ => {
            let q = End::Queue(queue(case.size)?);
            vec![(q.clone(), q.clone()), (q.clone(), q)]
        }
    };
    let go = Event::new().context("could not create an event")?;
    let mut peers = Peers::new()?;
    for (tx, rx) in &pairs {
        peers.start(
            Role::Consume,
            style,
            rx,
            None,
            None,
            case.size,
            how.budget,
            how.pinned.peer_cpu,
        )?;
        peers.start(
            Role::Produce,
            style,
            tx,
            None,
            Some(&go),
            case.size,
            how.budget,
            how.pinned.parent_cpu,
        )?;
    }
    let ends: Vec<End> = pairs.iter().map(|(tx, _)| tx.clone()).collect();
    let _guard = Guard::new(ends.clone(), how.budget + peer::GRACE);
    let measure = (|| {
        peers.ready()?;
        let start = Instant::now();
        go.set();
        let sent = peers.reports.collect(b'P', 2, how.budget + peer::GRACE);
        for e in &ends {
            e.close();
        }
        let sent: u64 = sent?.iter().sum();
        let got: u64 = peers.reports.collect(b'C', 2, peer::GRACE)?.iter().sum();
        let seconds = start.elapsed().as_secs_f64();
        if got != sent {
            bail!("the producers sent {sent} messages but the consumers read {got}");
        }
        Ok(Measure::Throughput {
            messages: sent,
            seconds,
        })
    })();
    peers.finish(measure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_256_kib_and_64_messages() {
        assert_eq!(batch_len(8), 64);
        assert_eq!(batch_len(64 * 1024), 4);
        assert_eq!(batch_len(1 << 20), 1);
        assert_eq!(batch_len(0), 64);
    }

    #[test]
    fn every_style_delivers_whole_messages_in_one_process() {
        for style in [Style::Single, Style::Batch, Style::ZeroCopy] {
            let q = End::Queue(queue(1000).unwrap());
            let msg = vec![0xa5u8; 1000];
            let batch = vec![&msg[..]; 3];
            let sent = q.send(style, &msg, &batch).unwrap();
            q.close();
            let mut buf = vec![0u8; 1000];
            let mut got = 0;
            while let Some(n) = q.recv(style, &mut buf, 8).unwrap() {
                got += n;
            }
            assert_eq!(got, sent, "{style:?}");
        }
    }

    #[test]
    fn reports_that_come_early_wait_for_their_turn() {
        let control: Queue<()> = Queue::new().unwrap();
        report(&control, b'C', 7).unwrap();
        report(&control, b'P', 3).unwrap();
        report(&control, b'P', 4).unwrap();
        let mut reports = Reports {
            control,
            early: Vec::new(),
        };
        let wait = Duration::from_secs(5);
        assert_eq!(reports.collect(b'P', 2, wait).unwrap(), [3, 4]);
        assert_eq!(reports.collect(b'C', 1, wait).unwrap(), [7]);
        let none = reports.collect(b'C', 1, Duration::from_millis(10));
        assert!(none
            .unwrap_err()
            .to_string()
            .contains("did not answer in time"));
    }
}
