//! The Linux back-end of [`crate::sys`].

mod errno;
mod futex;
mod memory;

pub(crate) use errno::{cvt, retry};
pub(crate) use futex::{futex_wait, futex_wake, Deadline, WaitOutcome};
pub(crate) use memory::{
    fd_len, memfd_create_sealed, page_size, shm_create, shm_open_existing, shm_unlink, Mapping,
};
mod signal;
pub(crate) use signal::{pid_alive, pid_running};
mod affinity;
mod fdpass;
mod process;
mod robust;
mod thread;
pub(crate) use affinity::*;
#[allow(unused_imports)]
pub(crate) use fdpass::*;
#[allow(unused_imports)]
pub(crate) use process::*;
#[allow(unused_imports)]
pub(crate) use robust::*;
#[allow(unused_imports)]
pub(crate) use thread::*;
mod eventfd;
#[allow(unused_imports)]
pub(crate) use eventfd::*;
