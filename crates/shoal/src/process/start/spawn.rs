//! Start method `Spawn`: run the current executable again.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

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

    let mut cmd = Command::new("/proc/self/exe");
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    cmd.env(ENV, file.as_raw_fd().to_string());
    let mut keep = vec![file.as_raw_fd()];
    keep.extend(&boot.fds);
    let child = sys::spawn_keeping(&mut cmd, keep, boot.daemon)?;
    let pid = child.id();
    // Not reaped yet, so the pid cannot have been reused.
    let pidfd = sys::pidfd_open(pid)?;
    Ok(Launched {
        pid,
        pidfd,
        exit: Exit::Reap,
    })
}
