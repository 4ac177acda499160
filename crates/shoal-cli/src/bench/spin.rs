//! The physical floor: two processes spinning on words of one [`SharedMemory`]
//! segment, no system call on the way.
//!
//! Ping-pong: the peer sets `READY`; for round `n` the parent copies the message to
//! `DATA` (beyond 8 bytes: the 8-byte case carries the round number alone), stores `n`
//! in `PING` and spins until `PONG` holds `n`; the peer spins until `PING` moves, copies
//! the message to the echo area and stores `n` in `PONG`; the parent copies the echo
//! back. [`STOP`] in `PING` ends the peer. The words sit on separate cache lines, so
//! that each line has a single writer.
//!
//! Throughput: a single-producer single-consumer ring of fixed slots of the message
//! size, with a position word per side (`PING` the producer's, `PONG` the consumer's)
//! and each side caching the other's position until it runs out of slots or messages:
//! what a ring costs when nothing else (framing, crash safety, several producers) is
//! asked of it. The parent produces; at the end it stores the count in `READY` with its
//! top bit set, and the peer answers it in `DONE` once it read them all.
//!
//! A pure spin is the floor only while each process has a CPU of its own: when both
//! share one CPU, a spinner keeps the CPU from the process it waits for. [`wait`] spins
//! a little, then yields the CPU at every turn, so that the same-CPU placement measures
//! the cost of a yield-and-switch instead of a scheduler time slice.

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use shoal::{Process, SharedMemory};

use crate::bench::measure::{round_trips, Measure};
use crate::bench::peer::{self, ShoalPeer};
use crate::bench::placement::pin_peer;
use crate::bench::transport::combine;
use crate::bench::Conditions;

const PING: usize = 0;
const PONG: usize = 64;
const READY: usize = 128;
const DONE: usize = 192;
/// Where messages start: the ping-pong message, then its echo; or the ring's slots.
const DATA: usize = 256;

/// Bytes of ring slots in the throughput case (at least two slots).
const RING_BYTES: usize = 1 << 20;

/// The top bit of `READY` in the throughput case: the producer is done, the rest is
/// how many it wrote.
const FINISHED: u64 = 1 << 63;

/// The value of `PING` that tells the peer to exit.
const STOP: u64 = u64::MAX;

/// Busy-wait turns (each a `pause`) before every further turn yields the CPU.
const SPINS: u32 = 64;

/// Waits until `ready` holds: spins, then yields; `false` once `deadline` passes.
pub(crate) fn wait(ready: impl Fn() -> bool, deadline: Instant) -> bool {
    for _ in 0..SPINS {
        if ready() {
            return true;
        }
        std::hint::spin_loop();
    }
    let mut turns: u32 = 0;
    loop {
        if ready() {
            return true;
        }
        std::thread::yield_now();
        turns = turns.wrapping_add(1);
        // The clock costs more than a turn: look at it now and then.
        if turns.is_multiple_of(64) && Instant::now() >= deadline {
            return ready();
        }
    }
}

/// The peer's argument.
#[derive(Serialize, Deserialize)]
pub(crate) struct SpinPeer {
    shm: SharedMemory,
    /// Message size; 0 for the throughput ring (whose slot size is in `slot`).
    size: usize,
    /// Slot size of the throughput ring, 0 for ping-pong.
    slot: usize,
    cpu: Option<usize>,
    limit_ms: u64,
}

/// The peer: answers every round until told to stop, or reads the ring to its end.
pub(crate) fn spin_peer(args: SpinPeer) -> Result<(), String> {
    pin_peer(args.cpu).map_err(|e| format!("{e:#}"))?;
    if args.slot > 0 {
        return ring_consumer(&args).map_err(|e| format!("{e:#}"));
    }
    let deadline = peer::limit(args.limit_ms);
    let word = |offset| args.shm.atomic_u64(offset).map_err(|e| e.to_string());
    let (ping, pong) = (word(PING)?, word(PONG)?);
    let mut buf = vec![0u8; if args.size > 8 { args.size } else { 0 }];
    word(READY)?.store(1, Ordering::Release);
    let mut last = 0;
    loop {
        if !wait(|| ping.load(Ordering::Acquire) != last, deadline) {
            return Err("the spin ping-pong parent stopped sending".into());
        }
        last = ping.load(Ordering::Acquire);
        if last == STOP {
            return Ok(());
        }
        if !buf.is_empty() {
            args.shm.read(DATA, &mut buf).map_err(|e| e.to_string())?;
            args.shm
                .write(DATA + buf.len(), &buf)
                .map_err(|e| e.to_string())?;
        }
        pong.store(last, Ordering::Release);
    }
}
shoal::entry!(spin_peer);

/// The consumer of the throughput ring.
fn ring_consumer(args: &SpinPeer) -> anyhow::Result<()> {
    let deadline = peer::limit(args.limit_ms);
    let shm = &args.shm;
    let (tail, head) = (shm.atomic_u64(PING)?, shm.atomic_u64(PONG)?);
    let (ready, done) = (shm.atomic_u64(READY)?, shm.atomic_u64(DONE)?);
    let slots = (RING_BYTES / args.slot).max(2) as u64;
    let mut buf = vec![0u8; args.slot];
    ready.store(1, Ordering::Release);
    let (mut pos, mut seen) = (0u64, 0u64);
    loop {
        if pos == seen {
            let more = || {
                tail.load(Ordering::Acquire) != pos || ready.load(Ordering::Acquire) & FINISHED != 0
            };
            if !wait(more, deadline) {
                bail!("the spin ring's producer stopped");
            }
            seen = tail.load(Ordering::Acquire);
            if seen == pos {
                // Finished, and every message read.
                let sent = ready.load(Ordering::Acquire) & !FINISHED;
                if sent == pos {
                    done.store(pos, Ordering::Release);
                    return Ok(());
                }
                continue;
            }
        }
        shm.read(DATA + (pos % slots) as usize * args.slot, &mut buf)?;
        pos += 1;
        head.store(pos, Ordering::Release);
    }
}

/// Messages of `size` bytes through the spin ring for the budget of `how`.
pub(crate) fn throughput(size: usize, how: &Conditions) -> anyhow::Result<Measure> {
    let slot = size.max(1);
    let slots = (RING_BYTES / slot).max(2);
    let shm =
        SharedMemory::new(DATA + slots * slot).context("could not create the shared memory")?;
    let child = ShoalPeer::start(Process::new(
        spin_peer,
        SpinPeer {
            shm: shm.clone(),
            size: 0,
            slot,
            cpu: how.pinned.peer_cpu,
            limit_ms: peer::limit_ms(how.budget),
        },
    ))?;
    let deadline = Instant::now() + how.budget + peer::GRACE;
    let (tail, head) = (shm.atomic_u64(PING)?, shm.atomic_u64(PONG)?);
    let (ready, done) = (shm.atomic_u64(READY)?, shm.atomic_u64(DONE)?);
    let measure = (|| {
        if !wait(|| ready.load(Ordering::Acquire) == 1, deadline) {
            bail!("the spin peer did not start");
        }
        let msg = vec![0xa5u8; slot];
        let slots = slots as u64;
        let (mut pos, mut free_until) = (0u64, slots);
        let start = Instant::now();
        loop {
            if pos == free_until {
                if !wait(|| head.load(Ordering::Acquire) + slots != pos, deadline) {
                    bail!("the spin ring's consumer stopped");
                }
                free_until = head.load(Ordering::Acquire) + slots;
            }
            shm.write(DATA + (pos % slots) as usize * slot, &msg)?;
            pos += 1;
            tail.store(pos, Ordering::Release);
            if pos % 64 == 0 && start.elapsed() >= how.budget {
                break;
            }
        }
        ready.store(FINISHED | pos, Ordering::Release);
        if !wait(|| done.load(Ordering::Acquire) == pos, deadline) {
            bail!("the spin ring's consumer did not read every message");
        }
        Ok(Measure::Throughput {
            messages: pos,
            seconds: start.elapsed().as_secs_f64(),
        })
    })();
    combine(measure, child.finish())
}

/// Spin ping-pong round trips of `size`-byte messages for the budget of `how`.
pub(crate) fn measure(size: usize, how: &Conditions) -> anyhow::Result<Measure> {
    let shm = SharedMemory::new(DATA + 2 * size).context("could not create the shared memory")?;
    let child = ShoalPeer::start(Process::new(
        spin_peer,
        SpinPeer {
            shm: shm.clone(),
            size,
            slot: 0,
            cpu: how.pinned.peer_cpu,
            limit_ms: peer::limit_ms(how.budget),
        },
    ))?;
    let deadline = Instant::now() + how.budget + peer::GRACE;
    let (ping, pong) = (shm.atomic_u64(PING)?, shm.atomic_u64(PONG)?);
    let ready = shm.atomic_u64(READY)?;
    let measure = (|| {
        if !wait(|| ready.load(Ordering::Acquire) == 1, deadline) {
            bail!("the spin peer did not start");
        }
        let mut round = 0u64;
        let (msg, mut back) = (vec![0xa5u8; size], vec![0u8; size]);
        let carries = size > 8;
        let measure = round_trips(how.budget, || {
            round += 1;
            if carries {
                shm.write(DATA, &msg)?;
            }
            ping.store(round, Ordering::Release);
            if !wait(|| pong.load(Ordering::Acquire) == round, deadline) {
                bail!("the spin peer stopped answering");
            }
            if carries {
                shm.read(DATA + size, &mut back)?;
            }
            Ok(())
        });
        ping.store(STOP, Ordering::Release);
        measure
    })();
    combine(measure, child.finish())
}
