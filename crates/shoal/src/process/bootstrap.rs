//! What a child needs to know before it runs its entry, and the code that runs it.
//!
//! A spawned child finds its bootstrap in an inherited memfd named by the environment
//! variable [`ENV`]; the check happens before `main` ([`BEFORE_MAIN`]), so a
//! child works in any binary that links shoal — including test binaries whose `main`
//! belongs to libtest — and never reaches the host's `main`.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::process::start::forkserver;
use crate::process::{children, entry, identity};
use crate::sys;

/// The environment variable naming the inherited bootstrap descriptor.
pub(crate) const ENV: &str = "SHOAL_BOOTSTRAP_FD";

/// What the child is for.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Task {
    /// Run a registered entry function on encoded arguments.
    Entry { entry: String, args: Vec<u8> },
    /// Serve fork requests on the inherited socket (the first descriptor).
    ForkServer,
}

/// Everything a child is told by the process that starts it.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Bootstrap {
    pub(crate) task: Task,
    pub(crate) name: String,
    pub(crate) parent_pid: u32,
    pub(crate) parent_name: String,
    pub(crate) daemon: bool,
    /// Spawn only: the numbers of the inherited object descriptors, in handoff order.
    /// (Over the forkserver socket the descriptors travel beside the message.)
    pub(crate) fds: Vec<i32>,
}

/// Runs [`before_main`] before `main` in every binary that links shoal: a child started
/// by shoal takes over there and never reaches the host's `main` (which may be
/// libtest's, or any program's).
// A function in `.init_array` is what the C runtime calls before `main`; the lint
// counts placing a static in a chosen section as unsafe code.
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array")]
static BEFORE_MAIN: extern "C" fn() = {
    // Argument-free, and it does not unwind: `before_main` exits or returns.
    extern "C" fn run() {
        before_main();
    }
    run
};

/// Called before `main` in every process: takes over when this process is a shoal
/// child, and never returns in that case.
fn before_main() {
    let Some(value) = sys::take_env(ENV) else {
        return;
    };
    sys::ignore_sigpipe();
    let code = match spawned(value) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("shoal: this process was started as a shoal child but {msg}");
            1
        }
    };
    std::process::exit(code)
}

fn spawned(value: OsString) -> Result<i32, String> {
    let fd: i32 = value
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{ENV}={value:?} is not a descriptor number"))?;
    let fd = sys::take_inherited_fd(fd)
        .map_err(|e| format!("its bootstrap descriptor {fd} is unusable: {e}"))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| format!("its bootstrap could not be read: {e}"))?;
    drop(file);
    let boot: Bootstrap =
        codec::decode(&bytes).map_err(|e| format!("its bootstrap is unreadable: {e}"))?;
    let fds = boot
        .fds
        .iter()
        .map(|&n| sys::take_inherited_fd(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("an inherited descriptor is unusable: {e}"))?;
    if boot.daemon {
        // A daemon dies with its parent. The spawning side runs nothing between fork and
        // exec (`sys::spawn_keeping`), so the death signal is armed here; a parent that
        // died before that has left this process to another parent: it goes too.
        sys::set_parent_death_kill()
            .map_err(|e| format!("its parent-death signal could not be set: {e}"))?;
        if sys::parent_pid() != boot.parent_pid {
            return Ok(1);
        }
    }
    Ok(match boot.task {
        Task::ForkServer => {
            let sock = fds
                .into_iter()
                .next()
                .ok_or("the forkserver socket is missing")?;
            forkserver::serve(sock)
        }
        Task::Entry { .. } => run(boot, fds),
    })
}

/// Runs the entry of `boot` with the object descriptors `fds` and returns the exit code
/// (1 after a panic, whose message the panic hook has printed). Every start method ends
/// here, in the child.
pub(crate) fn run(boot: Bootstrap, fds: Vec<OwnedFd>) -> i32 {
    let Task::Entry { entry: name, args } = boot.task else {
        return 1;
    };
    let Some(entry) = entry::find(&name) else {
        eprintln!("shoal: entry function `{name}` is not registered in this executable");
        return 1;
    };
    identity::set(boot.name, identity::info(boot.parent_name, boot.parent_pid));
    let code = std::panic::catch_unwind(|| (entry.run)(&args, fds)).unwrap_or(1);
    children::stop_daemons();
    code
}
