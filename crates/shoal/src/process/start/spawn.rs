//! Start method `Spawn`: run the current executable again.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::codec;
use crate::process::bootstrap::{Bootstrap, ENV};
use crate::process::start::{Exit, Launched};
use crate::sys;

/// Spawns a copy of the current executable that runs `boot`, inheriting `fds`.
pub(crate) fn start(mut boot: Bootstrap, fds: Vec<OwnedFd>) -> io::Result<Launched> {
    // The descriptors keep their numbers in the child (see `sys::spawn_keeping`); they
    // are private close-on-exec duplicates here, so no other child inherits them.
    boot.fds = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let bytes = codec::encode(&boot).map_err(io::Error::other)?;
    let memfd = sys::memfd_create_sealed("shoal-bootstrap", 0)?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(&bytes)?;

    let arg0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "/proc/self/exe".into());
    let mut keep = vec![file.as_raw_fd()];
    keep.extend(&boot.fds);
    let env = [(ENV, file.as_raw_fd().to_string().into())];
    // A daemon's parent-death signal is armed by the child itself, before `main`
    // (`bootstrap::before_main`), so that nothing has to run between fork and exec.
    let pid = sys::spawn_keeping("/proc/self/exe".as_ref(), &[arg0], &env, &keep)?;
    // Not reaped yet, so the pid cannot have been reused.
    let pidfd = sys::pidfd_open(pid)?;
    Ok(Launched {
        pid,
        pidfd,
        exit: Exit::Reap,
    })
}
