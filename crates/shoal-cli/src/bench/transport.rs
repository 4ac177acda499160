//! The transports `shoal bench` compares.
//!
//! A new transport plugs in as one [`Transport`] variant and four match arms: its
//! [`name`](Transport::name), the patterns it [`supports`](Transport::supports), the
//! parent side in [`measure`](Transport::measure) and the peer side in
//! [`peer`](Transport::peer) (run in the re-executed `shoal __bench-peer`). A transport
//! that carries bytes reuses [`stream`]'s patterns through a
//! [`Link`](stream::Link) variant; a shoal object (a `Lock`, an `Event`) is created by
//! the parent, travels to the peer by name, and gets its own module with a `measure`
//! and a `peer` function.

use clap::ValueEnum;
use serde::Serialize;

use crate::bench::case::{Case, Pattern};
use crate::bench::measure::Measure;
use crate::bench::stream;
use crate::bench::Conditions;

/// A way for two processes to exchange messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Transport {
    /// An OS pipe in each direction (the peer's stdin and stdout): the baseline.
    OsPipe,
    /// A connected Unix stream socket pair.
    UnixSocket,
    /// A TCP connection over the loopback interface (`TCP_NODELAY`).
    TcpLoopback,
}

impl Transport {
    /// Every transport, in the order the report lists them.
    pub(crate) const ALL: &'static [Transport] = &[
        Transport::OsPipe,
        Transport::UnixSocket,
        Transport::TcpLoopback,
    ];

    /// What every other transport is compared with.
    pub(crate) const BASELINE: Transport = Transport::OsPipe;

    /// The name in case names, tables and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::OsPipe => "os-pipe",
            Transport::UnixSocket => "unix-socket",
            Transport::TcpLoopback => "tcp-loopback",
        }
    }

    /// Whether this transport can run `pattern`.
    pub(crate) fn supports(self, pattern: Pattern) -> bool {
        match self {
            Transport::OsPipe | Transport::UnixSocket | Transport::TcpLoopback => {
                matches!(pattern, Pattern::PingPong | Pattern::Throughput)
            }
        }
    }

    /// Runs the parent side of one case against a freshly started peer process.
    pub(crate) fn measure(self, case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
        match self {
            Transport::OsPipe | Transport::UnixSocket | Transport::TcpLoopback => {
                let (mut link, peer) = stream::Link::spawn(case, how)?;
                let measure = stream::measure(&mut link, case, how.budget);
                // Closing our end lets the peer see end-of-file and exit.
                drop(link);
                combine(measure, peer.finish())
            }
        }
    }

    /// Runs the peer side of one case in this (re-executed) process.
    pub(crate) fn peer(self, case: &Case) -> anyhow::Result<()> {
        match self {
            Transport::OsPipe | Transport::UnixSocket | Transport::TcpLoopback => {
                stream::peer(&mut stream::Link::for_peer(self)?, case)
            }
        }
    }
}

/// The result of a case from what the parent measured and how the peer ended.
fn combine(measure: anyhow::Result<Measure>, peer: anyhow::Result<()>) -> anyhow::Result<Measure> {
    match (measure, peer) {
        (Ok(m), Ok(())) => Ok(m),
        (Err(e), Ok(())) => Err(e),
        // A peer that failed explains a broken link better than the link does.
        (Ok(_), Err(p)) => Err(p),
        (Err(e), Err(p)) => Err(anyhow::anyhow!("{e:#} (and the benchmark peer: {p:#})")),
    }
}
