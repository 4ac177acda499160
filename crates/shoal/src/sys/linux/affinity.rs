//! CPU affinity: which CPUs a thread may run on (`sched_getaffinity`/`sched_setaffinity`).
//!
//! Masks are passed to the kernel as arrays of `c_ulong` words of any length, not as the
//! C library's fixed 1024-CPU `cpu_set_t`, so that machines with more CPUs work too.

use std::io;

use crate::sys::cvt;

/// Bits in one word of a CPU mask.
const WORD_BITS: usize = libc::c_ulong::BITS as usize;

/// The largest CPU number accepted: far beyond any machine, small enough that a mask
/// (512 bytes) is cheap.
pub(crate) const MAX_CPU: usize = 4095;

/// The errno of a mask that names no CPU the thread may run on.
pub(crate) const EINVAL: i32 = libc::EINVAL;
/// The errno of a thread that no longer exists.
pub(crate) const ESRCH: i32 = libc::ESRCH;

/// The CPU the calling thread runs on now, `None` when the kernel does not say. A hint:
/// the thread may move at once. With glibc 2.35 or later this reads the thread's rseq
/// area (no system call).
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no argument and only reads per-thread state.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// The CPUs the thread `tid` (0: the calling thread) may run on, in increasing order.
pub(crate) fn thread_affinity(tid: i32) -> io::Result<Vec<usize>> {
    // Start at the C library's size and grow while the kernel says the mask is too
    // small for its CPU count (EINVAL).
    let mut words = 1024 / WORD_BITS;
    loop {
        let mut mask: Vec<libc::c_ulong> = vec![0; words];
        let len = mask.len() * std::mem::size_of::<libc::c_ulong>();
        // SAFETY: `mask` is a writable buffer of exactly `len` bytes that outlives the
        // call; the raw system call writes at most `len` bytes into it.
        let ret =
            cvt(unsafe { libc::syscall(libc::SYS_sched_getaffinity, tid, len, mask.as_mut_ptr()) });
        match ret {
            Ok(_) => {
                return Ok((0..words * WORD_BITS)
                    .filter(|&cpu| mask[cpu / WORD_BITS] & (1 << (cpu % WORD_BITS)) != 0)
                    .collect())
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && words * WORD_BITS <= MAX_CPU => {
                words *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Restricts the thread `tid` (0: the calling thread) to `cpus`, each at most
/// [`MAX_CPU`] (the caller checks).
pub(crate) fn set_thread_affinity(tid: i32, cpus: &[usize]) -> io::Result<()> {
    let top = cpus.iter().copied().max().unwrap_or(0);
    let mut mask: Vec<libc::c_ulong> = vec![0; top / WORD_BITS + 1];
    for &cpu in cpus {
        mask[cpu / WORD_BITS] |= 1 << (cpu % WORD_BITS);
    }
    let len = mask.len() * std::mem::size_of::<libc::c_ulong>();
    // SAFETY: `mask` is a readable buffer of exactly `len` bytes that outlives the call;
    // the kernel only reads it.
    cvt(unsafe { libc::syscall(libc::SYS_sched_setaffinity, tid, len, mask.as_ptr()) })?;
    Ok(())
}

/// The kernel thread ids of every thread of this process (`/proc/self/task`).
pub(crate) fn thread_ids() -> io::Result<Vec<i32>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    Ok(tids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_can_be_narrowed_and_restored() {
        // On a thread of its own, so that the test harness's threads are not touched.
        std::thread::spawn(|| {
            let all = thread_affinity(0).unwrap();
            assert!(!all.is_empty());
            set_thread_affinity(0, &all[..1]).unwrap();
            assert_eq!(thread_affinity(0).unwrap(), &all[..1]);
            set_thread_affinity(0, &all).unwrap();
            assert_eq!(thread_affinity(0).unwrap(), all);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_mask_of_absent_cpus_is_refused() {
        let err = set_thread_affinity(0, &[MAX_CPU]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn this_thread_is_listed() {
        let me = crate::sys::current_thread().tid as i32;
        assert!(thread_ids().unwrap().contains(&me));
    }
}
