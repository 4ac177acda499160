//! The robust futex mutex under [`Lock`](crate::sync::Lock), [`RLock`](crate::sync::RLock)
//! and [`Condition`](crate::sync::Condition): a state machine on one 32-bit word in a
//! shared segment.
//!
//! # The word
//!
//! | word                  | meaning                                                   |
//! |-----------------------|-----------------------------------------------------------|
//! | `0`                   | unlocked                                                  |
//! | `tid`                 | held by thread `tid`, nobody sleeps                       |
//! | `tid \| WAITERS`      | held by thread `tid`, someone sleeps (or may) on the word |
//! | `OWNER_DIED`          | the holder died; nobody sleeps                            |
//! | `OWNER_DIED \| WAITERS` | the holder died; the kernel woke one sleeper, others may sleep |
//!
//! `tid` is the kernel thread id (`FUTEX_TID_MASK` bits), the format the kernel's
//! robust-list walk understands. Acquire: one compare-and-swap `0 → tid` on the fast
//! path; otherwise spin a bounded number of rounds, then set `WAITERS` and sleep on the
//! futex. An acquirer that had to sleep takes the lock as `tid | WAITERS` (it cannot know
//! whether others still sleep, so it errs on the side of one extra wake, like glibc).
//! Taking a word with `OWNER_DIED` reports [`Acquired::OwnerDied`] and clears the bit:
//! the lock is usable afterwards, nothing is poisoned for good. Release: `swap(0)` and
//! wake one sleeper when `WAITERS` was set.
//!
//! # Learning that the holder died
//!
//! The holder links the lock into its thread's robust list (see `sys/linux/robust.rs`)
//! between acquire and release: when the thread dies in any way the kernel turns the word
//! into `OWNER_DIED[|WAITERS]` and wakes a sleeper, at once. This is the path on every
//! glibc system. When a thread has no usable robust list, it marks its acquisition with
//! [`FALLBACK`] in the `owner` record, and sleepers on such a lock wake every
//! [`FALLBACK_POLL`] to check whether the holder's thread still exists; a dead holder's
//! word is then set to `OWNER_DIED` by the sleeper, as the kernel would have. The check
//! costs a file read per poll and reports a death only after a poll period, which is why
//! it is only a fallback.
//!
//! # Memory
//!
//! The list pointers in [`RawLockState`] hold addresses of the holder's process (each
//! process maps the segment at its own address) and are only touched by the holder. A
//! process must not unmap a segment while one of its threads holds the lock (the list
//! would point into nothing): the last handle of a process keeps the mapping alive when
//! it finds the lock still held by the process (a guard was forgotten).

use std::fmt;
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::shm::Segment;
use crate::sync::primitive::Primitive;
use crate::sync::SyncError;
use crate::sys::{self, Deadline, RobustLink, ThreadCtx, WaitOutcome};
use crate::sys::{FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS, ROBUST_FUTEX_OFFSET};

/// Payload bytes a lock needs.
pub(crate) const RAW_LOCK_LEN: usize = std::mem::size_of::<RawLockState>();

/// Compare-and-swap rounds before an acquirer goes to sleep.
const SPIN_ROUNDS: u32 = 100;
/// How often a sleeper checks a holder that is not on a robust list.
const FALLBACK_POLL: Duration = Duration::from_millis(2);
/// Set in the owner record when the holder is not on a robust list.
const FALLBACK: u64 = 1 << 31;

/// The in-segment state of one lock.
#[repr(C)]
pub(crate) struct RawLockState {
    /// The futex word (see the module docs).
    word: AtomicU32,
    /// Recursion depth of an RLock; touched only by the holder.
    count: AtomicU32,
    /// `pid << 32 | FALLBACK? | tid` of the last acquirer, for reports and the fallback.
    owner: AtomicU64,
    _reserved: u64,
    /// Robust-list pointers; `next` is 32 bytes after `word` as the kernel expects.
    link: RobustLink,
}

const _: () = {
    assert!(offset_of!(RawLockState, word) == 0);
    assert!(offset_of!(RawLockState, count) == 4);
    assert!(offset_of!(RawLockState, owner) == 8);
    assert!(offset_of!(RawLockState, link) == 24);
    // The kernel finds the word at `entry + futex_offset`, entry = &link.next.
    assert!(
        (offset_of!(RawLockState, link) + 8) as isize + ROBUST_FUTEX_OFFSET
            == offset_of!(RawLockState, word) as isize
    );
    assert!(std::mem::size_of::<RawLockState>() == 40);
};

/// How an acquire succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Normally.
    Clean,
    /// After the previous holder died; its ids when known (0 otherwise).
    OwnerDied { tid: u32, pid: u32 },
}

/// How an acquire failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Held, and the caller would not wait.
    WouldBlock,
    /// Held until the deadline passed.
    Timeout,
}

/// What the segment's last handle in this process checks before unmapping.
struct Mapped {
    seg: Arc<Segment>,
    state: NonNull<RawLockState>,
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.seg.check_size().is_err() {
            // A named lock's file was truncated by another process: its state can no
            // longer be read (it would raise SIGBUS), and nobody can hold it any more.
            return;
        }
        // SAFETY: `state` points into `seg`, which is still mapped here and whose file
        // still covers it (checked above).
        let state = unsafe { self.state.as_ref() };
        let owner = state.owner.load(Ordering::Relaxed);
        let word = state.word.load(Ordering::Relaxed);
        let holder = word & FUTEX_TID_MASK;
        if holder != 0
            && holder == owner as u32 & FUTEX_TID_MASK
            && (owner >> 32) as u32 == sys::current_thread().pid
        {
            // A thread of this process still holds the lock (a forgotten guard), so the
            // lock may sit in its robust list: keep the mapping for the process's life.
            std::mem::forget(Arc::clone(&self.seg));
        }
    }
}

// SAFETY: `state` points into `seg`, mapped while `Mapped` lives; `Drop` only reads
// atomics through it.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

/// A handle to a lock's segment; clones share the mapping.
#[derive(Clone)]
pub(crate) struct RawLock {
    mapped: Arc<Mapped>,
    state: NonNull<RawLockState>,
}

// SAFETY: `state` points into the segment kept mapped by `mapped`; every access to the
// state goes through atomics or is restricted to the holder thread (the list pointers),
// so handles can move and be shared between threads.
unsafe impl Send for RawLock {}
// SAFETY: see `Send`.
unsafe impl Sync for RawLock {}

impl fmt::Debug for RawLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawLock")
            .field(
                "word",
                &format_args!("{:#x}", self.word().load(Ordering::Relaxed)),
            )
            .finish()
    }
}

impl RawLock {
    /// Creates an unlocked lock at the start of a new anonymous segment for
    /// `primitive`, whose payload holds `len` bytes (at least a [`RawLockState`]; a
    /// primitive may keep more state after it).
    pub(crate) fn new(primitive: Primitive, len: usize) -> Result<RawLock, SyncError> {
        let seg = primitive.create(len.max(RAW_LOCK_LEN))?;
        // A fresh segment is zero-filled: word 0 (unlocked), count 0, null list pointers.
        Ok(RawLock::from_segment(seg))
    }

    /// Creates an unlocked lock in the new named segment `name` (see [`RawLock::new`]).
    pub(crate) fn create_named(
        primitive: Primitive,
        name: &str,
        len: usize,
    ) -> Result<RawLock, SyncError> {
        let seg = primitive.create_named(name, len.max(RAW_LOCK_LEN))?;
        Ok(RawLock::from_segment(seg))
    }

    /// [`RawLock::create_named`] whose name this handle does not remove when dropped.
    pub(crate) fn create_named_detached(
        primitive: Primitive,
        name: &str,
        len: usize,
    ) -> Result<RawLock, SyncError> {
        let seg = primitive.create_named_detached(name, len.max(RAW_LOCK_LEN))?;
        Ok(RawLock::from_segment(seg))
    }

    /// Opens the lock in the named segment `name`, checked like a received one.
    pub(crate) fn open_named(
        primitive: Primitive,
        name: &str,
        len: usize,
    ) -> Result<RawLock, SyncError> {
        let seg = primitive.open_named(name, len.max(RAW_LOCK_LEN))?;
        Ok(RawLock::from_segment(seg))
    }

    /// `Deserialize` for a primitive built on a lock (see [`RawLock::new`]).
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
        primitive: Primitive,
        len: usize,
    ) -> Result<RawLock, D::Error> {
        Ok(RawLock::from_segment(
            primitive.deserialize(d, len.max(RAW_LOCK_LEN))?,
        ))
    }

    fn from_segment(seg: Arc<Segment>) -> RawLock {
        // The payload is 64-byte aligned and at least `size_of::<RawLockState>()` long
        // (checked by the callers), so the cast is in bounds and aligned.
        let state = NonNull::new(seg.payload_ptr().cast::<RawLockState>())
            .expect("a mapped segment has a non-null payload");
        RawLock {
            mapped: Arc::new(Mapped { seg, state }),
            state,
        }
    }

    /// The segment, for handing the lock to another process.
    pub(crate) fn segment(&self) -> &Segment {
        &self.mapped.seg
    }

    #[inline]
    fn state(&self) -> &RawLockState {
        // SAFETY: `state` points at a RawLockState inside the mapping that `mapped` keeps
        // alive as long as `self`; all its fields are atomics (valid for any bits and
        // shared access).
        unsafe { self.state.as_ref() }
    }

    #[inline]
    fn word(&self) -> &AtomicU32 {
        &self.state().word
    }

    /// The holder's thread id, `None` when unlocked or after the holder died.
    pub(crate) fn holder(&self) -> Option<u32> {
        let tid = self.word().load(Ordering::Relaxed) & FUTEX_TID_MASK;
        (tid != 0).then_some(tid)
    }

    /// Whether the lock is held (a dead holder's lock counts as not held).
    pub(crate) fn is_locked(&self) -> bool {
        self.holder().is_some()
    }

    /// Whether the calling thread holds the lock.
    pub(crate) fn held_by(&self, me: &ThreadCtx) -> bool {
        self.word().load(Ordering::Relaxed) & FUTEX_TID_MASK == me.tid
    }

    /// The RLock recursion count (meaningful for the holder only).
    pub(crate) fn count(&self) -> &AtomicU32 {
        &self.state().count
    }

    /// Takes the lock for the calling thread, waiting until `deadline` unless `wait` is
    /// false.
    #[inline]
    pub(crate) fn lock(&self, wait: bool, deadline: Deadline) -> Result<Acquired, Busy> {
        self.lock_as(&sys::current_thread(), wait, deadline)
    }

    /// [`RawLock::lock`] for a caller that looked up its thread already.
    #[inline]
    pub(crate) fn lock_as(
        &self,
        me: &ThreadCtx,
        wait: bool,
        deadline: Deadline,
    ) -> Result<Acquired, Busy> {
        let state = self.state();
        if let Some(head) = me.robust {
            // SAFETY: `head` is this thread's (from its cache); the link is 24 bytes after
            // the word and the segment stays mapped while `self` lives.
            unsafe { head.set_pending(&state.link) };
        }
        let result =
            match state
                .word
                .compare_exchange(0, me.tid, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => Ok(Acquired::Clean),
                Err(_) => self.lock_slow(me, wait, deadline),
            };
        let flag = if result.is_ok() {
            if let Some(head) = me.robust {
                // SAFETY: this thread just took the lock, which is in no list (its
                // previous holder dequeued it or died); the mapping outlives the
                // enqueue because `Mapped` keeps it while this process holds the lock.
                unsafe { head.enqueue(&state.link) };
                0
            } else {
                FALLBACK
            }
        } else {
            0
        };
        if result.is_ok() {
            state.owner.store(
                u64::from(me.pid) << 32 | flag | u64::from(me.tid),
                Ordering::Relaxed,
            );
        }
        if let Some(head) = me.robust {
            // SAFETY: as for `set_pending`.
            unsafe { head.clear_pending() };
        }
        result
    }

    #[cold]
    fn lock_slow(&self, me: &ThreadCtx, wait: bool, deadline: Deadline) -> Result<Acquired, Busy> {
        let state = self.state();
        let word = &state.word;
        let mut spins = 0;
        let mut slept = false;
        loop {
            let w = word.load(Ordering::Relaxed);
            if w == 0 {
                let new = if slept {
                    me.tid | FUTEX_WAITERS
                } else {
                    me.tid
                };
                if word
                    .compare_exchange(0, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(Acquired::Clean);
                }
                continue;
            }
            if w & FUTEX_OWNER_DIED != 0 {
                let dead = state.owner.load(Ordering::Relaxed);
                // Keep WAITERS: the kernel woke only one sleeper.
                let waiters = if slept {
                    FUTEX_WAITERS
                } else {
                    w & FUTEX_WAITERS
                };
                if word
                    .compare_exchange(w, me.tid | waiters, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(Acquired::OwnerDied {
                        tid: dead as u32 & FUTEX_TID_MASK,
                        pid: (dead >> 32) as u32,
                    });
                }
                continue;
            }
            if !wait {
                return Err(Busy::WouldBlock);
            }
            if spins < SPIN_ROUNDS && w & FUTEX_WAITERS == 0 {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            if w & FUTEX_WAITERS == 0
                && word
                    .compare_exchange(w, w | FUTEX_WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            slept = true;
            // Sleep without a bound only when the holder is known to be on a robust list
            // (its record matches the word); otherwise poll its liveness.
            let owner = state.owner.load(Ordering::Relaxed);
            let listed =
                owner as u32 & FUTEX_TID_MASK == w & FUTEX_TID_MASK && owner & FALLBACK == 0;
            let sleep_until = if listed {
                deadline
            } else {
                let poll = Deadline::after(FALLBACK_POLL);
                match (deadline.remaining(), poll.remaining()) {
                    (Some(a), Some(b)) if a < b => deadline,
                    _ => poll,
                }
            };
            let outcome =
                sys::futex_wait(word, w | FUTEX_WAITERS, sleep_until).unwrap_or(WaitOutcome::Woken);
            if outcome == WaitOutcome::TimedOut {
                if deadline.expired() {
                    return Err(Busy::Timeout);
                }
                if !listed {
                    self.check_unlisted_holder(w | FUTEX_WAITERS);
                }
            }
        }
    }

    /// The fallback: marks the word `OWNER_DIED` when its holder is known and gone.
    fn check_unlisted_holder(&self, seen: u32) {
        let state = self.state();
        let owner = state.owner.load(Ordering::Relaxed);
        let tid = seen & FUTEX_TID_MASK;
        // A record of another thread means the holder has not written its own yet.
        if owner as u32 & FUTEX_TID_MASK != tid {
            return;
        }
        if !sys::thread_alive((owner >> 32) as u32, tid) {
            let _ = state.word.compare_exchange(
                seen,
                FUTEX_OWNER_DIED | (seen & FUTEX_WAITERS),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Releases the lock held by the calling thread.
    ///
    /// # Errors
    /// The holder's thread id (`None`: unlocked) when the calling thread does not hold it.
    #[inline]
    pub(crate) fn unlock(&self) -> Result<(), Option<u32>> {
        // The thread is looked up again (not remembered by the guard) so that the child of
        // a fork, whose thread id differs, cannot release its parent's lock.
        self.unlock_as(&sys::current_thread())
    }

    /// [`RawLock::unlock`] for a caller that looked up its thread already (in this
    /// process, after any fork).
    #[inline]
    pub(crate) fn unlock_as(&self, me: &ThreadCtx) -> Result<(), Option<u32>> {
        let state = self.state();
        let w = state.word.load(Ordering::Relaxed);
        if w & FUTEX_TID_MASK != me.tid {
            let holder = w & FUTEX_TID_MASK;
            return Err((holder != 0).then_some(holder));
        }
        if let Some(head) = me.robust {
            // SAFETY: this thread holds the lock, so it enqueued the link in its own list
            // when it took it (the same thread, hence the same head).
            unsafe {
                head.set_pending(&state.link);
                head.dequeue(&state.link);
            }
        }
        let old = state.word.swap(0, Ordering::Release);
        if old & FUTEX_WAITERS != 0 {
            sys::futex_wake(&state.word, 1);
        }
        if let Some(head) = me.robust {
            // SAFETY: this thread's head, as above.
            unsafe { head.clear_pending() };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::test_fork::{fork_then_park, kill_and_reap};
    use std::time::Instant;

    #[test]
    fn lock_unlock_and_not_held() {
        let l = RawLock::new(Primitive::Lock, 0).unwrap();
        assert_eq!(l.unlock(), Err(None));
        assert_eq!(l.lock(true, Deadline::NEVER), Ok(Acquired::Clean));
        assert_eq!(l.holder(), Some(sys::current_tid()));
        let l2 = l.clone();
        let other = std::thread::spawn(move || (l2.lock(false, Deadline::NEVER), l2.unlock()))
            .join()
            .unwrap();
        assert_eq!(
            other,
            (Err(Busy::WouldBlock), Err(Some(sys::current_tid())))
        );
        l.unlock().unwrap();
        assert!(!l.is_locked());
    }

    #[test]
    fn glibc_robust_mutexes_keep_working_beside_ours() {
        let l = RawLock::new(Primitive::Lock, 0).unwrap();
        // SAFETY: plain pthread calls on a local, initialised robust mutex.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            let m = Box::into_raw(Box::new(std::mem::zeroed::<libc::pthread_mutex_t>()));
            libc::pthread_mutex_init(m, &attr);
            assert_eq!(libc::pthread_mutex_lock(m), 0);
            l.lock(true, Deadline::NEVER).unwrap();
            assert_eq!(libc::pthread_mutex_unlock(m), 0);
            assert_eq!(libc::pthread_mutex_lock(m), 0);
            l.unlock().unwrap();
            assert_eq!(libc::pthread_mutex_unlock(m), 0);
            libc::pthread_mutex_destroy(m);
            drop(Box::from_raw(m));
        }
    }

    #[test]
    fn holder_killed_in_another_process_gives_owner_died() {
        let l = RawLock::new(Primitive::Lock, 0).unwrap();
        let l2 = l.clone();
        let child = fork_then_park(move || {
            let _ = l2.lock(true, Deadline::NEVER);
        })
        .unwrap();
        let start = Instant::now();
        while !l.is_locked() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "child never locked"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        kill_and_reap(child);
        let got = l
            .lock(true, Deadline::after(Duration::from_secs(30)))
            .unwrap();
        assert_eq!(
            got,
            Acquired::OwnerDied {
                tid: child,
                pid: child
            }
        );
        l.unlock().unwrap();
        assert_eq!(l.lock(false, Deadline::NEVER), Ok(Acquired::Clean));
        l.unlock().unwrap();
    }

    #[test]
    fn fallback_detects_a_dead_unlisted_holder() {
        let l = RawLock::new(Primitive::Lock, 0).unwrap();
        let l2 = l.clone();
        let tid = std::thread::spawn(move || {
            sys::force_robust_fallback();
            l2.lock(true, Deadline::NEVER).unwrap();
            sys::current_tid()
        })
        .join()
        .unwrap();
        // The word still names the dead thread: no kernel help.
        assert_eq!(l.holder(), Some(tid));
        let got = l
            .lock(true, Deadline::after(Duration::from_secs(30)))
            .unwrap();
        assert_eq!(
            got,
            Acquired::OwnerDied {
                tid,
                pid: std::process::id()
            }
        );
        l.unlock().unwrap();
    }

    #[test]
    fn a_thread_without_a_c_library_list_gets_our_own() {
        let l = RawLock::new(Primitive::Lock, 0).unwrap();
        let l2 = l.clone();
        let tid = std::thread::spawn(move || {
            crate::sys::test_fork::unregister_robust_list();
            // The thread's cache is still empty, so this discovers and registers a head.
            assert!(sys::current_thread().robust.is_some());
            l2.lock(true, Deadline::NEVER).unwrap();
            sys::current_tid()
        })
        .join()
        .unwrap();
        let got = l
            .lock(true, Deadline::after(Duration::from_secs(30)))
            .unwrap();
        assert_eq!(
            got,
            Acquired::OwnerDied {
                tid,
                pid: std::process::id()
            }
        );
        l.unlock().unwrap();
    }

    #[test]
    fn timeout_is_reported_after_the_deadline() {
        let l = RawLock::new(Primitive::Lock, 0).unwrap();
        l.lock(true, Deadline::NEVER).unwrap();
        let l2 = l.clone();
        let (out, waited) = std::thread::spawn(move || {
            let start = Instant::now();
            let out = l2.lock(true, Deadline::after(Duration::from_millis(30)));
            (out, start.elapsed())
        })
        .join()
        .unwrap();
        assert_eq!(out, Err(Busy::Timeout));
        assert!(waited >= Duration::from_millis(30));
        l.unlock().unwrap();
    }
}
