//! Locks: the cost of an uncontended acquire + release (shoal's robust `Lock` against
//! `std::sync::Mutex`, in this process), and how soon a process learns that the holder
//! of a lock was `SIGKILL`ed (a waiter's `OwnerDied` against the kernel's own exit
//! notice, the parent's pidfd turning readable).

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use shoal::process::StartMethod;
use shoal::sync::{Event, Lock, TryLockError};
use shoal::Process;

use crate::bench::measure::Measure;
use crate::bench::peer::{self, ShoalPeer};
use crate::bench::placement::pin_peer;
use crate::bench::transport::Transport;
use crate::bench::Conditions;

/// Acquire + release pairs timed together (one clock read per batch, not per pair).
const BATCH: u32 = 1000;

/// Uncontended acquire + release of `transport` (`StdMutex` or `ShoalLock`): the
/// per-pair time of batches, for the budget of `how`.
pub(crate) fn uncontended(transport: Transport, how: &Conditions) -> anyhow::Result<Measure> {
    let mutex = std::sync::Mutex::new(());
    let lock = Lock::new().context("could not create a lock")?;
    let batch = || match transport {
        Transport::StdMutex => {
            for _ in 0..BATCH {
                drop(black_box(&mutex).lock());
            }
        }
        _ => {
            for _ in 0..BATCH {
                drop(black_box(&lock).acquire());
            }
        }
    };
    for _ in 0..10 {
        batch();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut t0 = start;
    while t0 - start < how.budget {
        batch();
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as f64 / f64::from(BATCH));
        t0 = t1;
    }
    Ok(match Measure::latency(samples) {
        Measure::Latency {
            p50_ns,
            p99_ns,
            round_trips,
        } => Measure::Latency {
            p50_ns,
            p99_ns,
            // Report pairs, not batches.
            round_trips: round_trips * u64::from(BATCH),
        },
        other => other,
    })
}

/// The holder's argument.
#[derive(Serialize, Deserialize)]
pub(crate) struct Holder {
    lock: Lock,
    held: Event,
    cpu: Option<usize>,
    limit_ms: u64,
}

/// The holder: takes the lock, says so, and keeps it until it is killed (or its time
/// limit passes).
pub(crate) fn hold_lock(args: Holder) -> Result<(), String> {
    pin_peer(args.cpu).map_err(|e| format!("{e:#}"))?;
    let guard = args
        .lock
        .acquire()
        .map_err(|_| "the lock's previous holder died".to_owned())?;
    args.held.set();
    thread::sleep(Duration::from_millis(args.limit_ms));
    drop(guard);
    Ok(())
}
shoal::entry!(hold_lock);

/// How many holders are killed for one case: a few, more when the budget allows.
fn tries(budget: Duration) -> usize {
    (budget.as_millis() / 60).clamp(3, 15) as usize
}

/// Time from `SIGKILL` of a lock holder to the moment this process learns of the
/// death: through a waiter blocked in `acquire` (`ShoalLock`) or through the pidfd
/// (`PidfdExit`, in `join`); the median of several tries.
pub(crate) fn holder_death(transport: Transport, how: &Conditions) -> anyhow::Result<Measure> {
    let mut samples = Vec::new();
    for _ in 0..tries(how.budget) {
        let lock = Lock::new().context("could not create a lock")?;
        let held = Event::new().context("could not create an event")?;
        // Spawned, not forkserver-started: the exit code of a forkserver child is
        // relayed by the forkserver, which would add its own latency to `join`.
        let child = ShoalPeer::start(
            Process::new(
                hold_lock,
                Holder {
                    lock: lock.clone(),
                    held: held.clone(),
                    cpu: how.pinned.peer_cpu,
                    limit_ms: peer::limit_ms(how.budget),
                },
            )
            .start_method(StartMethod::Spawn),
        )?;
        if !held.wait_timeout(peer::GRACE) {
            bail!("the lock holder did not take the lock");
        }
        let waiter = (transport == Transport::ShoalLock).then(|| {
            let lock = lock.clone();
            thread::spawn(move || {
                let outcome = lock.acquire_timeout(peer::GRACE);
                let at = Instant::now();
                (matches!(outcome, Err(TryLockError::OwnerDied(_))), at)
            })
        });
        // Not needed for correctness: lets the waiter reach its futex, so that what is
        // timed is a sleeping waiter being woken by the death.
        thread::sleep(Duration::from_millis(5));
        let killed = Instant::now();
        child
            .process()
            .kill()
            .context("could not kill the lock holder")?;
        let learned = match waiter {
            Some(waiter) => {
                let (died, at) = waiter.join().expect("the waiter thread does not panic");
                if !died {
                    bail!("the waiter did not get OwnerDied after the holder was killed");
                }
                at
            }
            None => {
                child
                    .process()
                    .join_timeout(peer::GRACE)
                    .context("could not wait for the lock holder")?;
                Instant::now()
            }
        };
        samples.push((learned - killed).as_nanos() as f64);
        let code = child.process().join_timeout(peer::GRACE)?;
        if code != Some(-9) {
            bail!("the lock holder ended with {code:?} instead of being killed");
        }
    }
    Ok(Measure::latency(samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_tries_more_with_time() {
        assert_eq!(tries(Duration::from_millis(10)), 3);
        assert_eq!(tries(Duration::from_millis(300)), 5);
        assert_eq!(tries(Duration::from_secs(60)), 15);
    }
}
