//! Waiting, for every flavour: spin with an adaptive budget ([`spin_phase`]), then sleep
//! on a futex ([`sleep_phase`]). What differs between flavours — where a peer records
//! its CPU, how a full ring frees a batch of room, what a sleeper does about an attempt
//! that failed (settle a dead claimant's claim, check that a pipe's peer lives) — is
//! asked of the flavour through [`Blocking`], statically dispatched.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sys::{self, Deadline};

use super::layout::Line;
use super::segment::Mapped;
use super::WaitFail;

/// How long a claim must stay stuck before its claimant's liveness is checked.
pub(super) const STUCK: Duration = Duration::from_millis(3);
/// Longest single futex sleep of an idle waiter; a safety net, not the wake mechanism.
pub(super) const IDLE_NAP: Duration = Duration::from_millis(100);
/// Sleep while a claim is in progress (a peer is between CAS and commit).
pub(super) const CLAIM_NAP: Duration = Duration::from_micros(50);
/// Sleep of a producer blocked by the message bound (it also looks for dead consumers).
pub(super) const BOUNDED_NAP: Duration = Duration::from_millis(20);
/// How often a waiter checks that its peer is alive (pipes), or looks for claims left by
/// dead consumers (queues): also the longest nap of an idle pipe waiter.
pub(super) const PEER_CHECK: Duration = Duration::from_millis(20);

/// Smallest and largest spin budget (attempts of the spin phase).
const SPIN_MIN: u32 = 64;
const SPIN_MAX: u32 = 1 << 14;

/// Longest spin phase in wall time, about the cost of waking a sleeping thread on
/// another CPU: spinning longer than that cannot beat sleeping.
const SPIN_TIME: Duration = Duration::from_micros(30);

/// Pauses between two yields of the spin phase.
const YIELD_EVERY: u32 = 128;

/// Why an attempt inside a wait loop failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// Nothing in progress: sleep until woken.
    Idle,
    /// A claim at this position is in progress: nap briefly, then check its claimant.
    Claimed(u64),
    /// No room: the cell at this (previous-lap) position is not yet free. Sleeps like
    /// `Idle`; while spinning, the producer waits for a batch of cells to free up.
    Full(u64),
    /// Nothing committed at this position. Whether a claim is in progress there (which
    /// needs a read of `tail`) is found out only in the sleep phase, so that a spinning
    /// consumer does not pull the producers' `tail` line to its CPU on every poll.
    Empty(u64),
    /// Single-producer rings: another thread or process is using this end (sending, or
    /// receiving) right now. Naps briefly; a dead holder is taken over by the next try.
    Busy,
    /// The ring is closed.
    Closed,
}

/// A claim seen stuck in the sleep phase: its position, and since when.
pub(super) type Stuck = Option<(u64, Instant)>;

/// The process-local state of a ring handle's waits: adaptive spin budgets of gets and
/// puts, which grow while peers are met spinning and shrink when waits end up sleeping
/// (each on its own cache line, away from the read-only fields that every operation
/// reads), and whether the last wait in each direction had to yield or sleep.
pub(super) struct Spin {
    budget: [Line<AtomicU32>; 2],
    contended: [AtomicBool; 2],
}

impl Spin {
    /// The starting state: a middling budget, no contention seen.
    pub(super) fn new() -> Spin {
        Spin {
            budget: [Line(AtomicU32::new(1024)), Line(AtomicU32::new(1024))],
            contended: [AtomicBool::new(false), AtomicBool::new(false)],
        }
    }

    /// The spin budget of waits for data (`for_data`) or for room.
    fn budget(&self, for_data: bool) -> u32 {
        self.budget[usize::from(for_data)].0.load(Ordering::Relaxed)
    }

    /// Grows the budget after a wait that met its peer while spinning, halves it after
    /// one that had to sleep.
    fn learn(&self, for_data: bool, met_while_spinning: bool) {
        let spin = &self.budget[usize::from(for_data)].0;
        let b = spin.load(Ordering::Relaxed);
        let nb = if met_while_spinning {
            (b + b / 8 + 16).min(SPIN_MAX)
        } else {
            (b / 2).max(SPIN_MIN)
        };
        if nb != b {
            spin.store(nb, Ordering::Relaxed);
        }
    }

    /// Remembers whether a wait in this direction went past the fast part of the spin
    /// phase (`true`: it had to yield or sleep), writing only on a change.
    fn note_contended(&self, for_data: bool, contended: bool) {
        let flag = &self.contended[usize::from(for_data)];
        if flag.load(Ordering::Relaxed) != contended {
            flag.store(contended, Ordering::Relaxed);
        }
    }
}

/// A flavour of ring as its wait loop sees it: what a blocked operation needs to know
/// of the ring it waits on.
pub(super) trait Blocking {
    /// The mapped segment: its futex words.
    fn mapped(&self) -> &Mapped;

    /// The handle's spin state.
    fn spin(&self) -> &Spin;

    /// The word in which the side that ends a wait records its CPU: the producers' for
    /// a wait for data (`for_data`), the consumers' for a wait for room.
    fn peer_cpu(&self, for_data: bool) -> &AtomicU32;

    /// Spin phase of a put blocked at the previous-lap position `blocked`: whether room
    /// a batch further on is free (polling the very cell the consumer is reading would
    /// steal its line on every poll).
    fn room_ahead(&self, blocked: u64) -> bool;

    /// Sleep phase, before each round: whether the wait must end because the peer is
    /// gone (pipes); one last attempt is then made.
    fn peer_gone(&self, for_data: bool) -> bool;

    /// Sleep phase, once counted among the sleepers and before the attempt: prepares the
    /// attempt, and says whether a peer is inside an operation right now (the waiter
    /// then only naps briefly).
    fn going_to_sleep(&self, for_data: bool) -> bool;

    /// Sleep phase: what to do about an attempt that failed with `blocked` (all but
    /// `Closed`), `busy_peer` being what [`going_to_sleep`](Self::going_to_sleep) said;
    /// returns how long to sleep at most. `stuck` tracks a claim that stays stuck
    /// across rounds, for the flavour to settle it once its claimant is found dead.
    fn nap(&self, for_data: bool, blocked: Blocked, busy_peer: bool, stuck: &mut Stuck)
        -> Duration;

    /// Runs `attempt` until it succeeds: spinning first ([`spin_phase`]), then sleeping
    /// on the futex of the data (`for_data`) or space word ([`sleep_phase`]).
    #[inline]
    fn wait_loop<T, F>(
        &self,
        deadline: Deadline,
        for_data: bool,
        mut attempt: F,
    ) -> Result<T, WaitFail>
    where
        Self: Sized,
        F: FnMut() -> Result<T, Blocked>,
    {
        // The fast path, outside the phases: most operations succeed at once.
        match attempt() {
            Ok(v) => return Ok(v),
            Err(Blocked::Closed) => return Err(WaitFail::Closed),
            // A zero timeout (the `try_` forms of streamed messages) tries once.
            Err(_) if deadline.expired() => return Err(WaitFail::Timeout),
            Err(_) => {}
        }
        match spin_phase(self, deadline, for_data, &mut attempt) {
            Some(done) => done,
            None => sleep_phase(self, deadline, for_data, attempt),
        }
    }
}

/// Records the calling thread's CPU (plus one) in `word`, which lies on the line its
/// claim has just written (so the store costs no extra line transfer); only when it
/// changed.
#[inline]
pub(super) fn note_cpu(word: &AtomicU32) {
    let here = sys::current_cpu().map_or(0, |c| c.wrapping_add(1));
    if word.load(Ordering::Relaxed) != here {
        word.store(here, Ordering::Relaxed);
    }
}

/// Whether at least [`PEER_CHECK`] has passed since `last` (milliseconds since a
/// process-wide epoch, plus one; 0: never), recording now when it has.
pub(super) fn due(last: &AtomicU64) -> bool {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let now = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
    let then = last.load(Ordering::Relaxed);
    if then != 0 && now.saturating_sub(then) < PEER_CHECK.as_millis() as u64 {
        return false;
    }
    last.store(now, Ordering::Relaxed);
    true
}

/// The spin budget of a wait beginning now: 0 when the peer (the side that would end
/// the wait) works on this very CPU, since spinning there only keeps the peer from
/// running: the waiter sleeps at once (a futex round trip). The peer's CPU word sits on
/// the peer's own busy line, so it is read only when the last wait in this direction
/// was not over before its first yield (a peer on another CPU is met while spinning,
/// and then nothing is read).
fn spin_budget_here(ring: &impl Blocking, for_data: bool) -> u32 {
    let spin = ring.spin();
    let budget = spin.budget(for_data);
    if !spin.contended[usize::from(for_data)].load(Ordering::Relaxed) {
        return budget;
    }
    let here = sys::current_cpu().map_or(0, |c| c.wrapping_add(1));
    if here != 0 && ring.peer_cpu(for_data).load(Ordering::Relaxed) == here {
        0
    } else {
        budget
    }
}

/// The spin phase, entered after a failed attempt: `attempt` again and again within the
/// adaptive spin budget (and [`SPIN_TIME`]), yielding now and then. `Some` when the
/// operation ended here (done, closed, or timed out), `None` when the budget is spent
/// and the waiter must sleep; the budget learns from both.
fn spin_phase<T, R, F>(
    ring: &R,
    deadline: Deadline,
    for_data: bool,
    attempt: &mut F,
) -> Option<Result<T, WaitFail>>
where
    R: Blocking,
    F: FnMut() -> Result<T, Blocked>,
{
    // Decided at the first failed attempt, so that an operation that succeeds at once
    // reads nothing more (see `spin_budget_here`).
    let mut budget: Option<u32> = None;
    let mut spins = 0u32;
    // The spin phase also ends after SPIN_TIME of wall time: on a busy machine the
    // peer may be descheduled, and spinning through our time slice only delays it.
    let mut started: Option<Instant> = None;
    // Pauses since the last yield.
    let mut paused = 0u32;
    let mut yielded = false;
    let mut keep_spinning = |spins: &mut u32| -> bool {
        *spins += 1;
        if *spins >= *budget.get_or_insert_with(|| spin_budget_here(ring, for_data)) {
            return false;
        }
        paused += 1;
        if paused >= YIELD_EVERY {
            paused = 0;
            if started.get_or_insert_with(Instant::now).elapsed() >= SPIN_TIME {
                return false;
            }
            // When the peer shares our CPU, a yield hands it the CPU at once; when
            // it has its own, the yield returns at once.
            yielded = true;
            std::thread::yield_now();
            return true;
        }
        std::hint::spin_loop();
        true
    };
    let spin = ring.spin();
    loop {
        match attempt() {
            Ok(v) => {
                // Entered after a failed attempt: whatever ends the wait here was met
                // while spinning.
                spin.learn(for_data, true);
                spin.note_contended(for_data, yielded);
                return Some(Ok(v));
            }
            Err(Blocked::Closed) => return Some(Err(WaitFail::Closed)),
            // A zero timeout (the `try_` forms of streamed messages) tries once.
            Err(_) if spins.is_multiple_of(256) && deadline.expired() => {
                return Some(Err(WaitFail::Timeout))
            }
            Err(Blocked::Full(blocked)) => {
                // Hysteresis: wait until room a batch further on is free, then fill
                // the whole batch.
                let mut go_on = true;
                while !ring.room_ahead(blocked) {
                    go_on = keep_spinning(&mut spins);
                    if !go_on {
                        break;
                    }
                }
                if !go_on || !keep_spinning(&mut spins) {
                    break;
                }
            }
            // A consumer that found nothing polls again after one pause. A longer
            // backoff (it was 9 pauses, meant to leave the producer's line alone) only
            // delayed each wake-up: a pause is 25 ns on this kind of machine, and
            // BENCHMARKS.md has the ping-pong and throughput figures of both.
            Err(_) => {
                if !keep_spinning(&mut spins) {
                    break;
                }
            }
        }
    }
    if budget != Some(0) {
        spin.learn(for_data, false);
    }
    spin.note_contended(for_data, true);
    None
}

/// The sleep phase: sleeps on the futex of the data (`for_data`) or space word between
/// attempts, for at most the nap the flavour chooses for the failure (settling, on the
/// way, claims that stay stuck because their claimant died); ends the wait when the
/// flavour says the peer is gone.
fn sleep_phase<T, R, F>(
    ring: &R,
    deadline: Deadline,
    for_data: bool,
    mut attempt: F,
) -> Result<T, WaitFail>
where
    R: Blocking,
    F: FnMut() -> Result<T, Blocked>,
{
    let ctrl = ring.mapped().ctrl();
    let w = if for_data {
        &ctrl.data.0
    } else {
        &ctrl.space.0
    };
    let mut stuck: Stuck = None;
    loop {
        if deadline.expired() {
            return Err(WaitFail::Timeout);
        }
        // When the peer is gone, one last try, then end of stream.
        if ring.peer_gone(for_data) {
            return match attempt() {
                Ok(v) => Ok(v),
                Err(_) => Err(WaitFail::Closed),
            };
        }
        w.sleepers.fetch_add(1, Ordering::SeqCst);
        let epoch = w.epoch.load(Ordering::SeqCst);
        let busy_peer = ring.going_to_sleep(for_data);
        let nap = match attempt() {
            Ok(v) => {
                w.sleepers.fetch_sub(1, Ordering::SeqCst);
                return Ok(v);
            }
            Err(Blocked::Closed) => {
                w.sleepers.fetch_sub(1, Ordering::SeqCst);
                return Err(WaitFail::Closed);
            }
            Err(blocked) => ring.nap(for_data, blocked, busy_peer, &mut stuck),
        };
        let until = match deadline.remaining() {
            Some(left) => Deadline::after(left.min(nap)),
            None => Deadline::after(nap),
        };
        let _ = sys::futex_wait(&w.epoch, epoch, until);
        w.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}
