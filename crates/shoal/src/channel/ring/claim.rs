//! Claim slots: which thread of which process holds which cells.
//!
//! Each thread that uses a ring owns one [`Slot`] of it (found once, then cached in a
//! thread-local table). Before a producer CASes `tail` it writes the range it is about to
//! claim into its slot; a consumer does the same before it CASes `head`. Those writes are
//! ordered before the CAS (a release operation), so a process that later reads `tail`
//! or `head` past a cell also sees the record of whoever claimed it. A cell that stays
//! uncommitted (or unreleased) for too long is recovered only when *every* slot whose
//! range covers it belongs to a dead process: the real claimant is always among them.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::shm::Segment;
use crate::sys;

use super::layout::{Slot, IDLE, SLOTS};

/// `pid << 32 | thread number`: who owns a slot.
pub(crate) type Token = u64;

/// A process-unique number for each `Ring` handle mapped here, the cache key (never
/// reused, so a stale entry can never match a ring mapped later at the same address).
pub(crate) fn next_ring_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The last slot used by this thread: the fast path of [`my_slot`], a plain `Cell`
/// read with no borrow flag and no search.
#[derive(Clone, Copy)]
struct Fast {
    ring: u64,
    pid: u32,
    slot: *const Slot,
    token: Token,
}

struct Entry {
    /// The ring handle's id, the cache key.
    key: u64,
    seg: Weak<Segment>,
    slot: *const Slot,
    token: Token,
}

struct Cache {
    /// The process the entries belong to (a fork child finds its parent's pid here).
    pid: u32,
    entries: Vec<Entry>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        // A thread that exits gives its slots back, if the ring is still mapped here and
        // the slot is still ours (not inherited by a fork child, whose pid differs).
        for e in self.entries.drain(..) {
            if let Some(_alive) = e.seg.upgrade() {
                // SAFETY: `_alive` keeps the mapping that holds the slot.
                let slot = unsafe { &*e.slot };
                if slot.put_pos.load(Ordering::Relaxed) == IDLE
                    && slot.get_pos.load(Ordering::Relaxed) == IDLE
                {
                    let _ = slot.owner.compare_exchange(
                        e.token,
                        0,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
            }
        }
    }
}

thread_local! {
    static FAST: std::cell::Cell<Fast> = const {
        std::cell::Cell::new(Fast {
            ring: 0,
            pid: 0,
            slot: std::ptr::null(),
            token: 0,
        })
    };
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            pid: 0,
            entries: Vec::new(),
        })
    };
}

/// This process's pid, cached per thread and refreshed after `fork` (no system call).
pub(crate) fn my_pid() -> u32 {
    sys::current_thread().pid
}

/// The calling thread's token, `pid << 32 | thread number`.
pub(crate) fn my_token() -> Token {
    let me = sys::current_thread();
    (u64::from(me.pid) << 32) | u64::from(me.tid)
}

/// Whether the process owning `token` still runs. This process always counts as alive
/// (its threads cannot be killed one by one).
pub(crate) fn owner_alive(token: Token) -> bool {
    let pid = (token >> 32) as u32;
    pid == my_pid() || sys::pid_running(pid)
}

/// The slot of the calling thread in the ring whose slots start at `slots`, acquiring one
/// the first time. `resolved(slot)` tells whether a dead owner's claims are settled so
/// that its slot may be taken over.
///
/// Returns `None` when every slot is held by a live thread.
///
/// # Safety
/// `slots` points at the ring's [`SLOTS`] slots inside the mapping `seg` holds, and
/// `ring` is that ring handle's id (never reused by another handle): the slot returned
/// lives as long as the borrow of `seg`.
pub(crate) unsafe fn my_slot(
    seg: &Arc<Segment>,
    ring: u64,
    slots: *const Slot,
    resolved: impl Fn(&Slot) -> bool,
) -> Option<(&Slot, Token)> {
    let fast = FAST.get();
    let pid = sys::current_thread().pid;
    if fast.ring == ring && fast.pid == pid {
        // SAFETY: the entry was made for this very ring handle (ids are never reused),
        // whose mapping `seg` keeps alive; a slot is never taken from a live owner.
        return Some((unsafe { &*fast.slot }, fast.token));
    }
    // SAFETY: the caller's obligations are `slow_slot`'s.
    let found = unsafe { slow_slot(seg, ring, slots, resolved) };
    if let Some((slot, token)) = found {
        FAST.set(Fast {
            ring,
            pid,
            slot,
            token,
        });
    }
    found
}

/// [`my_slot`] past the one-entry fast cache.
///
/// # Safety
/// As for [`my_slot`].
unsafe fn slow_slot<'seg>(
    seg: &'seg Arc<Segment>,
    key: u64,
    slots: *const Slot,
    resolved: impl Fn(&Slot) -> bool,
) -> Option<(&'seg Slot, Token)> {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let me = sys::current_thread();
        if c.pid != me.pid {
            // A fork child: the slots in the cache belong to the parent's thread. Drop the
            // entries without giving the slots back (they are not ours to give).
            c.entries.clear();
            c.pid = me.pid;
        }
        if let Some(e) = c.entries.iter().find(|e| e.key == key) {
            // SAFETY: the entry's ring may have been unmapped and another mapped at the
            // same address; the caller's `seg` keeps the current mapping alive, and the
            // owner check below rejects a slot that is not ours.
            let slot = unsafe { &*e.slot };
            if slot.owner.load(Ordering::Relaxed) == e.token
                && std::ptr::eq(e.seg.as_ptr(), Arc::as_ptr(seg))
            {
                // SAFETY: the slot lives in the mapping `seg` holds, for the borrow of
                // `seg` the caller gets it for.
                return Some((unsafe { &*e.slot }, e.token));
            }
        }
        // Forget this key and every ring no longer mapped here.
        c.entries
            .retain(|e| e.key != key && e.seg.strong_count() > 0);
        let token = my_token();
        let start = (me.tid as usize).wrapping_mul(7) % SLOTS;
        let slot_at = |i: usize| -> &'seg Slot {
            // SAFETY: `i < SLOTS`, and the mapping `seg` holds SLOTS slots from `slots`
            // (the caller's obligation) for the borrow of `seg`.
            unsafe { &*slots.add(i) }
        };
        let mut found = None;
        for pass in 0..2 {
            for n in 0..SLOTS {
                let i = (start + n) % SLOTS;
                let slot = slot_at(i);
                let owner = slot.owner.load(Ordering::Acquire);
                let free = if pass == 0 {
                    owner == 0
                } else {
                    owner != 0 && !owner_alive(owner) && resolved(slot)
                };
                if free
                    && slot
                        .owner
                        .compare_exchange(owner, token, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    slot.put_pos.store(IDLE, Ordering::Relaxed);
                    slot.get_pos.store(IDLE, Ordering::Relaxed);
                    found = Some(i);
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        let index = found?;
        c.entries.push(Entry {
            key,
            seg: Arc::downgrade(seg),
            slot: slot_at(index),
            token,
        });
        Some((slot_at(index), token))
    })
}
