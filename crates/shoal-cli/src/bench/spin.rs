//! The physical floor of a round trip: two processes spinning on words of one
//! [`SharedMemory`] segment, no system call on the way.
//!
//! Protocol: the peer sets `READY`; for round `n` the parent stores `n` in `PING` and
//! spins until `PONG` holds `n`, the peer spins until `PING` moves, then copies it to
//! `PONG`. [`STOP`] in `PING` ends the peer. The two words sit on separate cache lines,
//! so that each line has a single writer.
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
const LEN: usize = 192;

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
        if turns % 64 == 0 && Instant::now() >= deadline {
            return ready();
        }
    }
}

/// The peer's argument.
#[derive(Serialize, Deserialize)]
pub(crate) struct SpinPeer {
    shm: SharedMemory,
    cpu: Option<usize>,
    limit_ms: u64,
}

/// The peer: answers every round until told to stop.
pub(crate) fn spin_peer(args: SpinPeer) -> Result<(), String> {
    pin_peer(args.cpu).map_err(|e| format!("{e:#}"))?;
    let deadline = peer::limit(args.limit_ms);
    let word = |offset| args.shm.atomic_u64(offset).map_err(|e| e.to_string());
    let (ping, pong) = (word(PING)?, word(PONG)?);
    args.shm
        .atomic_u64(READY)
        .map_err(|e| e.to_string())?
        .store(1, Ordering::Release);
    let mut last = 0;
    loop {
        if !wait(|| ping.load(Ordering::Acquire) != last, deadline) {
            return Err("the spin ping-pong parent stopped sending".into());
        }
        last = ping.load(Ordering::Acquire);
        if last == STOP {
            return Ok(());
        }
        pong.store(last, Ordering::Release);
    }
}
shoal::entry!(spin_peer);

/// Spin ping-pong round trips for the budget of `how`.
pub(crate) fn measure(how: &Conditions) -> anyhow::Result<Measure> {
    let shm = SharedMemory::new(LEN).context("could not create the shared memory")?;
    let child = ShoalPeer::start(Process::new(
        spin_peer,
        SpinPeer {
            shm: shm.clone(),
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
        let measure = round_trips(how.budget, || {
            round += 1;
            ping.store(round, Ordering::Release);
            if !wait(|| pong.load(Ordering::Acquire) == round, deadline) {
                bail!("the spin peer stopped answering");
            }
            Ok(())
        });
        ping.store(STOP, Ordering::Release);
        measure
    })();
    combine(measure, child.finish())
}
