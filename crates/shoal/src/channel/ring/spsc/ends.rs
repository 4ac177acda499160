//! Who is at each end of a pipe direction: the processes that sent and received are
//! recorded in the ring, so that a receiver reports end of stream (and a sender a closed
//! pipe) once every process at the other end is dead.

use std::sync::atomic::Ordering;

use super::super::claim;
use super::super::wait;
use super::Ring;

impl Ring {
    /// Records the calling process as a sender (`true`) or receiver of this ring: as
    /// the last one, and in the small table of those that end of stream waits for (a
    /// slot that is free or whose process died is reused).
    #[inline]
    pub(crate) fn note_end(&self, sender: bool) {
        let pid = claim::my_pid();
        let st = &self.ctrl().stream.0;
        let last = if sender {
            &st.sender_pid
        } else {
            &st.receiver_pid
        };
        // Every operation asks; only the first one of a process at this end writes.
        if last.load(Ordering::Relaxed) != pid {
            self.note_new_end(sender, pid);
        }
    }

    /// [`note_end`](Ring::note_end) for a process not yet recorded as the last one.
    #[cold]
    #[inline(never)]
    fn note_new_end(&self, sender: bool, pid: u32) {
        let st = &self.ctrl().stream.0;
        let (last, table) = if sender {
            (&st.sender_pid, &st.senders)
        } else {
            (&st.receiver_pid, &st.receivers)
        };
        last.store(pid, Ordering::Relaxed);
        if table.iter().any(|w| w.load(Ordering::Relaxed) == pid) {
            return;
        }
        for w in table {
            let cur = w.load(Ordering::Relaxed);
            if (cur == 0 || !claim::owner_alive(u64::from(cur) << 32))
                && w.compare_exchange(cur, pid, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
    }

    /// Whether the death of every process at the other end counts as end of stream
    /// through this handle (`true` unless turned off).
    pub(crate) fn death_ends(&self) -> bool {
        self.death_ends.load(Ordering::Relaxed)
    }

    /// Turns [`death_ends`](Ring::death_ends) on or off for this handle.
    pub(crate) fn set_death_ends(&self, on: bool) {
        self.death_ends.store(on, Ordering::Relaxed);
    }

    /// Whether every process recorded as a sender (`true`) or receiver of this ring is
    /// dead, and no live one holds that end right now. `false` when none has been
    /// recorded yet.
    pub(crate) fn end_dead(&self, sender: bool) -> bool {
        if !self.death_ends() {
            return false;
        }
        let ctrl = self.ctrl();
        let st = &ctrl.stream.0;
        let (last, table, word) = if sender {
            (&st.sender_pid, &st.senders, &ctrl.tail.0.owner)
        } else {
            (&st.receiver_pid, &st.receivers, &ctrl.count.0.reader)
        };
        let last = last.load(Ordering::Relaxed);
        if last == 0 {
            return false;
        }
        let holder = word.load(Ordering::Relaxed);
        if holder != 0 && claim::owner_alive(holder) {
            return false;
        }
        let alive = |pid: u32| pid != 0 && claim::owner_alive(u64::from(pid) << 32);
        !alive(last) && !table.iter().any(|w| alive(w.load(Ordering::Relaxed)))
    }

    /// Whether the peer of a wait (the sender when waiting for data, else the receiver)
    /// is known to be dead. Asks the kernel at most once per [`wait::PEER_CHECK`] per
    /// ring handle (a sleeping waiter naps no longer than that), and remembers a dead
    /// pid, so that a receiver draining a dead sender's pipe learns it at once.
    pub(super) fn peer_dead(&self, for_data: bool) -> bool {
        if !self.death_ends() {
            return false;
        }
        let ctrl = self.ctrl();
        let st = &ctrl.stream.0;
        let last = if for_data {
            &st.sender_pid
        } else {
            &st.receiver_pid
        }
        .load(Ordering::Relaxed);
        if last == 0 {
            return false;
        }
        // Found dead before, with the same last peer: only a live holder of that end
        // (a word read without a system call) could have appeared since.
        let known = &self.dead_peer[usize::from(for_data)];
        let word = if for_data {
            &ctrl.tail.0.owner
        } else {
            &ctrl.count.0.reader
        };
        if known.load(Ordering::Relaxed) == last && word.load(Ordering::Relaxed) == 0 {
            return true;
        }
        if !wait::due(&self.peer_checked) || !self.end_dead(for_data) {
            return false;
        }
        known.store(last, Ordering::Relaxed);
        true
    }
}
