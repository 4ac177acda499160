//! A rendezvous point for a fixed number of parties, reusable round after round.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shm::Segment;
use crate::sync::signal_segment::{self, Primitive};
use crate::sync::{BarrierError, PrimitiveError};
use crate::sys::{Deadline, WaitOutcome};

/// Phases of the barrier (`phase` word), as in Python's `threading.Barrier`.
///
/// | value | phase | arrivals |
/// |---|---|---|
/// | 0 | `FILLING`: waiters gather for round `round` | join |
/// | 1 | `DRAINING`: the round completed; its waiters are leaving | wait for the last to leave |
/// | 2 | `RESETTING`: `reset` broke the round; its waiters are leaving | wait for the last to leave |
/// | 3 | `BROKEN`: aborted or timed out, until `reset` | fail with `Broken` |
const FILLING: u32 = 0;
const DRAINING: u32 = 1;
const RESETTING: u32 = 2;
const BROKEN: u32 = 3;

/// States of the private `lock` word (Drepper's futex mutex): 0 free, 1 held, 2 held
/// with possible sleepers.
const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// The in-segment state of a barrier.
///
/// `phase`, `count` and `round` change only under `lock`, a small futex mutex private to
/// the barrier (critical sections are a few instructions and never block). They are
/// atomics only so that every access is defined; inside the lock `Relaxed` suffices.
///
/// `seq` is the condition word: every change waiters care about bumps it (under the
/// lock) and sleepers wait on it (outside the lock), registered in `sleepers` while
/// still holding the lock, so that a bump always sees them and wakes them, and a bump
/// that finds nobody asleep costs no system call.
///
/// `round` numbers completed rounds. A waiter records it on arrival and has passed as
/// soon as it changes, whatever the phase says afterwards: an `abort` that comes after
/// the round completed, while its waiters are still leaving, never turns a pass into
/// `Broken`. Waiters of a round always leave before the next round fills (`DRAINING`),
/// so no waiter of round n is confused by round n + 1.
#[repr(C)]
struct BarrierState {
    lock: AtomicU32,
    seq: AtomicU32,
    sleepers: AtomicU32,
    phase: AtomicU32,
    /// Waiters inside the barrier: arrived in this round and not yet left.
    count: AtomicU32,
    round: AtomicU32,
    parties: AtomicU32,
}

const _: () = {
    assert!(std::mem::offset_of!(BarrierState, lock) == 0);
    assert!(std::mem::offset_of!(BarrierState, seq) == 4);
    assert!(std::mem::offset_of!(BarrierState, sleepers) == 8);
    assert!(std::mem::offset_of!(BarrierState, phase) == 12);
    assert!(std::mem::offset_of!(BarrierState, count) == 16);
    assert!(std::mem::offset_of!(BarrierState, round) == 20);
    assert!(std::mem::offset_of!(BarrierState, parties) == 24);
    assert!(std::mem::size_of::<BarrierState>() == 28);
};

/// What a successful [`Barrier::wait`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWaitResult {
    index: usize,
    leader: bool,
}

impl BarrierWaitResult {
    /// The caller's place in the round, `0..parties`, in order of arrival (Python's
    /// return value of `wait`). Each round hands out every index exactly once.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the caller was the last to arrive, the one that completed the round
    /// (index `parties - 1`); exactly one waiter per round is the leader.
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
/// # Platform notes
/// The barrier is not robust against the death of a party. A process killed while
/// blocked in [`wait`](Barrier::wait) still counts as arrived: its round completes one
/// party short, and the next round waits for it to leave, which it never does, so later
/// waits block until they time out or someone calls [`abort`](Barrier::abort). Use
/// [`wait_timeout`](Barrier::wait_timeout) where a party may die. The barrier's few
/// words sit behind a small private lock held for a handful of instructions; a process
/// killed inside that window would leave the barrier stuck as well.
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
    seg: Arc<Segment>,
}

impl Barrier {
    /// Creates a barrier for `parties` waiters.
    ///
    /// # Errors
    /// [`PrimitiveError::InvalidParties`] for 0 or more than `u32::MAX` parties;
    /// [`PrimitiveError::Shm`] when the shared memory cannot be created.
    ///
    /// # Examples
    /// ```
    /// let b = shoal::sync::Barrier::new(3)?;
    /// assert_eq!((b.parties(), b.n_waiting(), b.is_broken()), (3, 0, false));
    /// assert!(shoal::sync::Barrier::new(0).is_err());
    /// # Ok::<(), shoal::sync::PrimitiveError>(())
    /// ```
    pub fn new(parties: usize) -> Result<Barrier, PrimitiveError> {
        let n = match u32::try_from(parties) {
            Ok(n) if n > 0 => n,
            _ => return Err(PrimitiveError::InvalidParties { parties }),
        };
        let seg = signal_segment::create(Primitive::Barrier, std::mem::size_of::<BarrierState>())?;
        let b = Barrier { seg };
        // Relaxed: the segment reaches no other thread or process before a clone or a
        // handoff, both of which synchronise. Every other word starts at zero.
        b.state().parties.store(n, Ordering::Relaxed);
        Ok(b)
    }

    fn state(&self) -> &BarrierState {
        // SAFETY: the payload is 64-byte aligned and at least size_of::<BarrierState>()
        // bytes (checked when created or imported); BarrierState holds only atomics,
        // valid for every bit pattern and shared with other processes only through atomic
        // operations; the mapping lives as long as `self.seg`, which outlives the result.
        unsafe { &*self.seg.payload_ptr().cast::<BarrierState>() }
    }

    /// The number of waiters each round needs.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::sync::Barrier::new(4)?.parties(), 4);
    /// # Ok::<(), shoal::sync::PrimitiveError>(())
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
    /// # Ok::<(), shoal::sync::PrimitiveError>(())
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
    /// # Ok::<(), shoal::sync::PrimitiveError>(())
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
    /// # Ok::<(), shoal::sync::PrimitiveError>(())
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
    /// # Ok::<(), shoal::sync::PrimitiveError>(())
    /// ```
    pub fn abort(&self) {
        let mut g = self.lock();
        g.set_phase(BROKEN);
    }

    /// Makes the barrier usable again. Waiters blocked in the current round get
    /// [`BarrierError::Broken`]; arrivals wait for them to leave, then start a new round.
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
        let phase = st.phase.load(Ordering::Relaxed);
        if st.count.load(Ordering::Relaxed) > 0 {
            // Waiters still inside: let them leave first. A draining round ends in
            // FILLING by itself.
            if phase == FILLING || phase == BROKEN {
                g.set_phase(RESETTING);
            }
        } else {
            g.set_phase(FILLING);
        }
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
        st.count.store(index + 1, Ordering::Relaxed);
        let round = st.round.load(Ordering::Relaxed);
        let passed = |st: &BarrierState| st.round.load(Ordering::Relaxed) != round;

        let result = if index + 1 == parties {
            st.round.store(round.wrapping_add(1), Ordering::Relaxed);
            g.set_phase(DRAINING);
            Ok(())
        } else {
            loop {
                if passed(st) {
                    break Ok(());
                }
                match st.phase.load(Ordering::Relaxed) {
                    BROKEN | RESETTING => break Err(BarrierError::Broken),
                    _ => {}
                }
                if g.wait(deadline) == WaitOutcome::TimedOut {
                    if passed(st) {
                        break Ok(());
                    }
                    match st.phase.load(Ordering::Relaxed) {
                        BROKEN | RESETTING => break Err(BarrierError::Broken),
                        _ => {
                            g.set_phase(BROKEN);
                            break Err(BarrierError::Timeout);
                        }
                    }
                }
            }
        };

        // Leave; the last one out of a drained or reset round opens the next.
        let left = st.count.load(Ordering::Relaxed) - 1;
        st.count.store(left, Ordering::Relaxed);
        if left == 0 {
            let phase = st.phase.load(Ordering::Relaxed);
            if phase == DRAINING || phase == RESETTING {
                g.set_phase(FILLING);
            }
        }
        result.map(|()| BarrierWaitResult {
            index: index as usize,
            leader: index + 1 == parties,
        })
    }

    fn lock(&self) -> Guard<'_> {
        let lock = &self.state().lock;
        // Acquire: the words the previous holder wrote are visible once we hold it.
        let mut free = lock
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if !free {
            free = signal_segment::spin_until(|| {
                lock.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            });
        }
        if !free {
            // Mark it contended so that the holder wakes us, then sleep until it is free.
            while lock.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
                signal_segment::sleep_on(lock, CONTENDED, Deadline::NEVER);
            }
        }
        Guard {
            st: self.state(),
            wake: false,
        }
    }
}

/// The private lock held; wakes condition sleepers after unlocking if the state changed.
struct Guard<'a> {
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
        // Release: our writes are visible to the next holder.
        if self.st.lock.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            signal_segment::wake_one(&self.st.lock);
        }
        if std::mem::take(&mut self.wake) {
            signal_segment::wake_all(&self.st.seq);
        }
    }

    fn relock(&mut self) {
        let lock = &self.st.lock;
        if lock
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        while lock.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            signal_segment::sleep_on(lock, CONTENDED, Deadline::NEVER);
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
        if !signal_segment::spin_until(changed) {
            while !changed() {
                if signal_segment::sleep_on(&st.seq, seen, deadline) == WaitOutcome::TimedOut {
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
        signal_segment::serialize(&self.seg, Primitive::Barrier, s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Barrier, D::Error> {
        let seg = signal_segment::deserialize(
            d,
            Primitive::Barrier,
            std::mem::size_of::<BarrierState>(),
        )?;
        Ok(Barrier { seg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};
    use crate::sync::watchdog;
    use std::time::Instant;

    #[test]
    fn invalid_parties_are_refused() {
        assert!(matches!(
            Barrier::new(0),
            Err(PrimitiveError::InvalidParties { parties: 0 })
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
