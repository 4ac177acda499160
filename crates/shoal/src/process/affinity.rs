//! Pinning the calling process to CPUs ([`set_cpu_affinity`], [`available_cpus`]).
//!
//! Benchmarks pin their processes because whether a wake-up crosses CPUs changes a
//! round trip tenfold; programs pin workers to keep caches warm.

use std::io;

use crate::sys;

/// Restricts every thread of the calling process to the CPUs in `cpus` (Linux's
/// `sched_setaffinity`, like `taskset -a -p`).
///
/// Threads and child processes started afterwards inherit the restriction. A thread
/// started by another thread *while* this call runs may keep its former CPUs; call it
/// before starting threads, or again after. CPUs are numbered as the kernel numbers
/// them (`/proc/cpuinfo`), and duplicates are allowed.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] when `cpus` is empty, names a CPU above 4095, or
/// names no CPU this process may run on (offline, or outside its cgroup); otherwise
/// the system's error (`EPERM` when another user's process is involved).
///
/// # Examples
/// ```
/// use shoal::process::{available_cpus, set_cpu_affinity};
///
/// let all = available_cpus()?;
/// set_cpu_affinity(&all[..1])?; // this process now runs on one CPU only
/// assert_eq!(available_cpus()?, &all[..1]);
/// set_cpu_affinity(&all)?; // and on all of them again
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_cpu_affinity(cpus: &[usize]) -> io::Result<()> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    if cpus.is_empty() {
        return Err(invalid(
            "cannot pin a process to an empty set of CPUs".into(),
        ));
    }
    if let Some(&cpu) = cpus.iter().find(|&&c| c > sys::MAX_CPU) {
        return Err(invalid(format!(
            "cannot pin a process to CPU {cpu}: CPU numbers stop at {}",
            sys::MAX_CPU
        )));
    }
    // The calling thread first: its error (an impossible mask) is the one to report,
    // and the threads it starts from now on inherit the mask.
    sys::set_thread_affinity(0, cpus).map_err(|e| {
        if e.raw_os_error() == Some(sys::EINVAL) {
            invalid(format!(
                "cannot pin a process to CPUs {cpus:?}: none of them is available to it"
            ))
        } else {
            io::Error::new(
                e.kind(),
                format!("could not pin this process to CPUs {cpus:?}: {e}"),
            )
        }
    })?;
    let me = sys::current_thread().tid as i32;
    for tid in sys::thread_ids()? {
        if tid == me {
            continue;
        }
        match sys::set_thread_affinity(tid, cpus) {
            // The thread ended between the listing and the call.
            Err(e) if e.raw_os_error() == Some(sys::ESRCH) => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("could not pin thread {tid} of this process to CPUs {cpus:?}: {e}"),
                ))
            }
            Ok(()) => {}
        }
    }
    Ok(())
}

/// The CPUs the calling thread may run on, in increasing order (what
/// [`set_cpu_affinity`] last allowed, or every CPU of the machine, cgroup permitting).
///
/// # Errors
/// The system's error, should `sched_getaffinity` fail.
///
/// # Examples
/// ```
/// let cpus = shoal::process::available_cpus()?;
/// assert!(!cpus.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn available_cpus() -> io::Result<Vec<usize>> {
    sys::thread_affinity(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_reaches_threads_started_before_and_after() {
        // Pinning applies to the whole process, and the test harness runs tests on
        // threads of one process: this test restores the mask before it returns, and
        // narrows to the first CPU only (which every other test may also use).
        let all = available_cpus().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (back_tx, back_rx) = std::sync::mpsc::channel();
        let earlier = std::thread::spawn(move || {
            rx.recv().unwrap();
            back_tx.send(available_cpus().unwrap()).unwrap();
        });
        set_cpu_affinity(&[all[0], all[0]]).unwrap();
        let later = std::thread::spawn(available_cpus).join().unwrap().unwrap();
        tx.send(()).unwrap();
        let seen_by_earlier = back_rx.recv().unwrap();
        earlier.join().unwrap();
        set_cpu_affinity(&all).unwrap();
        assert_eq!(later, [all[0]]);
        assert_eq!(seen_by_earlier, [all[0]]);
        assert_eq!(available_cpus().unwrap(), all);
    }

    #[test]
    fn impossible_sets_are_refused_with_a_sentence() {
        let err = set_cpu_affinity(&[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("empty set of CPUs"), "{err}");

        let err = set_cpu_affinity(&[1 << 20]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("CPU 1048576"), "{err}");

        let err = set_cpu_affinity(&[sys::MAX_CPU]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("none of them is available"),
            "{err}"
        );
        assert!(!available_cpus().unwrap().is_empty());
    }
}
