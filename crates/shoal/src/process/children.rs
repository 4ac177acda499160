//! The children this process started: [`active_children`] and the exit-time cleanup of
//! daemonic ones.

use std::sync::{Mutex, Once};
use std::time::Duration;

use crate::process::Process;
use crate::sys;

struct Registry {
    /// The process the list belongs to: a forked child inherits a copy of the list of its
    /// parent's children, which are not its own.
    owner: u32,
    list: Vec<Process>,
}

static CHILDREN: Mutex<Registry> = Mutex::new(Registry {
    owner: 0,
    list: Vec::new(),
});
static AT_EXIT: Once = Once::new();

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    let mut reg = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    if reg.owner != me {
        reg.owner = me;
        reg.list.clear();
    }
    reg
}

/// Records a newly started child.
pub(crate) fn register(p: &Process) {
    if p.daemon() {
        AT_EXIT.call_once(|| {
            // Without the handler daemonic children outlive a normal exit; report but go on.
            if let Err(e) = sys::at_exit(at_exit) {
                eprintln!("shoal: {e}; daemonic children will not be stopped at exit");
            }
        });
    }
    let mut reg = lock();
    reg.list.retain(Process::is_alive);
    reg.list.push(p.clone());
}

/// The children of this process that are still running (Python's
/// `multiprocessing.active_children()`). Children that ended are reaped.
///
/// # Examples
/// ```
/// assert!(shoal::active_children().is_empty());
/// ```
pub fn active_children() -> Vec<Process> {
    let mut reg = lock();
    reg.list.retain(Process::is_alive);
    reg.list.clone()
}

extern "C" fn at_exit() {
    stop_daemons();
}

/// Terminates and reaps the daemonic children still running, as Python does at exit.
pub(crate) fn stop_daemons() {
    // try_lock: at exit another thread may hold the lock forever; then do nothing rather
    // than hang.
    let daemons: Vec<Process> = match CHILDREN.try_lock() {
        Ok(reg) if reg.owner == std::process::id() => {
            reg.list.iter().filter(|p| p.daemon()).cloned().collect()
        }
        _ => return,
    };
    for p in &daemons {
        let _ = p.terminate();
    }
    for p in &daemons {
        if !matches!(p.join_timeout(Duration::from_secs(5)), Ok(Some(_))) {
            let _ = p.kill();
            let _ = p.join_timeout(Duration::from_secs(5));
        }
    }
}
