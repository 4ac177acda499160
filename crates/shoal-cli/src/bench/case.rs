//! What `shoal bench` measures: a table of cases (transport × pattern × message size),
//! each compared with the same pattern and size over the pattern's
//! [`baseline`](Pattern::baseline), measured in the same run.
//!
//! A new pattern is a [`Pattern`] variant with its [`sizes`](Pattern::sizes) and
//! [`baseline`](Pattern::baseline); a new transport is a [`Transport`] variant (see
//! [`transport`](super::transport)).

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::bench::transport::Transport;
use crate::output;

/// How the messages flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Pattern {
    /// One message there, the same size back; latency of the round trip.
    PingPong,
    /// One producer sends as fast as it can, one consumer reads: messages per second.
    Throughput,
    /// Two producer processes send as fast as they can, two consumer processes read
    /// (one shared queue; two independent pairs for transports that connect only two).
    #[value(name = "throughput-2x2")]
    #[serde(rename = "throughput-2x2")]
    Throughput2x2,
    /// Ping-pong of a small Python object (a dict of five fields, pickled by each
    /// transport as its users' calls do), from Python (`--python`).
    PingPongObject,
    /// Throughput of small Python objects, one per call, from Python (`--python`).
    ThroughputObject,
    /// Acquire + release of a lock nobody else wants, in one process: time per pair.
    LockUncontended,
    /// A process holding a lock is `SIGKILL`ed: time until another process learns of it.
    HolderDeath,
    /// A child process is started: time until the first instruction of its code.
    ProcessStart,
    /// A pool of two workers runs a trivial task per item, chunksize 1: tasks per
    /// second (the cost of handing out one task).
    PoolTask,
    /// A pool of two workers maps a trivial task over 10 M items (1 M with `--quick`),
    /// chunked automatically: items per second.
    PoolMap,
    /// One call through an executor of two workers, `submit(f, x).result()`, one at a
    /// time (`--python`): the round trip of one task.
    PoolSubmit,
}

impl Pattern {
    /// Every pattern, in report order.
    pub(crate) const ALL: &'static [Pattern] = &[
        Pattern::PingPong,
        Pattern::Throughput,
        Pattern::Throughput2x2,
        Pattern::PingPongObject,
        Pattern::ThroughputObject,
        Pattern::LockUncontended,
        Pattern::HolderDeath,
        Pattern::ProcessStart,
        Pattern::PoolTask,
        Pattern::PoolMap,
        Pattern::PoolSubmit,
    ];

    /// The name in case names, tables and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pattern::PingPong => "ping-pong",
            Pattern::Throughput => "throughput",
            Pattern::Throughput2x2 => "throughput-2x2",
            Pattern::PingPongObject => "ping-pong-object",
            Pattern::ThroughputObject => "throughput-object",
            Pattern::LockUncontended => "lock-uncontended",
            Pattern::HolderDeath => "holder-death",
            Pattern::ProcessStart => "process-start",
            Pattern::PoolTask => "pool-task",
            Pattern::PoolMap => "pool-map",
            Pattern::PoolSubmit => "pool-submit",
        }
    }

    /// What every case of this pattern is compared with.
    pub(crate) fn baseline(self) -> Transport {
        match self {
            // A worker process answering over a pipe, by hand, for the pool.
            Pattern::PingPong
            | Pattern::Throughput
            | Pattern::Throughput2x2
            | Pattern::PoolTask
            | Pattern::PoolMap => Transport::OsPipe,
            // Objects travel only between Python processes: against what Python has.
            Pattern::PingPongObject | Pattern::ThroughputObject => Transport::PyMpQueue,
            Pattern::LockUncontended => Transport::StdMutex,
            Pattern::HolderDeath => Transport::PidfdExit,
            Pattern::ProcessStart => Transport::CommandTrue,
            // Only Python has executors: against the standard library's.
            Pattern::PoolSubmit => Transport::PyProcessPoolExecutor,
        }
    }

    /// The message sizes this pattern is measured with (`[0]` for a pattern without
    /// messages, or whose messages are objects, not bytes: case names then leave the
    /// size out).
    pub(crate) fn sizes(self) -> &'static [usize] {
        match self {
            Pattern::PingPong | Pattern::Throughput | Pattern::Throughput2x2 => MESSAGE_SIZES,
            Pattern::PingPongObject
            | Pattern::ThroughputObject
            | Pattern::LockUncontended
            | Pattern::HolderDeath
            | Pattern::ProcessStart
            | Pattern::PoolTask
            | Pattern::PoolMap
            | Pattern::PoolSubmit => &[0],
        }
    }
}

/// Message sizes every message-passing transport is measured with.
pub(crate) const MESSAGE_SIZES: &[usize] = &[8, 64, 1024, 64 * 1024, 1024 * 1024];

/// The message sizes `--quick` keeps: the small-message and the large-message ends.
pub(crate) const QUICK_SIZES: &[usize] = &[8, 64, 1024 * 1024];

/// One measurement to make: a transport, a pattern and a message size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Case {
    pub(crate) transport: Transport,
    pub(crate) pattern: Pattern,
    pub(crate) size: usize,
}

impl Case {
    /// `ping-pong/1KiB/unix-socket`: what the filter matches and the JSON names.
    pub(crate) fn name(&self) -> String {
        if self.pattern.sizes() == [0] {
            return format!("{}/{}", self.pattern.name(), self.transport.name());
        }
        format!(
            "{}/{}/{}",
            self.pattern.name(),
            output::bytes(self.size as u64).replace(' ', ""),
            self.transport.name()
        )
    }

    /// The same measurement over the pattern's baseline.
    pub(crate) fn baseline(&self) -> Case {
        Case {
            transport: self.pattern.baseline(),
            ..*self
        }
    }

    /// The raw socket of the same kind a `shoal::net` case is compared with (same
    /// pattern and size), measured in the same run.
    pub(crate) fn raw_socket(&self) -> Option<Case> {
        let transport = match self.transport {
            Transport::ShoalNetUnix => Transport::UnixSocket,
            Transport::ShoalNetTcp => Transport::TcpLoopback,
            _ => return None,
        };
        Some(Case { transport, ..*self })
    }

    /// Every case, in report order: by pattern, then size, then transport.
    pub(crate) fn all() -> Vec<Case> {
        let mut cases = Vec::new();
        for &pattern in Pattern::ALL {
            for &size in pattern.sizes() {
                for &transport in Transport::ALL {
                    if transport.supports(pattern, size) {
                        cases.push(Case {
                            transport,
                            pattern,
                            size,
                        });
                    }
                }
            }
        }
        cases
    }

    /// Whether `--quick` keeps this case (a pattern without messages, or a size of
    /// [`QUICK_SIZES`]).
    pub(crate) fn in_quick_run(&self) -> bool {
        self.pattern.sizes() == [0] || QUICK_SIZES.contains(&self.size)
    }

    /// The cases whose name contains `filter`, with the baselines they are compared
    /// with, in report order, among those `keep` accepts.
    pub(crate) fn selected(filter: Option<&str>, keep: impl Fn(&Case) -> bool) -> Vec<Case> {
        let all: Vec<Case> = Case::all().into_iter().filter(|c| keep(c)).collect();
        let wanted: Vec<Case> = all
            .iter()
            .filter(|c| filter.is_none_or(|f| c.name().contains(f)))
            .copied()
            .collect();
        all.into_iter()
            .filter(|c| {
                wanted.contains(c)
                    || wanted
                        .iter()
                        .any(|w| w.baseline() == *c || w.raw_socket() == Some(*c))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_its_baseline_and_stream_transports_every_size() {
        let all = Case::all();
        for case in &all {
            assert!(all.contains(&case.baseline()), "{}", case.name());
        }
        let names: Vec<String> = all.iter().map(Case::name).collect();
        for want in [
            "ping-pong/8B/os-pipe",
            "throughput/64KiB/unix-socket",
            "ping-pong/8B/shm-spin",
            "ping-pong/8B/shoal-event",
            "lock-uncontended/std-mutex",
            "lock-uncontended/shoal-lock",
            "holder-death/pidfd-exit",
            "holder-death/shoal-lock",
            "process-start/command-bin-true",
            "process-start/shoal-forkserver",
            "process-start/shoal-spawn",
            "process-start/shoal-fork",
            "ping-pong/64B/shoal-queue",
            "ping-pong/1MiB/shm-spin",
            "throughput/64B/shoal-queue-batch",
            "throughput/1MiB/shoal-queue-zero-copy",
            "throughput/8B/shoal-pipe",
            "throughput-2x2/64B/shoal-queue",
            "throughput-2x2/64B/shoal-queue-batch",
            "throughput-2x2/64KiB/unix-socket",
            "throughput/64B/py-mp-queue",
            "ping-pong/1MiB/py-faster-fifo",
            "throughput/8B/py-shoal-queue",
            "throughput/1MiB/py-shoal-simplequeue",
            "ping-pong/64B/py-shoal-pipe",
            "throughput-object/py-mp-queue",
            "throughput-object/py-shoal-queue",
            "throughput-object/py-faster-fifo",
            "ping-pong-object/py-shoal-pipe",
            "ping-pong-object/py-mp-pipe",
            "pool-task/os-pipe",
            "pool-task/shoal-pool",
            "pool-task/py-mp-pool",
            "pool-task/py-process-pool-executor",
            "pool-map/os-pipe",
            "pool-map/shoal-pool",
            "throughput/64KiB/shoal-net-unix",
            "throughput/64KiB/shoal-net-tcp",
            "ping-pong/8B/shoal-net-tcp",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        let streams = all
            .iter()
            .filter(|c| c.pattern == Pattern::Throughput && c.transport.is_stream())
            .count();
        assert_eq!(streams, 3 * MESSAGE_SIZES.len());
    }

    #[test]
    fn a_filter_keeps_the_baselines_it_needs() {
        let sel = Case::selected(Some("ping-pong/1KiB/unix"), |_| true);
        let names: Vec<String> = sel.iter().map(Case::name).collect();
        assert_eq!(
            names,
            ["ping-pong/1KiB/os-pipe", "ping-pong/1KiB/unix-socket"]
        );
        assert!(Case::selected(Some("no such case"), |_| true).is_empty());
        // `shoal bench pool` and `shoal bench net` select those cases and their
        // baselines only.
        let names: Vec<String> = Case::selected(Some("pool"), |_| true)
            .iter()
            .map(Case::name)
            .collect();
        assert_eq!(
            names,
            [
                "pool-task/os-pipe",
                "pool-task/shoal-pool",
                "pool-task/py-mp-pool",
                "pool-task/py-process-pool-executor",
                "pool-task/py-shoal-pool",
                "pool-map/os-pipe",
                "pool-map/shoal-pool",
                "pool-map/py-mp-pool",
                "pool-map/py-shoal-pool",
                "pool-submit/py-process-pool-executor",
                "pool-submit/py-shoal-executor"
            ]
        );
        let net = Case::selected(Some("net"), |_| true);
        for (shoal, raw) in [
            (Transport::ShoalNetUnix, Transport::UnixSocket),
            (Transport::ShoalNetTcp, Transport::TcpLoopback),
        ] {
            let count = |t: Transport| net.iter().filter(|c| c.transport == t).count();
            assert_eq!(count(shoal), 2 * MESSAGE_SIZES.len());
            assert_eq!(count(raw), 2 * MESSAGE_SIZES.len());
        }
        assert_eq!(net.len(), 5 * 2 * MESSAGE_SIZES.len());
        let names: Vec<String> = Case::selected(Some("holder-death/shoal"), |_| true)
            .iter()
            .map(Case::name)
            .collect();
        assert_eq!(
            names,
            ["holder-death/pidfd-exit", "holder-death/shoal-lock"]
        );
        assert_eq!(Case::selected(None, |_| true).len(), Case::all().len());
        let quick = Case::selected(None, Case::in_quick_run);
        assert!(quick.iter().all(|c| c.size != 1024));
        assert!(quick
            .iter()
            .any(|c| c.name() == "throughput/1MiB/shoal-queue-zero-copy"));
    }
}
