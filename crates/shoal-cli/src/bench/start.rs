//! Process start: from `Process::start` to the first instruction of the child's entry,
//! per start method, against `std::process::Command::new("/bin/true")` spawned and
//! waited for.
//!
//! The entry's first instruction reads the wall clock and stores it in shared memory:
//! the wall clock is the only clock two processes can compare without help. The
//! baseline is timed around `status()` (spawn, exec, exit, wait): a child doing nothing
//! at all, with every cost a started process has.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use shoal::process::StartMethod;
use shoal::{Process, SharedMemory};

use crate::bench::measure::Measure;
use crate::bench::peer::GRACE;
use crate::bench::transport::Transport;
use crate::bench::Conditions;

/// Every case starts at least this many processes, whatever the budget.
const MIN_STARTS: usize = 5;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The child: stamps the wall clock at its first instruction.
pub(crate) fn stamp(shm: SharedMemory) -> Result<(), String> {
    let now = now_ns();
    shm.atomic_u64(0)
        .map_err(|e| e.to_string())?
        .store(now, Ordering::Release);
    Ok(())
}
shoal::entry!(stamp);

/// Starts processes as `transport` says for the budget of `how`.
pub(crate) fn measure(transport: Transport, how: &Conditions) -> anyhow::Result<Measure> {
    let method = match transport {
        Transport::ShoalForkServer => Some(StartMethod::ForkServer),
        Transport::ShoalSpawn => Some(StartMethod::Spawn),
        Transport::ShoalFork => Some(StartMethod::Fork),
        _ => None,
    };
    let shm = SharedMemory::new(8).context("could not create the shared memory")?;
    let once = || -> anyhow::Result<f64> {
        match method {
            None => {
                let t0 = Instant::now();
                let status = Command::new("/bin/true")
                    .stdin(Stdio::null())
                    .status()
                    .context("could not run /bin/true")?;
                let took = t0.elapsed();
                if !status.success() {
                    bail!("/bin/true failed ({status})");
                }
                Ok(took.as_nanos() as f64)
            }
            Some(method) => {
                shm.atomic_u64(0)?.store(0, Ordering::Relaxed);
                let t0 = now_ns();
                let child = Process::new(stamp, shm.clone())
                    .start_method(method)
                    .start()
                    .context("could not start a child")?;
                match child.join_timeout(GRACE)? {
                    Some(0) => {}
                    Some(code) => bail!("the child failed (exit code {code})"),
                    None => {
                        let _ = child.kill();
                        let _ = child.join_timeout(GRACE);
                        bail!("the child did not finish in time and was killed");
                    }
                }
                let stamped = shm.atomic_u64(0)?.load(Ordering::Acquire);
                Ok(stamped.saturating_sub(t0) as f64)
            }
        }
    };
    // The first start of a method pays one-off costs (the forkserver itself, page
    // cache): not what is measured.
    once()?;
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < MIN_STARTS || start.elapsed() < how.budget {
        samples.push(once()?);
        if start.elapsed() > how.budget + Duration::from_secs(10) {
            break;
        }
    }
    Ok(Measure::latency(samples))
}
