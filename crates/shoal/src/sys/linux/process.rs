//! Processes: pidfds, waiting, signals, `fork`, spawning with inherited descriptors, and
//! the hook that runs before `main` so that a child can take over any binary.
//!
//! Supervision goes through pidfds: a pidfd names one process for good, so a signal sent
//! through it can never reach another process that reused the pid, and it becomes
//! readable when the process ends (that is the `sentinel` the layers above wait on).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::sys::{cvt, retry};

/// Opens a pidfd on `pid`.
///
/// Race-free only while the process cannot have been reaped and its pid reused: for a
/// child of the caller that the caller has not waited for yet.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: pidfd_open takes a pid and a flags word; no memory is passed.
    let fd = retry(|| unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just returned this descriptor (close-on-exec) and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `SIGTERM`: asks a process to stop.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
/// `SIGKILL`: kills a process.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;
/// The errno of a failure that has no errno of its own.
pub(crate) const EIO: i32 = libc::EIO;

/// Sends `signal` to the process behind `pidfd`: `Ok(false)` when the process has
/// already ended (and cannot be signalled any more).
pub(crate) fn pidfd_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<bool> {
    match pidfd_send_signal(pidfd, signal) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a null siginfo pointer asks the kernel to fill in the default (as kill());
    // the other arguments are plain integers.
    retry(|| unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

fn poll_timeout_ms(deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            // Round up so that a wait never returns before its deadline.
            let ms = left.as_micros().div_ceil(1000);
            ms.min(i32::MAX as u128) as libc::c_int
        }
    }
}

/// Waits until at least one of `fds` is readable (or hung up), or `timeout` passes.
/// Returns which descriptors are ready; all `false` after a timeout.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let ms = poll_timeout_ms(deadline);
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structures that the
        // kernel may write `revents` into during the call.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() < d) {
                    continue;
                }
                return Ok(vec![false; pfds.len()]);
            }
            Ok(_) => return Ok(pfds.iter().map(|p| p.revents != 0).collect()),
        }
    }
}

/// Turns a `waitid` result into Python's exit-code convention: the exit status, or the
/// negated signal number for a process killed by a signal.
fn exit_code_of(info: &libc::siginfo_t) -> i32 {
    // SAFETY: waitid filled in a SIGCHLD siginfo, for which si_status is the valid union
    // member.
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => status,
        _ => -status,
    }
}

/// Reaps the child behind `pidfd` (a child of the caller) and returns its exit code in
/// Python's convention; `Ok(None)` when `block` is false and it is still running.
pub(crate) fn pidfd_wait(pidfd: BorrowedFd<'_>, block: bool) -> io::Result<Option<i32>> {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
    // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
    retry(|| unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            flags,
        )
    })?;
    // SAFETY: as above: the siginfo was written by waitid (or left zeroed).
    if unsafe { info.si_pid() } == 0 {
        return Ok(None);
    }
    Ok(Some(exit_code_of(&info)))
}

/// Asks the kernel to SIGKILL the calling process when the thread that created it ends.
pub(crate) fn set_parent_death_kill() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; no memory is passed.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) })?;
    Ok(())
}

/// The pid of the parent of the calling process.
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid cannot fail and touches no memory.
    unsafe { libc::getppid() as u32 }
}

/// Starts the program `path` with the arguments `args` (the first is the program's
/// `argv[0]`) and the environment of the calling process plus `env` (which replaces a
/// variable of the same name), so that the descriptors `keep` (close-on-exec in the
/// caller) are inherited by the new program under the same numbers. Returns the child's
/// pid; the caller reaps it.
///
/// Goes through `posix_spawn`, which glibc runs as `clone(CLONE_VM | CLONE_VFORK)` and
/// `exec`: the caller's memory is never copied (a `fork`, which `Command::pre_exec`
/// forces, copies the page tables of the whole process, the larger the slower), and a
/// failed `exec` is reported here as an error. The child starts with an empty signal mask
/// and `SIGPIPE` at its default, as `std::process::Command` leaves it. Anything more a
/// child needs before its entry (the parent-death signal) it sets up itself, before
/// `main` (see `process::bootstrap`).
///
/// Keeping the numbers (instead of `dup2`-ing to fixed targets) means no target can
/// collide with another descriptor of the child. `dup2(fd, fd)` in the file actions
/// clears close-on-exec on `fd` in the child only (POSIX 2024; glibc since 2.29), so no
/// other child started meanwhile by another thread inherits it.
pub(crate) fn spawn_keeping(
    path: &OsStr,
    args: &[OsString],
    env: &[(&str, OsString)],
    keep: &[RawFd],
) -> io::Result<u32> {
    let path = c_string(path.as_bytes())?;
    let args = args
        .iter()
        .map(|a| c_string(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut vars = Vec::new();
    for (key, value) in std::env::vars_os() {
        if env.iter().all(|(k, _)| OsStr::new(k) != key) {
            vars.push(c_string(
                &[key.as_bytes(), b"=", value.as_bytes()].concat(),
            )?);
        }
    }
    for (key, value) in env {
        vars.push(c_string(
            &[key.as_bytes(), b"=", value.as_bytes()].concat(),
        )?);
    }
    let argv = null_terminated(&args);
    let envp = null_terminated(&vars);

    let mut actions = FileActions::new()?;
    for &fd in keep {
        // SAFETY: `actions` is initialised; adddup2 copies the two integers into it.
        errno_result(unsafe { libc::posix_spawn_file_actions_adddup2(&mut actions.0, fd, fd) })?;
    }
    let mut attr = SpawnAttr::new()?;
    // SAFETY: sigset_t is plain old data, filled in by sigemptyset before any use.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut pipe_only: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: each call writes only into the sigset or attribute object it is given, all
    // of them initialised and exclusively borrowed here.
    unsafe {
        libc::sigemptyset(&mut empty);
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        errno_result(libc::posix_spawnattr_setsigmask(&mut attr.0, &empty))?;
        errno_result(libc::posix_spawnattr_setsigdefault(&mut attr.0, &pipe_only))?;
        errno_result(libc::posix_spawnattr_setflags(
            &mut attr.0,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
        ))?;
    }
    let mut pid: libc::pid_t = 0;
    // SAFETY: `path` is a NUL-terminated string; `argv` and `envp` are null-terminated
    // arrays of pointers to NUL-terminated strings (`args` and `vars`, alive until the
    // call returns); `actions` and `attr` are initialised; `pid` is writable. The child
    // shares our memory only until it has called `exec` (glibc runs it on its own stack
    // and touches none of ours).
    errno_result(unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &actions.0,
            &attr.0,
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    Ok(pid as u32)
}

/// Spawns the program of `cmd` (a `std::process::Command`, for its stdio plumbing) so
/// that the descriptors `keep` (close-on-exec in the caller) are inherited by the new
/// program under the same numbers.
///
/// A `pre_exec` hook clears close-on-exec on them between fork and exec, which makes
/// std fork the whole caller instead of using `posix_spawn`: this is for starting other
/// programs with their own stdio set up by `Command`; shoal's own children go through
/// [`spawn_keeping`].
pub(crate) fn spawn_command_keeping(cmd: &mut Command, keep: Vec<RawFd>) -> io::Result<Child> {
    let hook = move || -> io::Result<()> {
        // Only async-signal-safe calls here: this runs between fork and exec.
        for &fd in &keep {
            // SAFETY: fcntl(F_SETFD) takes an integer argument; an invalid fd gives
            // EBADF.
            cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) })?;
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec and makes only
    // async-signal-safe calls (fcntl); it allocates nothing (`keep` was built in the
    // parent) and takes no lock.
    unsafe { cmd.pre_exec(hook) };
    cmd.spawn()
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{:?} contains a NUL byte and cannot be passed to a program",
                String::from_utf8_lossy(bytes)
            ),
        )
    })
}

/// The pointers of `strings` followed by a null pointer, as `exec` takes them.
fn null_terminated(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// The posix_spawn functions return the error number instead of setting `errno`.
fn errno_result(code: libc::c_int) -> io::Result<()> {
    match code {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// A `posix_spawn_file_actions_t`, destroyed when dropped.
struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<Self> {
        // SAFETY: the structure is plain old data until init fills it in.
        let mut raw: libc::posix_spawn_file_actions_t = unsafe { std::mem::zeroed() };
        // SAFETY: `raw` is writable; init makes it a valid, empty list of actions.
        errno_result(unsafe { libc::posix_spawn_file_actions_init(&mut raw) })?;
        Ok(Self(raw))
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once here.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// A `posix_spawnattr_t`, destroyed when dropped.
struct SpawnAttr(libc::posix_spawnattr_t);

impl SpawnAttr {
    fn new() -> io::Result<Self> {
        // SAFETY: the structure is plain old data until init fills it in.
        let mut raw: libc::posix_spawnattr_t = unsafe { std::mem::zeroed() };
        // SAFETY: `raw` is writable; init gives it the default attributes.
        errno_result(unsafe { libc::posix_spawnattr_init(&mut raw) })?;
        Ok(Self(raw))
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once here.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// Forks the calling process. In the child, `child` runs, then the child ends with
/// `_exit` and the code it returned (1 after a panic); it never returns. In the parent,
/// returns the child's pid.
///
/// Only the calling thread exists in the child: locks other threads held at the moment of
/// the fork stay locked there. `child` must not wait for anything another thread of the
/// parent would have released (a single-threaded caller, such as the forkserver, is
/// safe).
pub(crate) fn fork_run(child: impl FnOnce() -> i32) -> io::Result<u32> {
    // SAFETY: fork has no memory preconditions. The child continues on a copy of this
    // thread only; it runs `child` and leaves through `_exit`, never returning into the
    // caller's frames, and the documented contract above covers the locks of threads
    // that do not exist in the child.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(1);
        exit_now(code);
    }
    Ok(pid as u32)
}

/// Ends the calling process at once with `code`, without running `atexit` handlers
/// (which belong to the process a forked child was copied from).
pub(crate) fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = io::stdout().flush();
    // SAFETY: _exit never returns and has no memory preconditions.
    unsafe { libc::_exit(code) }
}

/// Takes ownership of `fd`, a descriptor this process inherited from the process that
/// started it, and marks it close-on-exec.
///
/// Used only on the descriptor numbers named by the bootstrap of a starting child,
/// before `main`, when no other code of the process has had a chance to claim them.
pub(crate) fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: fcntl(F_SETFD) takes an integer; it fails with EBADF when fd is not open,
    // which is how we check the inherited descriptor exists before owning it.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    // SAFETY: the descriptor is open (checked above) and was handed to this process by
    // its parent for this purpose only; nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads and removes the environment variable `name`.
pub(crate) fn take_env(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name)?;
    // Environment writes race with readers on other threads. This is called only before
    // `main`, while the process has a single thread.
    #[allow(deprecated_safe_2024, unused_unsafe)]
    // SAFETY: single-threaded (before main), see above.
    unsafe {
        std::env::remove_var(name)
    };
    Some(value)
}

/// Ignores `SIGPIPE`, as Rust's runtime does before `main`: a child that takes over
/// before `main` would otherwise die of a write to a closed pipe instead of getting
/// `EPIPE` like any Rust program.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN involves no handler code and no memory.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Registers `f` to run when the process calls `exit` (or returns from `main`).
pub(crate) fn at_exit(f: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `f` is a plain function valid for the whole life of the program.
    if unsafe { libc::atexit(f) } != 0 {
        return Err(io::Error::other("atexit refused the handler"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn fork_run_reports_exit_codes_and_signals() {
        let pid = fork_run(|| 7).unwrap();
        let fd = pidfd_open(pid).unwrap();
        assert_eq!(pidfd_wait(fd.as_fd(), true).unwrap(), Some(7));

        let pid = fork_run(|| {
            std::thread::sleep(Duration::from_secs(30));
            0
        })
        .unwrap();
        let fd = pidfd_open(pid).unwrap();
        assert_eq!(pidfd_wait(fd.as_fd(), false).unwrap(), None);
        assert_eq!(
            poll_readable(&[fd.as_fd()], Some(Duration::from_millis(20))).unwrap(),
            vec![false]
        );
        assert!(pidfd_signal(fd.as_fd(), SIGKILL).unwrap());
        assert_eq!(poll_readable(&[fd.as_fd()], None).unwrap(), vec![true]);
        assert_eq!(pidfd_wait(fd.as_fd(), true).unwrap(), Some(-9));
        assert!(!pidfd_signal(fd.as_fd(), SIGKILL).unwrap());
    }

    /// A close-on-exec pipe, as (read end, write end).
    fn pipe() -> (std::fs::File, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }).unwrap();
        // SAFETY: pipe2 just returned these descriptors and nothing else owns them.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                OwnedFd::from_raw_fd(fds[1]),
            )
        }
    }

    fn sh(script: &str, keep: &[RawFd]) -> io::Result<OwnedFd> {
        let args = ["sh".into(), "-c".into(), script.into()];
        let env = [("SHOAL_SPAWN_TEST", "from the parent".into())];
        let pid = spawn_keeping("/bin/sh".as_ref(), &args, &env, keep)?;
        pidfd_open(pid)
    }

    #[test]
    fn spawn_keeping_hands_over_only_the_kept_descriptors() {
        use std::io::Read;
        let (mut r, w) = pipe();
        let fd = w.as_raw_fd();
        let script = format!("echo \"$SHOAL_SPAWN_TEST\" >&{fd}");
        let kid = sh(&script, &[fd]).unwrap();
        assert_eq!(pidfd_wait(kid.as_fd(), true).unwrap(), Some(0));
        // Not kept: still close-on-exec, so the shell cannot write to it.
        let kid = sh(&format!("exec 2>/dev/null; echo leaked >&{fd}"), &[]).unwrap();
        assert_ne!(pidfd_wait(kid.as_fd(), true).unwrap(), Some(0));
        drop(w);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "from the parent\n");
    }

    #[test]
    fn spawn_keeping_reports_a_failed_exec() {
        let err = spawn_keeping("/no/such/program".as_ref(), &["x".into()], &[], &[]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        let err = spawn_keeping("/bin/sh".as_ref(), &["a\0b".into()], &[], &[]).unwrap_err();
        assert!(err.to_string().contains("NUL byte"), "{err}");
    }

    #[test]
    fn inherited_fd_must_be_open() {
        assert!(take_inherited_fd(-1).is_err());
        assert!(take_inherited_fd(1_000_000).is_err());
    }
}
