//! Start method `Fork`: fork the calling process.

use std::io;
use std::os::fd::OwnedFd;

use crate::process::bootstrap::{self, Bootstrap};
use crate::process::start::{forkserver, Exit, Launched};
use crate::sys;

/// Forks; the child runs `boot` with `fds` and exits.
pub(crate) fn start(boot: Bootstrap, fds: Vec<OwnedFd>) -> io::Result<Launched> {
    let parent = std::process::id();
    let daemon = boot.daemon;
    let pid = sys::fork_run(move || {
        forkserver::forget_inherited();
        if daemon && (sys::set_parent_death_kill().is_err() || sys::parent_pid() != parent) {
            return 1;
        }
        bootstrap::run(boot, fds)
    })?;
    // Not reaped yet, so the pid cannot have been reused.
    let pidfd = sys::pidfd_open(pid)?;
    Ok(Launched {
        pid,
        pidfd,
        exit: Exit::Reap,
    })
}
