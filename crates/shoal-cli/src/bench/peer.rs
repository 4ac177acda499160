//! The second process of a two-process benchmark, watched so that a hung peer cannot
//! hang the benchmark: this very binary, re-executed as `shoal __bench-peer` (byte
//! streams, which hand the peer its descriptors as stdin/stdout), or a shoal
//! [`Process`] running a registered entry (shoal objects, which travel as its argument).

use std::io;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shoal::process::ProcessBuilder;
use shoal::Process;

use crate::bench::case::Case;
use crate::bench::placement::Pinned;

/// How long a peer may take, beyond the measuring budget, before it is killed.
pub(crate) const GRACE: Duration = Duration::from_secs(20);

/// A running peer process, owned by a watchdog thread that kills it when it outlives
/// its time limit (the parent's blocked read then fails instead of hanging).
#[derive(Debug)]
pub(crate) struct PeerProcess {
    done: mpsc::Sender<()>,
    status: mpsc::Receiver<io::Result<(ExitStatus, bool)>>,
}

impl PeerProcess {
    /// The command line of the peer for `case`, told its CPU (it pins itself); stdio is
    /// for the transport to set.
    pub(crate) fn command(case: &Case, pinned: &Pinned) -> anyhow::Result<Command> {
        let exe = std::env::current_exe().context("could not find the shoal executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("__bench-peer");
        if let Some(cpu) = pinned.peer_cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }
        cmd.arg("--transport")
            .arg(case.transport.name())
            .arg("--pattern")
            .arg(case.pattern.name())
            .arg("--size")
            .arg(case.size.to_string())
            .stderr(Stdio::inherit());
        Ok(cmd)
    }

    /// Hands `child` to a watchdog that kills it after `budget` plus a grace period.
    pub(crate) fn watch(mut child: Child, budget: Duration) -> PeerProcess {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let (status_tx, status_rx) = mpsc::channel();
        let deadline = Instant::now() + budget + GRACE;
        thread::spawn(move || {
            let mut killed = false;
            // Sleep until the parent is done with the peer or the deadline passes.
            let wait = deadline.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = done_rx.recv_timeout(wait) {
                killed = child.kill().is_ok();
            }
            // The parent closed its end: the peer sees end-of-file and exits promptly.
            let result = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok((status, killed)),
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(1));
                    }
                    Ok(None) => {
                        killed = true;
                        let _ = child.kill();
                        break child.wait().map(|s| (s, killed));
                    }
                    Err(e) => break Err(e),
                }
            };
            let _ = status_tx.send(result);
        });
        PeerProcess {
            done: done_tx,
            status: status_rx,
        }
    }

    /// Waits for the peer to exit and checks that it succeeded.
    ///
    /// Call this after closing the parent's end of the link.
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        let _ = self.done.send(());
        let (status, killed) = self
            .status
            .recv()
            .context("the benchmark peer's watchdog stopped")?
            .context("could not wait for the benchmark peer")?;
        if killed {
            bail!("the benchmark peer did not finish in time and was killed");
        }
        if !status.success() {
            bail!("the benchmark peer failed ({status})");
        }
        Ok(())
    }
}

/// A peer that is a shoal [`Process`]; killed and reaped when dropped unfinished.
///
/// Its entry gets a time limit in its arguments (the budget plus [`GRACE`]) and gives
/// up past it, so that it cannot outlive a parent that died.
#[derive(Debug)]
pub(crate) struct ShoalPeer {
    process: Option<Process>,
}

impl ShoalPeer {
    /// Starts `builder`.
    pub(crate) fn start(builder: ProcessBuilder) -> anyhow::Result<ShoalPeer> {
        let process = builder
            .start()
            .context("could not start the benchmark peer")?;
        Ok(ShoalPeer {
            process: Some(process),
        })
    }

    /// The child process.
    pub(crate) fn process(&self) -> &Process {
        self.process.as_ref().expect("present until finish or drop")
    }

    /// Waits (at most [`GRACE`]) for the peer to exit and checks that it succeeded.
    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        let process = self.process.take().expect("present until finish or drop");
        match process.join_timeout(GRACE) {
            Ok(Some(0)) => Ok(()),
            Ok(Some(code)) => bail!("the benchmark peer failed (exit code {code})"),
            Ok(None) => {
                let _ = process.kill();
                let _ = process.join_timeout(GRACE);
                bail!("the benchmark peer did not finish in time and was killed")
            }
            Err(e) => Err(e).context("could not wait for the benchmark peer"),
        }
    }
}

impl Drop for ShoalPeer {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            let _ = process.kill();
            let _ = process.join_timeout(GRACE);
        }
    }
}

/// The instant past which a peer given `limit_ms` by its parent gives up.
pub(crate) fn limit(limit_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(limit_ms)
}

/// The time limit to give a peer measured for `budget`, in milliseconds.
pub(crate) fn limit_ms(budget: Duration) -> u64 {
    (budget + GRACE).as_millis() as u64
}
