//! The transports `shoal bench` compares, and the other mechanisms it measures.
//!
//! A new transport plugs in as one [`Transport`] variant and four match arms: its
//! [`name`](Transport::name), the patterns and sizes it
//! [`supports`](Transport::supports), the parent side in
//! [`measure`](Transport::measure) and, for a byte stream, the peer side in
//! [`peer`](Transport::peer) (run in the re-executed `shoal __bench-peer`). A transport
//! that carries bytes reuses [`stream`]'s patterns through a [`Link`](stream::Link)
//! variant. A shoal object (an `Event`, a `Lock`, shared memory) is created by the
//! parent and handed to a peer that is a shoal [`Process`](shoal::Process) started with
//! the object as its argument; it gets its own module with a `measure` function and the
//! peer's entry function (see [`event`] and [`spin`]).
//!
//! For the patterns that carry no messages (lock, holder death, process start) a
//! "transport" is the mechanism measured: `std::sync::Mutex` against `shoal::Lock`, the
//! kernel's exit notice against a lock's `OwnerDied`, `Command` against shoal's start
//! methods.

use clap::ValueEnum;
use serde::Serialize;

use crate::bench::case::{Case, Pattern};
use crate::bench::measure::Measure;
use crate::bench::{channel, event, lock, net, pool, python, spin, start, stream, Conditions};

/// A way for two processes to exchange messages, or the mechanism a pattern measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Transport {
    /// An OS pipe in each direction (the peer's stdin and stdout): the baseline of the
    /// message patterns.
    OsPipe,
    /// A connected Unix stream socket pair.
    UnixSocket,
    /// A TCP connection over the loopback interface (`TCP_NODELAY`).
    TcpLoopback,
    /// Two processes spinning on words of one shared-memory segment: the physical floor
    /// of a round trip, with no system call on the way.
    ShmSpin,
    /// A word in shared memory, signalled by a shoal `Event` in each direction.
    ShoalEvent,
    /// A shoal `Pipe` (`send_bytes` / `recv_bytes_into`), one message per call.
    ShoalPipe,
    /// A shoal `Queue` of raw bytes (`put_bytes` / `get_bytes_into`), one message per
    /// call.
    ShoalQueue,
    /// A shoal `Queue` of raw bytes in batches (`put_bytes_many` / `get_bytes_with`).
    ShoalQueueBatch,
    /// A shoal `Queue` written in place (`reserve` → `WriteSlot` → `commit`) and read in
    /// place (`get_many_in_place`).
    ShoalQueueZeroCopy,
    /// Python's `multiprocessing.Queue` (`--python`).
    PyMpQueue,
    /// Python's `multiprocessing.SimpleQueue` (`--python`).
    #[value(name = "py-mp-simplequeue")]
    #[serde(rename = "py-mp-simplequeue")]
    PyMpSimpleQueue,
    /// Python's `multiprocessing.Pipe` with `send_bytes` / `recv_bytes` (`--python`).
    PyMpPipe,
    /// faster-fifo's `Queue` of raw bytes, `put_many` / `get_many` (`--python`, when
    /// installed); of objects, `put` / `get`.
    PyFasterFifo,
    /// The package `shoal`'s `Queue` from Python, `put` / `get` (`--python`, when the
    /// interpreter can import it).
    PyShoalQueue,
    /// The package `shoal`'s `SimpleQueue` from Python (`--python`).
    #[value(name = "py-shoal-simplequeue")]
    #[serde(rename = "py-shoal-simplequeue")]
    PyShoalSimpleQueue,
    /// The package `shoal`'s `Pipe` from Python, `send_bytes` / `recv_bytes` (objects:
    /// `send` / `recv`) (`--python`).
    PyShoalPipe,
    /// `std::sync::Mutex`, in one process: the baseline of uncontended locking.
    StdMutex,
    /// The kernel's notice that a `SIGKILL`ed process ended (its pidfd turns
    /// readable): the baseline of holder death.
    PidfdExit,
    /// `std::process::Command::new("/bin/true")`, spawned and waited for: the baseline
    /// of process start.
    CommandTrue,
    /// shoal's robust `Lock`.
    ShoalLock,
    /// A shoal `Process` started through the forkserver.
    ShoalForkServer,
    /// A shoal `Process` started by re-running the executable.
    ShoalSpawn,
    /// A shoal `Process` started by `fork()` of the calling process.
    ShoalFork,
    /// A `shoal::net::Connection` over a Unix socket (authenticated; compared with
    /// `unix-socket` too).
    ShoalNetUnix,
    /// A `shoal::net::Connection` over TCP loopback (authenticated; compared with
    /// `tcp-loopback` too).
    ShoalNetTcp,
    /// A `shoal::Pool` of two workers.
    ShoalPool,
    /// Python's `multiprocessing.Pool(2)`, `map(f, range(n), chunksize=1)`
    /// (`--python`).
    PyMpPool,
    /// Python's `concurrent.futures.ProcessPoolExecutor(2)`, `submit` then `result`
    /// (`--python`).
    PyProcessPoolExecutor,
    /// The package `shoal`'s `Pool(2)` from Python: `map(f, range(n), chunksize=1)`,
    /// or `map` chunked by the pool (`--python`).
    PyShoalPool,
    /// The package `shoal`'s `futures.ProcessPoolExecutor(2)` from Python, `submit`
    /// then `result` (`--python`).
    PyShoalExecutor,
}

impl Transport {
    /// Every transport, in the order the report lists them (each pattern's baseline
    /// before the transports compared with it).
    pub(crate) const ALL: &'static [Transport] = &[
        Transport::OsPipe,
        Transport::UnixSocket,
        Transport::TcpLoopback,
        Transport::ShmSpin,
        Transport::ShoalEvent,
        Transport::ShoalPipe,
        Transport::ShoalQueue,
        Transport::ShoalQueueBatch,
        Transport::ShoalQueueZeroCopy,
        Transport::PyMpQueue,
        Transport::PyMpSimpleQueue,
        Transport::PyMpPipe,
        Transport::PyFasterFifo,
        Transport::PyShoalQueue,
        Transport::PyShoalSimpleQueue,
        Transport::PyShoalPipe,
        Transport::StdMutex,
        Transport::PidfdExit,
        Transport::CommandTrue,
        Transport::ShoalLock,
        Transport::ShoalForkServer,
        Transport::ShoalSpawn,
        Transport::ShoalFork,
        Transport::ShoalNetUnix,
        Transport::ShoalNetTcp,
        Transport::ShoalPool,
        Transport::PyMpPool,
        Transport::PyProcessPoolExecutor,
        Transport::PyShoalPool,
        Transport::PyShoalExecutor,
    ];

    /// The name in case names, tables and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::OsPipe => "os-pipe",
            Transport::UnixSocket => "unix-socket",
            Transport::TcpLoopback => "tcp-loopback",
            Transport::ShmSpin => "shm-spin",
            Transport::ShoalEvent => "shoal-event",
            Transport::ShoalPipe => "shoal-pipe",
            Transport::ShoalQueue => "shoal-queue",
            Transport::ShoalQueueBatch => "shoal-queue-batch",
            Transport::ShoalQueueZeroCopy => "shoal-queue-zero-copy",
            Transport::PyMpQueue => "py-mp-queue",
            Transport::PyMpSimpleQueue => "py-mp-simplequeue",
            Transport::PyMpPipe => "py-mp-pipe",
            Transport::PyFasterFifo => "py-faster-fifo",
            Transport::PyShoalQueue => "py-shoal-queue",
            Transport::PyShoalSimpleQueue => "py-shoal-simplequeue",
            Transport::PyShoalPipe => "py-shoal-pipe",
            Transport::StdMutex => "std-mutex",
            Transport::PidfdExit => "pidfd-exit",
            Transport::CommandTrue => "command-bin-true",
            Transport::ShoalLock => "shoal-lock",
            Transport::ShoalForkServer => "shoal-forkserver",
            Transport::ShoalSpawn => "shoal-spawn",
            Transport::ShoalFork => "shoal-fork",
            Transport::ShoalNetUnix => "shoal-net-unix",
            Transport::ShoalNetTcp => "shoal-net-tcp",
            Transport::ShoalPool => "shoal-pool",
            Transport::PyMpPool => "py-mp-pool",
            Transport::PyProcessPoolExecutor => "py-process-pool-executor",
            Transport::PyShoalPool => "py-shoal-pool",
            Transport::PyShoalExecutor => "py-shoal-executor",
        }
    }

    /// Whether this transport can run `pattern` with messages of `size` bytes.
    pub(crate) fn supports(self, pattern: Pattern, size: usize) -> bool {
        match self {
            // The hand-rolled worker the pool is compared with.
            Transport::OsPipe if matches!(pattern, Pattern::PoolTask | Pattern::PoolMap) => true,
            Transport::OsPipe
            | Transport::UnixSocket
            | Transport::TcpLoopback
            | Transport::ShoalPipe
            | Transport::ShoalQueue => matches!(
                pattern,
                Pattern::PingPong | Pattern::Throughput | Pattern::Throughput2x2
            ),
            Transport::ShoalQueueBatch => {
                matches!(pattern, Pattern::Throughput | Pattern::Throughput2x2)
            }
            // Large messages are where writing in place saves a copy.
            Transport::ShoalQueueZeroCopy => pattern == Pattern::Throughput && size >= 1 << 20,
            // The floor: a single-producer ring of fixed slots, and a spun round trip.
            Transport::ShmSpin => matches!(pattern, Pattern::PingPong | Pattern::Throughput),
            Transport::PyMpQueue
            | Transport::PyMpSimpleQueue
            | Transport::PyMpPipe
            | Transport::PyFasterFifo
            | Transport::PyShoalQueue
            | Transport::PyShoalSimpleQueue
            | Transport::PyShoalPipe => matches!(
                pattern,
                Pattern::PingPong
                    | Pattern::Throughput
                    | Pattern::PingPongObject
                    | Pattern::ThroughputObject
            ),
            // One 8-byte word each way: compared with the 8-byte stream round trips.
            Transport::ShoalEvent => pattern == Pattern::PingPong && size == 8,
            Transport::StdMutex => pattern == Pattern::LockUncontended,
            Transport::PidfdExit => pattern == Pattern::HolderDeath,
            Transport::ShoalLock => {
                matches!(pattern, Pattern::LockUncontended | Pattern::HolderDeath)
            }
            Transport::CommandTrue
            | Transport::ShoalForkServer
            | Transport::ShoalSpawn
            | Transport::ShoalFork => pattern == Pattern::ProcessStart,
            Transport::ShoalNetUnix | Transport::ShoalNetTcp => {
                matches!(pattern, Pattern::PingPong | Pattern::Throughput)
            }
            Transport::ShoalPool => matches!(pattern, Pattern::PoolTask | Pattern::PoolMap),
            Transport::PyMpPool | Transport::PyShoalPool => {
                matches!(pattern, Pattern::PoolTask | Pattern::PoolMap)
            }
            Transport::PyProcessPoolExecutor => {
                matches!(pattern, Pattern::PoolTask | Pattern::PoolSubmit)
            }
            Transport::PyShoalExecutor => pattern == Pattern::PoolSubmit,
        }
    }

    /// Whether this is a byte stream of the kernel (pipe, socket).
    #[cfg(test)]
    pub(crate) fn is_stream(self) -> bool {
        matches!(
            self,
            Transport::OsPipe | Transport::UnixSocket | Transport::TcpLoopback
        )
    }

    /// Whether this is measured by the Python script (`--python`).
    pub(crate) fn is_python(self) -> bool {
        matches!(
            self,
            Transport::PyMpQueue
                | Transport::PyMpSimpleQueue
                | Transport::PyMpPipe
                | Transport::PyFasterFifo
                | Transport::PyMpPool
                | Transport::PyProcessPoolExecutor
        ) || self.is_python_package()
    }

    /// Whether this is one of the package `shoal`'s objects, measured from Python.
    pub(crate) fn is_python_package(self) -> bool {
        matches!(
            self,
            Transport::PyShoalQueue
                | Transport::PyShoalSimpleQueue
                | Transport::PyShoalPipe
                | Transport::PyShoalPool
                | Transport::PyShoalExecutor
        )
    }

    /// Runs the parent side of one case (starting its peer process, if it has one).
    pub(crate) fn measure(self, case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
        if matches!(
            case.pattern,
            Pattern::PoolTask | Pattern::PoolMap | Pattern::PoolSubmit
        ) {
            return pool::measure(case, how);
        }
        match self {
            Transport::OsPipe | Transport::UnixSocket | Transport::TcpLoopback => {
                if case.pattern == Pattern::Throughput2x2 {
                    return stream::two_pairs(case, how);
                }
                let (mut link, peer) = stream::Link::spawn(case, how)?;
                let measure = stream::measure(&mut link, case, how.budget);
                // Closing our end lets the peer see end-of-file and exit.
                drop(link);
                combine(measure, peer.finish())
            }
            Transport::ShoalPipe
            | Transport::ShoalQueue
            | Transport::ShoalQueueBatch
            | Transport::ShoalQueueZeroCopy => channel::measure(case, how),
            Transport::PyMpQueue
            | Transport::PyMpSimpleQueue
            | Transport::PyMpPipe
            | Transport::PyFasterFifo
            | Transport::PyShoalQueue
            | Transport::PyShoalSimpleQueue
            | Transport::PyShoalPipe => python::measure(case, how),
            Transport::ShmSpin => match case.pattern {
                Pattern::Throughput => spin::throughput(case.size, how),
                _ => spin::measure(case.size, how),
            },
            Transport::ShoalEvent => event::measure(how),
            Transport::StdMutex | Transport::ShoalLock | Transport::PidfdExit => {
                match case.pattern {
                    Pattern::HolderDeath => lock::holder_death(self, how),
                    _ => lock::uncontended(self, how),
                }
            }
            Transport::CommandTrue
            | Transport::ShoalForkServer
            | Transport::ShoalSpawn
            | Transport::ShoalFork => start::measure(self, how),
            Transport::ShoalNetUnix | Transport::ShoalNetTcp => net::measure(case, how),
            Transport::ShoalPool
            | Transport::PyMpPool
            | Transport::PyProcessPoolExecutor
            | Transport::PyShoalPool
            | Transport::PyShoalExecutor => pool::measure(case, how),
        }
    }

    /// Runs the peer side of one case in this (re-executed) process.
    pub(crate) fn peer(self, case: &Case) -> anyhow::Result<()> {
        match self {
            Transport::OsPipe | Transport::UnixSocket | Transport::TcpLoopback => {
                stream::peer(&mut stream::Link::for_peer(self)?, case)
            }
            _ => anyhow::bail!(
                "{} has no `__bench-peer` side (its peer is a shoal process)",
                self.name()
            ),
        }
    }
}

/// The result of a case from what the parent measured and how the peer ended.
pub(crate) fn combine(
    measure: anyhow::Result<Measure>,
    peer: anyhow::Result<()>,
) -> anyhow::Result<Measure> {
    match (measure, peer) {
        (Ok(m), Ok(())) => Ok(m),
        (Err(e), Ok(())) => Err(e),
        // A peer that failed explains a broken link better than the link does.
        (Ok(_), Err(p)) => Err(p),
        (Err(e), Err(p)) => Err(anyhow::anyhow!("{e:#} (and the benchmark peer: {p:#})")),
    }
}
