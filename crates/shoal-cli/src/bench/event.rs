//! Ping-pong over shoal [`Event`]s: one 8-byte word in shared memory each way, each
//! hop signalled by setting an event that the other process waits for.
//!
//! Protocol: the peer sets `pong` when it is ready. For each round the parent stores
//! the round number in `MSG` and sets `ping`, then waits for `pong` and clears it; the
//! peer waits for `ping`, clears it, copies `MSG` to `ECHO` and sets `pong`. Each side
//! clears the event it waited for before it sets the other, so that no set is lost.
//! A non-zero `STOP` ends the peer at its next wake-up.
//!
//! `Event::wait` spins briefly before it sleeps on a futex: a peer that answers within
//! the spin (both processes busy on two CPUs) is met without a system call, one that
//! does not costs a futex wake-up (the same kernel path a pipe's reader takes).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use shoal::sync::Event;
use shoal::{Process, SharedMemory};

use crate::bench::measure::{round_trips, Measure};
use crate::bench::peer::{self, ShoalPeer};
use crate::bench::placement::pin_peer;
use crate::bench::transport::combine;
use crate::bench::Conditions;

const MSG: usize = 0;
const ECHO: usize = 64;
const STOP: usize = 128;
const LEN: usize = 192;

/// How long the parent waits for one answer before it declares the peer hung.
const ANSWER: Duration = Duration::from_secs(10);

/// The peer's argument.
#[derive(Serialize, Deserialize)]
pub(crate) struct EventPeer {
    ping: Event,
    pong: Event,
    shm: SharedMemory,
    cpu: Option<usize>,
    limit_ms: u64,
}

/// The peer: answers every ping until told to stop.
pub(crate) fn event_peer(args: EventPeer) -> Result<(), String> {
    pin_peer(args.cpu).map_err(|e| format!("{e:#}"))?;
    let deadline = peer::limit(args.limit_ms);
    let shm = &args.shm;
    let (msg, echo) = (
        shm.atomic_u64(MSG).map_err(|e| e.to_string())?,
        shm.atomic_u64(ECHO).map_err(|e| e.to_string())?,
    );
    let stop = shm.atomic_u32(STOP).map_err(|e| e.to_string())?;
    args.pong.set();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !args.ping.wait_timeout(left) {
            return Err("the event ping-pong parent stopped sending".into());
        }
        args.ping.clear();
        if stop.load(Ordering::Acquire) != 0 {
            return Ok(());
        }
        // Ordered by the events: `wait` saw the parent's `set`, which followed its store.
        echo.store(msg.load(Ordering::Relaxed), Ordering::Relaxed);
        args.pong.set();
    }
}
shoal::entry!(event_peer);

/// Event ping-pong round trips for the budget of `how`.
pub(crate) fn measure(how: &Conditions) -> anyhow::Result<Measure> {
    let shm = SharedMemory::new(LEN).context("could not create the shared memory")?;
    let ping = Event::new().context("could not create an event")?;
    let pong = Event::new().context("could not create an event")?;
    let child = ShoalPeer::start(Process::new(
        event_peer,
        EventPeer {
            ping: ping.clone(),
            pong: pong.clone(),
            shm: shm.clone(),
            cpu: how.pinned.peer_cpu,
            limit_ms: peer::limit_ms(how.budget),
        },
    ))?;
    let (msg, echo) = (shm.atomic_u64(MSG)?, shm.atomic_u64(ECHO)?);
    let stop = shm.atomic_u32(STOP)?;
    let measure = (|| {
        if !pong.wait_timeout(peer::GRACE) {
            bail!("the event peer did not start");
        }
        pong.clear();
        let mut round = 0u64;
        let measure = round_trips(how.budget, || {
            round += 1;
            msg.store(round, Ordering::Relaxed);
            ping.set();
            if !pong.wait_timeout(ANSWER) {
                bail!("the event peer stopped answering");
            }
            pong.clear();
            if echo.load(Ordering::Relaxed) != round {
                bail!("the event peer answered another round than the one sent");
            }
            Ok(())
        });
        stop.store(1, Ordering::Release);
        ping.set();
        measure
    })();
    combine(measure, child.finish())
}
