//! The second process of a two-process benchmark: this very binary, re-executed as
//! `shoal __bench-peer`, watched so that a hung peer cannot hang the benchmark.

use std::io;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bench::case::Case;
use crate::bench::placement::Pinned;

/// How long a peer may take, beyond the measuring budget, before it is killed.
const GRACE: Duration = Duration::from_secs(20);

/// A running peer process, owned by a watchdog thread that kills it when it outlives
/// its time limit (the parent's blocked read then fails instead of hanging).
#[derive(Debug)]
pub(crate) struct PeerProcess {
    done: mpsc::Sender<()>,
    status: mpsc::Receiver<io::Result<(ExitStatus, bool)>>,
}

impl PeerProcess {
    /// The command line of the peer for `case`, on its CPU; stdio is for the transport
    /// to set.
    pub(crate) fn command(case: &Case, pinned: &Pinned) -> anyhow::Result<Command> {
        let exe = std::env::current_exe().context("could not find the shoal executable")?;
        let mut cmd = pinned.command(&exe);
        cmd.arg("__bench-peer")
            .arg("--transport")
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
