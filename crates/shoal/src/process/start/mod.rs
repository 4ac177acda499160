//! The three ways to start a child, side by side.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod spawn;

/// How a child process is started (Python's start methods).
///
/// # Which of the parent's descriptors a child has
///
/// Shoal objects in the arguments (segments, locks, queues, pipe ends, `Value`s) reach
/// the child under every method: they travel as descriptors beside the arguments. Any
/// other descriptor (a file, a socket, a `std::process::Child`'s pipe) is a number that
/// means something in the child only where the child inherited it:
///
/// | method | standard input, output, error | other descriptors of the parent |
/// |---|---|---|
/// | `Spawn` | the parent's, at `start` | none: Rust opens every descriptor close-on-exec, and `exec` closes them (a descriptor without `FD_CLOEXEC` stays open) |
/// | `ForkServer` | the forkserver's: the parent's at the *first* `ForkServer` start | none of the parent's; only what the forkserver itself held when it started |
/// | `Fork` | the parent's, at `start` | every one open at `start` (no `exec`: close-on-exec changes nothing) |
///
/// So code that works on a descriptor number under `Fork` finds it missing (or worse,
/// another file under that number) under the default `ForkServer`. Wrap a socket, a
/// listener or a file in [`handoff::Fd`](crate::handoff::Fd) inside the arguments: it
/// then travels as shoal objects do, under every method.
///
/// # Examples
/// ```
/// use shoal::process::StartMethod;
/// assert_eq!(StartMethod::default(), StartMethod::ForkServer);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum StartMethod {
    /// Runs the current executable again (`/proc/self/exe`, the same file even if it was
    /// replaced on disk); the child takes over before `main` and runs the entry. Slowest,
    /// but the child shares nothing with the parent but the arguments.
    ///
    /// Most of a spawned child's start is the loading of the executable (the dynamic
    /// loader, its libraries, the relocations and the page faults they cause). A static,
    /// non-PIE executable (`-C target-feature=+crt-static -C relocation-model=static` on
    /// the final crate, as `scripts/shoal.sh` builds the `shoal` command) starts in
    /// about half the time, and a forkserver that is such a copy forks faster too.
    Spawn,
    /// Asks a helper process to fork a child. The helper is spawned on first use, stays
    /// single-threaded and clean, and exits with this process; children start as fast as
    /// a `fork` and are as safe as a spawn, whatever threads the parent runs.
    ///
    /// As in Python, children see the environment variables and working directory the
    /// forkserver started with (at the first `ForkServer` start), not later changes.
    #[default]
    ForkServer,
    /// `fork()`s the calling process; the child runs the entry on a copy of the caller's
    /// memory. Fastest, but only the calling thread exists in the child: a lock another
    /// thread held at the time of the fork (an allocator's, stdout's, a user mutex) stays
    /// locked forever there. Safe only when the program has a single thread, or when the
    /// entry touches nothing such a thread could hold.
    Fork,
}

/// How the exit code of a started child reaches its parent.
pub(crate) enum Exit {
    /// The child is ours: `waitid` on its pidfd.
    Reap,
    /// The forkserver reaps it and writes the exit code (an `i32`, little-endian) on
    /// `status`; end of file without a code means the forkserver (pid `server`) died.
    Relayed { status: UnixStream, server: u32 },
}

/// A child that was started.
pub(crate) struct Launched {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) exit: Exit,
}
