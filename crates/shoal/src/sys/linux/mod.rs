//! The Linux back-end of [`crate::sys`].

mod errno;
mod futex;
mod memory;

pub(crate) use errno::{cvt, retry};
pub(crate) use futex::{futex_wait, futex_wake, Deadline, WaitOutcome};
pub(crate) use memory::{
    fd_len, memfd_create_sealed, page_size, shm_create, shm_open_existing, shm_unlink, Mapping,
};
mod affinity;
mod eventfd;
mod fdpass;
mod process;
mod robust;
mod signal;
mod thread;

pub(crate) use affinity::{
    current_cpu, set_thread_affinity, thread_affinity, thread_ids, EINVAL, ESRCH, MAX_CPU,
};
#[cfg(feature = "tokio")]
pub(crate) use eventfd::eventfd_async;
pub(crate) use eventfd::{eventfd_create, eventfd_drain, eventfd_signal};
pub(crate) use fdpass::{
    effective_uid, peer_credentials, recv_with_fds, send_with_fds, shutdown_socket,
    MAX_FDS_PER_MESSAGE,
};
pub(crate) use process::{
    at_exit, fork_run, ignore_sigpipe, parent_pid, pidfd_open, pidfd_signal, pidfd_wait,
    poll_readable, set_parent_death_kill, spawn_command_keeping, spawn_keeping, take_env,
    take_inherited_fd, EIO, SIGKILL, SIGTERM,
};
#[cfg(test)]
pub(crate) use robust::test_fork;
pub(crate) use robust::{
    thread_alive, RobustLink, FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS, ROBUST_FUTEX_OFFSET,
};
pub(crate) use signal::{pid_alive, pid_running};
pub(crate) use thread::{current_thread, ThreadCtx};
#[cfg(test)]
pub(crate) use thread::{current_tid, force_robust_fallback};
