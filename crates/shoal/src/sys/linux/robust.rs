//! The kernel's robust-futex list: how a lock learns that its holder died.
//!
//! At the exit of every thread (a normal exit, a panic, `SIGKILL`, a segfault: any exit)
//! the kernel walks the list of "robust" futex words that the thread registered with
//! `set_robust_list`. For every entry whose word holds the dying thread's id in its
//! [`FUTEX_TID_MASK`] bits, it sets [`FUTEX_OWNER_DIED`] (keeping [`FUTEX_WAITERS`]),
//! clears the id and wakes one waiter. The next acquirer sees the bit at once: no
//! polling, no timeout, and it works across processes because the word lives in shared
//! memory.
//!
//! The list is *per thread* and glibc already registered one for its own robust
//! `pthread_mutex_t`s, so we never replace it: we read the registered head with
//! `get_robust_list` and link our entries into glibc's list with glibc's exact
//! conventions (`ENQUEUE_MUTEX_BOTH` / `DEQUEUE_MUTEX` of `pthread_mutex_lock.c`), so
//! that glibc's robust mutexes keep working beside ours:
//!
//! - an entry is the address of a `next` pointer; the entry's `prev` pointer sits 8
//!   bytes before it (glibc's `QUEUE_PTR_ADJUST`), and points at the previous element's
//!   `next` field, or at the head itself (glibc keeps a writable `robust_prev` word
//!   right before its head, so `head - 8` may be written);
//! - the kernel finds the futex word of an entry at `entry + futex_offset`; glibc uses
//!   `offsetof(__lock) - offsetof(__list.__next) = -32` on x86_64 and aarch64, and our
//!   in-segment lock state is laid out to match ([`RobustLink`] 24 bytes after the word);
//! - `list_op_pending` names the entry being locked or unlocked, so that a death between
//!   the compare-and-swap on the word and the list update is handled too.
//!
//! A thread without a registered list (a C library that registers none) gets a list head
//! of ours. When the list cannot be used at all (no `get_robust_list`, or a foreign
//! `futex_offset`), [`discover_robust_head`] returns `None` and the lock falls back to
//! checking the holder with [`thread_alive`] every few milliseconds; the kernel path is
//! preferred because it reports the death at once and costs nothing while nobody dies.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{compiler_fence, AtomicPtr, Ordering};

/// Set in a robust futex word by a waiter that sleeps (or may sleep) on it.
pub(crate) const FUTEX_WAITERS: u32 = 0x8000_0000;
/// Set in a robust futex word by the kernel when its holder died.
pub(crate) const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// The bits of a robust futex word that hold the holder's thread id.
pub(crate) const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Where the futex word sits relative to a list entry (the `next` field of a
/// [`RobustLink`]): the value glibc registers on x86_64 and aarch64.
pub(crate) const ROBUST_FUTEX_OFFSET: isize = -32;

/// The two list pointers of an entry, placed 24 bytes after its futex word (so that the
/// `next` field is 32 bytes after it, as in glibc's `pthread_mutex_t`).
///
/// Only the thread holding the lock (and the kernel, when that thread dies) reads or
/// writes them; they hold addresses of the holder's process.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RobustLink {
    prev: AtomicPtr<u8>,
    next: AtomicPtr<u8>,
}

const _: () = {
    assert!(std::mem::offset_of!(RobustLink, prev) == 0);
    assert!(std::mem::offset_of!(RobustLink, next) == 8);
    assert!(std::mem::size_of::<RobustLink>() == 16);
};

impl RobustLink {
    /// The list entry: the address of the `next` field.
    fn entry(&self) -> *mut u8 {
        self.next.as_ptr().cast()
    }
}

/// The kernel's `struct robust_list_head`.
#[repr(C)]
struct RobustListHead {
    /// First entry; the head's own address when the list is empty.
    list: *mut u8,
    futex_offset: libc::c_long,
    list_op_pending: *mut u8,
}

/// A head of our own, for threads the C library did not register: `prev` plays glibc's
/// `robust_prev` so that `head - 8` is writable like glibc's.
#[repr(C)]
struct OwnHead {
    prev: *mut u8,
    head: RobustListHead,
}

const _: () = {
    assert!(std::mem::offset_of!(RobustListHead, list) == 0);
    assert!(std::mem::offset_of!(RobustListHead, futex_offset) == 8);
    assert!(std::mem::offset_of!(RobustListHead, list_op_pending) == 16);
    assert!(std::mem::offset_of!(OwnHead, head) == 8);
};

/// The robust-list head registered for the calling thread.
///
/// Only meaningful on the thread that obtained it from [`discover_robust_head`] (the
/// thread cache in `thread.rs` guarantees that); it is a plain address otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RobustHead(NonNull<RobustListHead>);

/// Reads the calling thread's registered robust-list head, registering one of ours when
/// there is none. `None` when the list cannot be used (no kernel support, or a
/// `futex_offset` other than [`ROBUST_FUTEX_OFFSET`]): callers then fall back to
/// [`thread_alive`].
pub(crate) fn discover_robust_head() -> Option<RobustHead> {
    let mut head: *mut RobustListHead = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: get_robust_list(0, ..) writes one pointer and one size_t for the calling
    // thread into the two local variables, which are valid for writes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            0 as libc::c_long,
            &mut head as *mut *mut RobustListHead,
            &mut len as *mut libc::size_t,
        )
    };
    if ret != 0 {
        return None;
    }
    let head = match NonNull::new(head) {
        Some(h) => h,
        None => register_own_head()?,
    };
    if len != std::mem::size_of::<RobustListHead>() {
        return None;
    }
    // SAFETY: the kernel returned the head registered for this thread, which its owner
    // (the C library or us) keeps alive for the thread's whole life; we only read it.
    let offset = unsafe { (*head.as_ptr()).futex_offset };
    (offset as isize == ROBUST_FUTEX_OFFSET).then_some(RobustHead(head))
}

/// Registers a fresh head of ours for the calling thread.
///
/// The head is leaked on purpose: the kernel reads the list after the thread's last
/// instruction, when thread-local storage may already be gone.
fn register_own_head() -> Option<NonNull<RobustListHead>> {
    let own = Box::leak(Box::new(OwnHead {
        prev: std::ptr::null_mut(),
        head: RobustListHead {
            list: std::ptr::null_mut(),
            futex_offset: ROBUST_FUTEX_OFFSET as libc::c_long,
            list_op_pending: std::ptr::null_mut(),
        },
    }));
    let head: *mut RobustListHead = &mut own.head;
    own.head.list = head.cast();
    // SAFETY: `head` points at a leaked (never freed) robust_list_head whose `list`
    // points at itself (an empty list), as the kernel requires.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_set_robust_list,
            head,
            std::mem::size_of::<RobustListHead>(),
        )
    };
    if ret != 0 {
        return None;
    }
    NonNull::new(head)
}

impl RobustHead {
    fn raw(self) -> *mut RobustListHead {
        self.0.as_ptr()
    }

    /// Announces that `link`'s lock is being locked or unlocked (glibc's
    /// `list_op_pending`), so the kernel checks its word even before it is listed.
    ///
    /// # Safety
    /// Called on the thread this head belongs to; `link` lies 24 bytes after a futex
    /// word in a mapping that stays mapped until [`RobustHead::clear_pending`].
    pub(crate) unsafe fn set_pending(self, link: &RobustLink) {
        // SAFETY: the head belongs to this thread (caller's precondition) and nobody else
        // writes it; the kernel reads it only after this thread is gone.
        unsafe { (*self.raw()).list_op_pending = link.entry() };
        compiler_fence(Ordering::SeqCst);
    }

    /// Ends the operation announced by [`RobustHead::set_pending`].
    ///
    /// # Safety
    /// Called on the thread this head belongs to.
    pub(crate) unsafe fn clear_pending(self) {
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as in `set_pending`.
        unsafe { (*self.raw()).list_op_pending = std::ptr::null_mut() };
    }

    /// Links `link` at the front of this thread's list (glibc's `ENQUEUE_MUTEX_BOTH`).
    ///
    /// # Safety
    /// Called on the thread this head belongs to, right after this thread took the lock
    /// whose word lies 32 bytes before `link.next`; `link` is not in any list; its
    /// mapping stays mapped until [`RobustHead::dequeue`] is called for it.
    pub(crate) unsafe fn enqueue(self, link: &RobustLink) {
        let head = self.raw();
        // SAFETY: `head` is this thread's live head (caller's precondition); its first
        // entry is either the head itself, preceded by a writable word (glibc's
        // `robust_prev`, our `OwnHead::prev`), or a listed entry whose `prev` field sits
        // 8 bytes before it; all are written only by this thread.
        unsafe {
            let first = ((*head).list as usize & !1usize) as *mut u8;
            first.sub(8).cast::<*mut u8>().write(link.entry());
            link.next.store((*head).list, Ordering::Relaxed);
            link.prev.store(head.cast(), Ordering::Relaxed);
            // The entry must be complete before the kernel can reach it from the head.
            compiler_fence(Ordering::SeqCst);
            (*head).list = link.entry();
        }
    }

    /// Unlinks `link` from this thread's list (glibc's `DEQUEUE_MUTEX`).
    ///
    /// # Safety
    /// Called on the thread this head belongs to, for a `link` it enqueued with
    /// [`RobustHead::enqueue`] and has not dequeued since.
    pub(crate) unsafe fn dequeue(self, link: &RobustLink) {
        let next = (link.next.load(Ordering::Relaxed) as usize & !1usize) as *mut u8;
        let prev = (link.prev.load(Ordering::Relaxed) as usize & !1usize) as *mut u8;
        // SAFETY: `link` is listed (caller's precondition), so `next` is a listed entry
        // or the head (both with a writable word 8 bytes before) and `prev` is the head
        // or the `next` field of a listed entry; this thread alone writes them.
        unsafe {
            next.sub(8)
                .cast::<*mut u8>()
                .write(link.prev.load(Ordering::Relaxed));
            let prev_next = prev.cast::<*mut u8>();
            let pi_bit = prev_next.read() as usize & 1;
            prev_next.write((link.next.load(Ordering::Relaxed) as usize | pi_bit) as *mut u8);
        }
        compiler_fence(Ordering::SeqCst);
        link.prev.store(std::ptr::null_mut(), Ordering::Relaxed);
        link.next.store(std::ptr::null_mut(), Ordering::Relaxed);
    }
}

/// Whether thread `tid` of process `pid` still runs (a zombie counts as dead).
///
/// This is the fallback check of a lock whose holder is not on a robust list; a thread
/// id can be reused, so a live answer may be stale, never a dead one.
pub(crate) fn thread_alive(pid: u32, tid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/task/{tid}/stat")) {
        Ok(stat) => {
            // The state letter follows the last ')' (the command name may contain one).
            let after = stat
                .iter()
                .rposition(|&b| b == b')')
                .map_or(&stat[..0], |i| &stat[i + 1..]);
            let state = after.iter().find(|b| !b.is_ascii_whitespace());
            !matches!(state, Some(b'Z' | b'X' | b'x'))
        }
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Test helpers: fork a child that runs `f` (without allocating) and then waits to be
/// killed.
#[cfg(test)]
pub(crate) mod test_fork {
    use std::io;

    /// Forks; the child runs `f` and then sleeps until it is killed. Returns the child's
    /// pid in the parent. `f` must not allocate or take locks other than shoal's (the
    /// test harness runs other threads, whose locks stay held in the child).
    pub(crate) fn fork_then_park(f: impl FnOnce()) -> io::Result<u32> {
        // SAFETY: the child only runs `f` (which the caller keeps async-signal-safe in
        // spirit) and then `pause`/`_exit`, never returning into the test harness.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                f();
                loop {
                    // SAFETY: pause has no preconditions.
                    unsafe { libc::pause() };
                }
            }
            pid => Ok(pid as u32),
        }
    }

    /// Unregisters the calling thread's robust list, as on a C library that registers
    /// none. Only for a test thread that then uses nothing but shoal locks until it exits.
    pub(crate) fn unregister_robust_list() {
        // SAFETY: a null head with the right length is accepted by the kernel and makes
        // it walk nothing at this thread's exit.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_set_robust_list,
                std::ptr::null::<u8>(),
                std::mem::size_of::<super::RobustListHead>(),
            )
        };
        assert_eq!(ret, 0);
    }

    /// Sends SIGKILL to `pid` and reaps it.
    pub(crate) fn kill_and_reap(pid: u32) {
        // SAFETY: kill and waitpid on our own child take no memory except `status`.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(pid as libc::pid_t, &mut status, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_registered_a_head_with_the_expected_offset() {
        let head = discover_robust_head().expect("a robust list on this platform");
        assert_eq!(discover_robust_head(), Some(head));
    }

    #[test]
    fn enqueue_and_dequeue_keep_the_list_consistent() {
        let head = discover_robust_head().unwrap();
        let a = Box::new(RobustLink {
            prev: AtomicPtr::default(),
            next: AtomicPtr::default(),
        });
        let b = Box::new(RobustLink {
            prev: AtomicPtr::default(),
            next: AtomicPtr::default(),
        });
        // SAFETY: the boxes outlive their membership; the futex words 32 bytes before
        // them are never examined because this thread does not die while they are listed.
        unsafe {
            let before = (*head.raw()).list;
            head.enqueue(&a);
            head.enqueue(&b);
            assert_eq!((*head.raw()).list, b.entry());
            assert_eq!(b.next.load(Ordering::Relaxed), a.entry());
            assert_eq!(a.prev.load(Ordering::Relaxed), b.entry());
            head.dequeue(&a);
            assert_eq!(b.next.load(Ordering::Relaxed), before);
            head.dequeue(&b);
            assert_eq!((*head.raw()).list, before);
        }
    }

    #[test]
    fn thread_liveness() {
        let pid = std::process::id();
        assert!(thread_alive(pid, pid));
        let tid = std::thread::spawn(crate::sys::current_tid).join().unwrap();
        // A joined thread is gone, perhaps a moment after `join` returns (the kernel
        // clears the join word before it releases the task).
        let start = std::time::Instant::now();
        while thread_alive(pid, tid) {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!thread_alive(u32::MAX / 4, 1));
    }
}
