//! The calling thread's ids, cached per thread and correct after `fork`.
//!
//! `gettid` is a system call; a lock needs the id on every acquire, so it is cached in a
//! thread-local. A `fork` copies the cache into the child, whose only thread has a new id,
//! so a `pthread_atfork` child handler (registered once) bumps a global generation and
//! every cache whose generation differs is refreshed on its next use. The same cache holds
//! the thread's robust-list head (see `robust.rs`), which the C library re-registers in
//! the child of a `fork`.
//!
//! A child made with a raw `clone`/`fork` system call that bypasses the C library runs
//! no `atfork` handlers; shoal never does that.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use super::robust::{discover_robust_head, RobustHead};

/// The ids and robust-list head of the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadCtx {
    /// The kernel thread id (`gettid`).
    pub(crate) tid: u32,
    /// The process id (`getpid`).
    pub(crate) pid: u32,
    /// The registered robust list, `None` when locks must fall back to liveness checks.
    pub(crate) robust: Option<RobustHead>,
}

#[derive(Clone, Copy)]
struct Cache {
    generation: u64,
    ctx: ThreadCtx,
}

/// Bumped in the child of every `fork`; never equal to `u64::MAX` (the empty cache).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

thread_local! {
    static CACHE: Cell<Cache> = const {
        Cell::new(Cache {
            generation: u64::MAX,
            ctx: ThreadCtx { tid: 0, pid: 0, robust: None },
        })
    };
}

extern "C" fn after_fork_in_child() {
    // Only the forking thread exists in the child; it runs this before returning from
    // `fork`, so every later read of the generation sees the bump.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The calling thread's cached ids and robust-list head.
#[inline]
pub(crate) fn current_thread() -> ThreadCtx {
    let cache = CACHE.with(Cell::get);
    if cache.generation == FORK_GENERATION.load(Ordering::Relaxed) {
        return cache.ctx;
    }
    refresh()
}

/// The calling thread's kernel id, without a system call after the first use.
#[inline]
#[cfg_attr(not(test), allow(dead_code))] // part of the sys contract; locks use `current_thread`
pub(crate) fn current_tid() -> u32 {
    current_thread().tid
}

#[cold]
fn refresh() -> ThreadCtx {
    ATFORK.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function without arguments as a child
        // handler; the function only touches an atomic.
        let ret = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        // Failure (ENOMEM) leaves the cache valid until a fork; nothing else to do.
        debug_assert_eq!(ret, 0);
    });
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    // SAFETY: gettid and getpid have no preconditions and cannot fail.
    let (tid, pid) = unsafe { (libc::gettid(), libc::getpid()) };
    let ctx = ThreadCtx {
        tid: tid as u32,
        pid: pid as u32,
        robust: discover_robust_head(),
    };
    CACHE.with(|c| c.set(Cache { generation, ctx }));
    ctx
}

/// Makes the calling thread use the liveness-check fallback instead of the robust list,
/// until the next `fork`. For tests of the fallback path.
#[cfg(test)]
pub(crate) fn force_robust_fallback() {
    current_thread(); // fill the cache first
    let mut cache = CACHE.with(Cell::get);
    cache.ctx.robust = None;
    CACHE.with(|c| c.set(cache));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tid_is_cached_and_distinct_per_thread() {
        let main = current_tid();
        // SAFETY: gettid has no preconditions.
        assert_eq!(main, unsafe { libc::gettid() } as u32);
        assert_eq!(current_tid(), main);
        assert_eq!(current_thread().pid, std::process::id());
        let other = std::thread::spawn(current_tid).join().unwrap();
        assert_ne!(other, main);
    }

    #[test]
    fn child_of_fork_sees_its_own_tid() {
        let before = current_tid();
        let mut fds = [0i32; 2];
        // SAFETY: pipe writes two descriptors into the local array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe just returned these descriptors and nothing else owns them.
        let (r, w) = unsafe {
            use std::os::fd::FromRawFd;
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        let write_fd = fds[1];
        let child = super::super::robust::test_fork::fork_then_park(|| {
            let tid = current_tid();
            // SAFETY: gettid has no preconditions.
            let real = unsafe { libc::gettid() } as u32;
            let ok: u8 = u8::from(tid == real && tid != before);
            // SAFETY: writes one byte from a local to a descriptor of this process.
            unsafe { libc::write(write_fd, (&ok as *const u8).cast(), 1) };
        })
        .unwrap();
        drop(w);
        let mut buf = [0u8; 1];
        std::io::Read::read_exact(&mut &r, &mut buf).unwrap();
        super::super::robust::test_fork::kill_and_reap(child);
        assert_eq!(buf[0], 1, "the child saw a stale thread id");
        assert_eq!(current_tid(), before);
    }
}
