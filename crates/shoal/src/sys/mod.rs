//! Every operating-system call shoal makes, behind one contract.
//!
//! The layers above never call `libc` themselves; they call the functions re-exported
//! here. A platform back-end provides:
//!
//! | area | what the back-end must provide |
//! |---|---|
//! | errors | [`cvt`] / [`retry`]: turn `-1` + `errno` into [`std::io::Error`], retrying `EINTR` |
//! | futex | `futex_wait(word, expected, deadline)` and `futex_wake(word, n)` on a 32-bit word that may live in memory shared between processes |
//! | memory | anonymous sealed segments (`memfd_create` + `F_SEAL_SHRINK`), named segments (`shm_open`, mode 0600), `mmap` of either as [`Mapping`] |
//! | threads | a cached thread id valid across `fork`, and the robust-lock list the kernel walks when a thread dies |
//! | processes | pidfd open/poll/signal, `waitpid`, `prctl(PR_SET_PDEATHSIG)`, descriptor passing |
//! | events | `eventfd` readiness descriptors |
//!
//! Linux is the only back-end today. A new platform adds a sibling of `linux/` that
//! implements the same functions with the same signatures, so that nothing above `sys`
//! changes.
// Every OS call (FFI) lives in `sys`: the crate denies unsafe code elsewhere.
#![allow(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "shoal has a Linux back-end only; a new platform implements the contract in src/sys/mod.rs"
);

mod linux;

pub(crate) use linux::*;
