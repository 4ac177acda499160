//! A rendezvous point for a fixed number of parties, reusable round after round.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sync::primitive::Primitive;
use crate::sync::raw_lock::{Acquired, RawLock, RawLockState, RAW_LOCK_LEN};
use crate::sync::spin;
use crate::sync::{BarrierError, SyncError};
use crate::sys::{Deadline, WaitOutcome};

/// Phases of the barrier (`phase` word), after Python's `threading.Barrier`.
///
/// | value | phase | arrivals |
/// |---|---|---|
/// | 0 | `FILLING`: waiters gather for round `round` | join |
/// | 1 | `DRAINING`: the round completed; its waiters are leaving | wait for the last to leave |
/// | 3 | `BROKEN`: aborted, timed out, or a party died holding `lock`, until `reset` | fail with `Broken` |
///
/// (2 was a resetting phase; `reset` now starts a new round at once, see `epoch`.)
const FILLING: u32 = 0;
const DRAINING: u32 = 1;
const BROKEN: u32 = 3;

/// The in-segment state of a barrier.
///
/// `phase`, `count`, `round`, `epoch` and `reset_rounds` change only under `lock`, the
/// robust lock of [`Lock`](crate::sync::Lock) (critical sections are a few
/// instructions and never block). They are atomics only so that every access is
/// defined; inside the lock `Relaxed` suffices. The lock is robust because a process can
/// be killed anywhere, inside these few instructions too: the next party to take the lock
/// then learns that its holder died, and since the words may be half-updated it breaks
/// the barrier; [`Barrier::reset`] rewrites every word a dead holder may have torn.
///
/// `seq` is the condition word: every change waiters care about bumps it (under the
/// lock) and sleepers wait on it (outside the lock), registered in `sleepers` while
/// still holding the lock, so that a bump always sees them and wakes them, and a bump
/// that finds nobody asleep costs no system call.
///
/// `round` numbers rounds: a completion and a reset both end the round and bump it, so
/// each number names one group of arrivals. A waiter records it on arrival and knows
/// its round ended as soon as it changes, whatever the phase says afterwards; bit
/// `round % 64` of `reset_rounds` says whether that round was ended by `reset` (the
/// waiter fails with `Broken`) or completed (it passed). An `abort` that comes after the
/// round completed, while its waiters are still leaving, never turns a pass into
/// `Broken`.
///
/// `count` holds the waiters inside (arrived and not yet left) since the last reset,
/// which is counted in `epoch`: a waiter leaves (decrements `count`) only when no reset
/// came since it arrived, because `reset` zeroes `count`. That is what lets `reset`
/// recover a barrier where a dead party still counts as inside.
#[repr(C)]
struct BarrierState {
    lock: RawLockState,
    seq: AtomicU32,
    sleepers: AtomicU32,
    phase: AtomicU32,
    /// Waiters inside the barrier: arrived in this epoch and not yet left.
    count: AtomicU32,
    round: AtomicU32,
    parties: AtomicU32,
    epoch: AtomicU32,
    _pad: u32,
    reset_rounds: AtomicU64,
}

// SAFETY: #[repr(C)], only atomics (and padding never read): every bit pattern is a
// valid state, shared between processes only through atomic operations; alignment ≤ 64.
#[allow(unsafe_code)]
unsafe impl crate::shm::PayloadState for BarrierState {}

const _: () = {
    assert!(std::mem::offset_of!(BarrierState, lock) == 0);
    assert!(std::mem::offset_of!(BarrierState, seq) == RAW_LOCK_LEN);
    assert!(std::mem::offset_of!(BarrierState, seq) == 40);
    assert!(std::mem::offset_of!(BarrierState, sleepers) == 44);
    assert!(std::mem::offset_of!(BarrierState, phase) == 48);
    assert!(std::mem::offset_of!(BarrierState, count) == 52);
    assert!(std::mem::offset_of!(BarrierState, round) == 56);
    assert!(std::mem::offset_of!(BarrierState, parties) == 60);
    assert!(std::mem::offset_of!(BarrierState, epoch) == 64);
    assert!(std::mem::offset_of!(BarrierState, reset_rounds) == 72);
    assert!(std::mem::size_of::<BarrierState>() == 80);
};

/// What a successful [`Barrier::wait`] returns.
///
/// # Examples
/// ```
/// let alone = shoal::Barrier::new(1)?;
/// let r = alone.wait()?; // the only party completes the round
/// assert_eq!(r.index(), 0);
/// assert!(r.is_leader());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWaitResult {
    index: usize,
    leader: bool,
}

impl BarrierWaitResult {
    /// The caller's place in the round, `0..parties`, in order of arrival (Python's
    /// return value of `wait`). Each round hands out every index exactly once.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::Barrier;
    ///
    /// let barrier = Barrier::new(3)?;
    /// let others: Vec<_> = (0..2)
    ///     .map(|_| {
    ///         let b = barrier.clone();
    ///         std::thread::spawn(move || b.wait().map(|r| r.index()))
    ///     })
    ///     .collect();
    /// let mut indexes = vec![barrier.wait()?.index()];
    /// for t in others {
    ///     indexes.push(t.join().unwrap()?);
    /// }
    /// indexes.sort();
    /// assert_eq!(indexes, [0, 1, 2]); // each index once per round
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the caller was the last to arrive, the one that completed the round
    /// (index `parties - 1`); exactly one waiter per round is the leader.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::Barrier;
    ///
    /// let barrier = Barrier::new(2)?;
    /// let other = barrier.clone();
    /// let t = std::thread::spawn(move || other.wait());
    /// let mine = barrier.wait()?;
    /// let theirs = t.join().unwrap()?;
    /// assert!(mine.is_leader() != theirs.is_leader()); // exactly one leader
    /// let leader = if mine.is_leader() { mine } else { theirs };
    /// assert_eq!(leader.index(), 1); // the last to arrive
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

/// A barrier shared between processes: `parties` waiters block in
/// [`wait`](Barrier::wait) until the last one arrives, then all go on (Python's
/// `multiprocessing.Barrier`).
///
/// The barrier can be used for any number of rounds. It breaks when a waiter times out
/// or someone calls [`abort`](Barrier::abort): every waiter then gets
/// [`BarrierError::Broken`] (the one that timed out gets [`BarrierError::Timeout`]),
/// and so does every later wait until [`reset`](Barrier::reset). A clone is another
/// handle on the same barrier, and so is the value a child process receives when the
/// barrier is passed as a [`Process`](crate::process) argument.
///
/// Waiting spins briefly, then sleeps on a futex.
///
/// # When a party dies
/// The barrier's few words sit behind a robust lock (the one under
/// [`Lock`](crate::sync::Lock)): a process killed while updating them does not leave
/// the barrier stuck. The next party to take the lock learns of the death, and since the
/// words may be half-updated, it breaks the barrier: every waiter gets
/// [`BarrierError::Broken`] until [`reset`](Barrier::reset).
///
/// A process killed while *blocked* in [`wait`](Barrier::wait) is another matter: the
/// barrier cannot tell it from a slow party. It still counts as arrived, so its round
/// completes one party short, or (when it dies after the round completed) the next round
/// waits for it to leave. Either way the other waiters block until one of them times out
/// ([`wait_timeout`](Barrier::wait_timeout)) or someone calls
/// [`abort`](Barrier::abort) (a supervisor that saw the death, for instance); both
/// release them with an error. [`reset`](Barrier::reset) then forgets the dead party
/// and makes the barrier usable again. Use timeouts where a party may die.
///
/// # Examples
/// ```
/// use shoal::sync::Barrier;
///
/// let barrier = Barrier::new(2)?;
/// let other = barrier.clone();
/// let t = std::thread::spawn(move || other.wait().map(|r| r.index()));
/// let mine = barrier.wait()?.index();
/// let theirs = t.join().unwrap()?;
/// assert_eq!(mine + theirs, 1); // indexes 0 and 1, in order of arrival
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    raw: RawLock,
}

impl Barrier {
    /// Creates a barrier for `parties` waiters.
    ///
    /// # Errors
    /// [`SyncError::InvalidParties`] for 0 or more than `u32::MAX` parties;
    /// [`SyncError::Shm`] when the shared memory cannot be created.
    ///
    /// # Examples
    /// ```
    /// let b = shoal::sync::Barrier::new(3)?;
    /// assert_eq!((b.parties(), b.n_waiting(), b.is_broken()), (3, 0, false));
    /// assert!(shoal::sync::Barrier::new(0).is_err());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new(parties: usize) -> Result<Barrier, SyncError> {
        let n = match u32::try_from(parties) {
            Ok(n) if n > 0 => n,
            _ => return Err(SyncError::InvalidParties { parties }),
        };
        let raw = RawLock::new(Primitive::Barrier, std::mem::size_of::<BarrierState>())?;
        let b = Barrier { raw };
        // Relaxed: the segment reaches no other thread or process before a clone or a
        // handoff, both of which synchronise. Every other word starts at zero.
        b.state().parties.store(n, Ordering::Relaxed);
        Ok(b)
    }

    fn state(&self) -> &BarrierState {
        self.raw.segment().state::<BarrierState>()
    }

    /// The number of waiters each round needs.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::sync::Barrier::new(4)?.parties(), 4);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn parties(&self) -> usize {
        self.state().parties.load(Ordering::Relaxed) as usize
    }

    /// Waiters blocked in the round that is filling now (0 while the barrier drains,
    /// resets or is broken).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::sync::Barrier::new(4)?.n_waiting(), 0);
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn n_waiting(&self) -> usize {
        let st = self.state();
        let _g = self.lock();
        if st.phase.load(Ordering::Relaxed) == FILLING {
            st.count.load(Ordering::Relaxed) as usize
        } else {
            0
        }
    }

    /// Whether the barrier is broken (until [`reset`](Barrier::reset)).
    ///
    /// # Examples
    /// ```
    /// let b = shoal::sync::Barrier::new(2)?;
    /// b.abort();
    /// assert!(b.is_broken());
    /// b.reset();
    /// assert!(!b.is_broken());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn is_broken(&self) -> bool {
        self.state().phase.load(Ordering::Acquire) == BROKEN
    }

    /// Waits until `parties` waiters have arrived.
    ///
    /// # Errors
    /// [`BarrierError::Broken`] when the barrier is or becomes broken before this round
    /// completes (aborted, reset, or another waiter timed out).
    ///
    /// # Examples
    /// ```
    /// let solo = shoal::sync::Barrier::new(1)?;
    /// let r = solo.wait()?;
    /// assert_eq!((r.index(), r.is_leader()), (0, true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_until(Deadline::NEVER)
    }

    /// Waits until `parties` waiters have arrived, at most `timeout`. A timeout breaks
    /// the barrier, as in Python.
    ///
    /// # Errors
    /// [`BarrierError::Timeout`] when `timeout` passed first (the barrier is then broken
    /// for everyone else); [`BarrierError::Broken`] as for [`wait`](Barrier::wait).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::sync::{Barrier, BarrierError};
    ///
    /// let b = Barrier::new(2)?;
    /// assert_eq!(b.wait_timeout(Duration::from_millis(1)), Err(BarrierError::Timeout));
    /// assert_eq!(b.wait(), Err(BarrierError::Broken));
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_until(Deadline::after(timeout))
    }

    /// Breaks the barrier: every waiter, now and until [`reset`](Barrier::reset), gets
    /// [`BarrierError::Broken`]. Waiters of a round that already completed are not
    /// affected.
    ///
    /// # Examples
    /// ```
    /// let b = shoal::sync::Barrier::new(2)?;
    /// b.abort();
    /// assert!(b.wait().is_err());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn abort(&self) {
        let mut g = self.lock();
        g.set_phase(BROKEN);
    }

    /// Makes the barrier usable again, at once: a new round starts. Waiters blocked in
    /// the round it ends get [`BarrierError::Broken`]; waiters of a round that already
    /// completed are not affected. Parties that died inside the barrier are forgotten.
    ///
    /// # Examples
    /// ```
    /// let b = shoal::sync::Barrier::new(1)?;
    /// b.abort();
    /// b.reset();
    /// assert!(b.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset(&self) {
        let st = self.state();
        let mut g = self.lock();
        // Every word a dead holder of the lock may have left half-updated is rewritten
        // here (`parties` is never written after creation).
        let phase = st.phase.load(Ordering::Relaxed);
        let round = st.round.load(Ordering::Relaxed);
        let bit = 1u64 << (round % 64);
        if phase == DRAINING {
            // The round already completed; its waiters still leaving have passed. The
            // next number is a fresh round.
            st.reset_rounds.fetch_and(!bit, Ordering::Relaxed);
        } else {
            // End the filling or broken round: its waiters fail with `Broken`.
            st.reset_rounds.fetch_or(bit, Ordering::Relaxed);
        }
        let next = round.wrapping_add(1);
        st.reset_rounds
            .fetch_and(!(1u64 << (next % 64)), Ordering::Relaxed);
        st.round.store(next, Ordering::Relaxed);
        st.epoch.store(
            st.epoch.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        st.count.store(0, Ordering::Relaxed);
        g.set_phase(FILLING);
    }

    fn wait_until(&self, deadline: Deadline) -> Result<BarrierWaitResult, BarrierError> {
        let st = self.state();
        let mut g = self.lock();

        // Wait for the previous round's waiters to leave.
        loop {
            match st.phase.load(Ordering::Relaxed) {
                FILLING => break,
                BROKEN => return Err(BarrierError::Broken),
                _ => {
                    if g.wait(deadline) == WaitOutcome::TimedOut {
                        match st.phase.load(Ordering::Relaxed) {
                            FILLING => break,
                            BROKEN => return Err(BarrierError::Broken),
                            _ => {
                                g.set_phase(BROKEN);
                                return Err(BarrierError::Timeout);
                            }
                        }
                    }
                }
            }
        }

        let parties = st.parties.load(Ordering::Relaxed);
        let index = st.count.load(Ordering::Relaxed);
        if index >= parties {
            // Only a dead holder of the lock can leave more arrivals than parties in a
            // filling round; it broke the barrier when the lock reported its death, so
            // this is not reached, but a torn count must not overflow the round.
            g.set_phase(BROKEN);
            return Err(BarrierError::Broken);
        }
        st.count.store(index + 1, Ordering::Relaxed);
        let round = st.round.load(Ordering::Relaxed);
        let epoch = st.epoch.load(Ordering::Relaxed);
        // `Some(passed)` once the round ended: completed (passed) or reset.
        let ended = |st: &BarrierState| {
            (st.round.load(Ordering::Relaxed) != round)
                .then(|| st.reset_rounds.load(Ordering::Relaxed) & (1 << (round % 64)) == 0)
        };
        let outcome = |passed: bool| {
            if passed {
                Ok(())
            } else {
                Err(BarrierError::Broken)
            }
        };

        let result = if index + 1 == parties {
            st.reset_rounds
                .fetch_and(!(1u64 << (round.wrapping_add(1) % 64)), Ordering::Relaxed);
            st.round.store(round.wrapping_add(1), Ordering::Relaxed);
            g.set_phase(DRAINING);
            Ok(())
        } else {
            loop {
                if let Some(passed) = ended(st) {
                    break outcome(passed);
                }
                if st.phase.load(Ordering::Relaxed) == BROKEN {
                    break Err(BarrierError::Broken);
                }
                if g.wait(deadline) == WaitOutcome::TimedOut {
                    if let Some(passed) = ended(st) {
                        break outcome(passed);
                    }
                    if st.phase.load(Ordering::Relaxed) != BROKEN {
                        g.set_phase(BROKEN);
                        break Err(BarrierError::Timeout);
                    }
                    break Err(BarrierError::Broken);
                }
            }
        };

        // Leave, unless a reset zeroed the count since we arrived; the last one out of a
        // drained round opens the next.
        if st.epoch.load(Ordering::Relaxed) == epoch {
            let left = st.count.load(Ordering::Relaxed).saturating_sub(1);
            st.count.store(left, Ordering::Relaxed);
            if left == 0 && st.phase.load(Ordering::Relaxed) == DRAINING {
                g.set_phase(FILLING);
            }
        }
        result.map(|()| BarrierWaitResult {
            index: index as usize,
            leader: index + 1 == parties,
        })
    }

    fn lock(&self) -> Guard<'_> {
        let mut g = Guard {
            raw: &self.raw,
            st: self.state(),
            wake: false,
        };
        g.relock();
        g
    }
}

/// The barrier's lock held; wakes condition sleepers after unlocking if the state
/// changed.
struct Guard<'a> {
    raw: &'a RawLock,
    st: &'a BarrierState,
    /// A change was published while someone slept on `seq`.
    wake: bool,
}

impl Guard<'_> {
    /// Changes the phase and tells the sleepers.
    fn set_phase(&mut self, phase: u32) {
        self.st.phase.store(phase, Ordering::Release);
        self.notify_all();
    }

    /// Bumps the condition word; the wake itself is made after unlocking, so that the
    /// woken do not collide with a lock still held.
    fn notify_all(&mut self) {
        self.st.seq.fetch_add(1, Ordering::Relaxed);
        if self.st.sleepers.load(Ordering::Relaxed) > 0 {
            self.wake = true;
        }
    }

    fn unlock(&mut self) {
        // Release ordering comes with the lock: our writes are visible to the next
        // holder. Fails only in a fork child that copied a guard of its parent's thread,
        // which cannot happen here (the guard never outlives a call).
        let _ = self.raw.unlock();
        if std::mem::take(&mut self.wake) {
            spin::wake_all(&self.st.seq);
        }
    }

    /// Takes the lock; when its previous holder died, breaks the barrier.
    fn relock(&mut self) {
        let acquired = loop {
            // Without a deadline the lock neither times out nor gives up.
            if let Ok(acquired) = self.raw.lock(true, Deadline::NEVER) {
                break acquired;
            }
        };
        if let Acquired::OwnerDied { .. } = acquired {
            // A party died between two of our words: the state may be torn. Nobody can
            // wait on it safely until a reset rewrites it.
            self.set_phase(BROKEN);
        }
    }

    /// Unlocks, waits for the next change (spinning briefly, then sleeping on `seq`)
    /// or the deadline, and locks again. The caller re-checks its condition.
    fn wait(&mut self, deadline: Deadline) -> WaitOutcome {
        let st = self.st;
        let seen = st.seq.load(Ordering::Relaxed);
        // Registered under the lock: any later bump (made under the lock) sees us.
        st.sleepers.fetch_add(1, Ordering::Relaxed);
        self.unlock();
        let changed = || st.seq.load(Ordering::Relaxed) != seen;
        let mut outcome = WaitOutcome::Woken;
        if !spin::spin_until(changed) {
            while !changed() {
                if spin::sleep_on(&st.seq, seen, deadline) == WaitOutcome::TimedOut {
                    outcome = WaitOutcome::TimedOut;
                    break;
                }
            }
        }
        st.sleepers.fetch_sub(1, Ordering::Relaxed);
        self.relock();
        outcome
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.unlock();
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("is_broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Primitive::Barrier.serialize(self.raw.segment(), s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Barrier, D::Error> {
        Ok(Barrier {
            raw: RawLock::deserialize(d, Primitive::Barrier, std::mem::size_of::<BarrierState>())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};
    use crate::sync::watchdog;
    use crate::sys::test_fork::{fork_then_park, kill_and_reap};
    use std::time::Instant;

    #[test]
    fn invalid_parties_are_refused() {
        assert!(matches!(
            Barrier::new(0),
            Err(SyncError::InvalidParties { parties: 0 })
        ));
        fn check<T: Send + Sync + Clone>() {}
        check::<Barrier>();
    }

    #[test]
    fn rounds_hand_out_every_index() {
        watchdog(|| {
            let b = Barrier::new(3).unwrap();
            let ts: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    std::thread::spawn(move || {
                        (0..200).map(|_| b.wait().unwrap()).collect::<Vec<_>>()
                    })
                })
                .collect();
            let all: Vec<Vec<BarrierWaitResult>> =
                ts.into_iter().map(|t| t.join().unwrap()).collect();
            for round in 0..200 {
                let mut idx: Vec<usize> = all.iter().map(|r| r[round].index()).collect();
                idx.sort_unstable();
                assert_eq!(idx, vec![0, 1, 2], "round {round}");
                let leaders = all.iter().filter(|r| r[round].is_leader()).count();
                assert_eq!(leaders, 1);
            }
        });
    }

    #[test]
    fn timeout_breaks_and_reset_restores() {
        watchdog(|| {
            let b = Barrier::new(3).unwrap();
            let other = b.clone();
            let t = std::thread::spawn(move || other.wait());
            while b.n_waiting() < 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let start = Instant::now();
            assert_eq!(
                b.wait_timeout(Duration::from_millis(30)),
                Err(BarrierError::Timeout)
            );
            assert!(start.elapsed() >= Duration::from_millis(30));
            assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
            assert!(b.is_broken());
            assert_eq!(b.wait(), Err(BarrierError::Broken));
            b.reset();
            assert!(!b.is_broken());
            assert_eq!(b.n_waiting(), 0);
        });
    }

    /// A round of a two-party barrier: this thread and another pass.
    fn two_parties_pass(b: &Barrier) {
        let other = b.clone();
        let t = std::thread::spawn(move || other.wait_timeout(Duration::from_secs(20)));
        assert!(b.wait_timeout(Duration::from_secs(20)).is_ok());
        assert!(t.join().unwrap().is_ok());
    }

    #[test]
    fn a_holder_killed_inside_the_lock_breaks_the_barrier() {
        watchdog(|| {
            let b = Barrier::new(2).unwrap();
            let b2 = b.clone();
            let child = fork_then_park(move || std::mem::forget(b2.lock())).unwrap();
            let start = Instant::now();
            while !b.raw.is_locked() {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "child never locked"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            kill_and_reap(child);
            assert_eq!(
                b.wait_timeout(Duration::from_secs(20)),
                Err(BarrierError::Broken)
            );
            assert!(b.is_broken());
            b.reset();
            two_parties_pass(&b);
        });
    }

    #[test]
    fn reset_forgets_a_party_that_never_leaves() {
        watchdog(|| {
            let b = Barrier::new(2).unwrap();
            // A party that arrived and vanished (as a killed process would): it still
            // counts as inside.
            {
                let st = b.state();
                let _g = b.lock();
                st.count.store(1, Ordering::Relaxed);
            }
            // The round completes one party short: we pass alone.
            assert!(b.wait_timeout(Duration::from_secs(20)).unwrap().is_leader());
            // The ghost never leaves: the next round cannot fill until a reset.
            assert_eq!(
                b.wait_timeout(Duration::from_millis(20)),
                Err(BarrierError::Timeout)
            );
            b.reset();
            two_parties_pass(&b);
        });
    }

    #[test]
    fn reset_breaks_the_waiters_of_the_round_it_ends() {
        watchdog(|| {
            let b = Barrier::new(3).unwrap();
            let other = b.clone();
            let t = std::thread::spawn(move || other.wait_timeout(Duration::from_secs(20)));
            while b.n_waiting() < 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            b.reset();
            assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
            assert!(!b.is_broken());
            assert_eq!(b.n_waiting(), 0);
        });
    }

    #[test]
    fn handoff_round_trip_and_wrong_primitive() {
        let b = Barrier::new(2).unwrap();
        let enc = encode(&b).unwrap();
        let back: Barrier = decode(&enc.bytes, enc.fds).unwrap();
        assert_eq!(back.parties(), 2);
        back.abort();
        assert!(b.is_broken());

        let enc = encode(&b).unwrap();
        let err = decode::<crate::sync::Semaphore>(&enc.bytes, enc.fds).unwrap_err();
        assert!(
            err.to_string().contains("a barrier, not a semaphore"),
            "{err}"
        );
    }
}
