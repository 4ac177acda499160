//! Waiting: spin with an adaptive budget, then sleep on a futex, checking claims that
//! stay stuck for a dead claimant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::sys::{self, Deadline};

use super::{
    signed, GetFail, PutFail, Ring, WaitFail, CLAIM_NAP, IDLE_NAP, SPIN_MAX, SPIN_MIN, STUCK,
};

/// Longest spin phase in wall time, about the cost of waking a sleeping thread on
/// another CPU: spinning longer than that cannot beat sleeping.
const SPIN_TIME: std::time::Duration = std::time::Duration::from_micros(30);

/// Pauses between two yields of the spin phase.
const YIELD_EVERY: u32 = 128;

/// Pauses of a consumer that found nothing, between two polls of the spin phase.
const EMPTY_BACKOFF: u32 = 9;

/// Sleep of a producer blocked by the message bound (it also looks for dead consumers).
const BOUNDED_NAP: std::time::Duration = std::time::Duration::from_millis(20);

/// Why an attempt inside [`Ring::wait_loop`] failed.
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

/// How often a waiter on a single-producer ring (a pipe) checks that its peer is alive.
const PEER_CHECK: std::time::Duration = std::time::Duration::from_millis(20);

impl Ring {
    // ----- waiting -------------------------------------------------------------------

    pub(super) fn spin_budget(&self, for_data: bool) -> u32 {
        self.spin[usize::from(for_data)].0.load(Ordering::Relaxed)
    }

    /// The spin budget of a wait beginning now: 0 when the peer (the side that would
    /// end the wait) works on this very CPU, since spinning there only keeps the peer
    /// from running: the waiter sleeps at once (a futex round trip). The peer's CPU word
    /// sits on the peer's own busy line, so it is read only when the last wait in this
    /// direction was not over before its first yield (a peer on another CPU is met
    /// while spinning, and then nothing is read).
    fn spin_budget_here(&self, for_data: bool) -> u32 {
        let spin = self.spin_budget(for_data);
        if !self.contended[usize::from(for_data)].load(Ordering::Relaxed) {
            return spin;
        }
        let peer = if for_data {
            &self.ctrl().tail.0.cpu
        } else {
            self.consumer_cpu_word()
        };
        let here = sys::current_cpu().map_or(0, |c| c.wrapping_add(1));
        if here != 0 && peer.load(Ordering::Relaxed) == here {
            0
        } else {
            spin
        }
    }

    /// Where consumers record their CPU: on the line they write at every claim anyway.
    fn consumer_cpu_word(&self) -> &std::sync::atomic::AtomicU32 {
        if self.spsc {
            &self.ctrl().count.0.cpu
        } else {
            &self.ctrl().head.0.cpu
        }
    }

    /// Records the calling thread's CPU as a producer's (`true`) or consumer's, on the
    /// line its claim has just written (so the store costs no extra line transfer); only
    /// when it changed.
    pub(super) fn note_cpu(&self, producer: bool) {
        let word = if producer {
            &self.ctrl().tail.0.cpu
        } else {
            self.consumer_cpu_word()
        };
        let here = sys::current_cpu().map_or(0, |c| c.wrapping_add(1));
        if word.load(Ordering::Relaxed) != here {
            word.store(here, Ordering::Relaxed);
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

    /// Whether at least [`PEER_CHECK`] has passed since `last` (milliseconds since a
    /// process-wide epoch, plus one; 0: never), recording now when it has.
    fn due(&self, last: &AtomicU64) -> bool {
        static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let now = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
        let then = last.load(Ordering::Relaxed);
        if then != 0 && now.saturating_sub(then) < PEER_CHECK.as_millis() as u64 {
            return false;
        }
        last.store(now, Ordering::Relaxed);
        true
    }

    /// Pipes: whether the peer of a wait (the sender when waiting for data, else the
    /// receiver) is known to be dead. Asks the kernel at most once per [`PEER_CHECK`]
    /// per ring handle (a sleeping waiter naps no longer than that), and remembers a
    /// dead pid, so that a receiver draining a dead sender's pipe learns it at once.
    fn peer_gone(&self, for_data: bool) -> bool {
        if !self.death_ends() {
            return false;
        }
        let st = &self.ctrl().stream.0;
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
            &self.ctrl().tail.0.owner
        } else {
            &self.ctrl().count.0.reader
        };
        if known.load(Ordering::Relaxed) == last && word.load(Ordering::Relaxed) == 0 {
            return true;
        }
        if !self.due(&self.peer_checked) {
            return false;
        }
        if !self.end_dead(for_data) {
            return false;
        }
        known.store(last, Ordering::Relaxed);
        true
    }

    pub(super) fn learn(&self, for_data: bool, met_while_spinning: bool) {
        let spin = &self.spin[usize::from(for_data)].0;
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

    /// Runs `attempt` until it succeeds: spinning first, then sleeping on the futex of
    /// `which` (data or space), checking stuck claims for dead claimants.
    pub(super) fn wait_loop<T, F>(
        &self,
        deadline: Deadline,
        for_data: bool,
        mut attempt: F,
    ) -> Result<T, WaitFail>
    where
        F: FnMut() -> Result<T, Blocked>,
    {
        // Decided at the first failed attempt, so that an operation that succeeds at once
        // reads nothing more (see `spin_budget_here`).
        let mut budget: Option<u32> = None;
        let mut spins = 0u32;
        // The spin phase also ends after SPIN_TIME of wall time: on a busy machine the
        // peer may be descheduled, and spinning through our time slice only delays it.
        let mut started: Option<Instant> = None;
        // Pauses since the last yield: the yield cadence counts pauses, not polls, so
        // that a consumer's backed-off empty polls yield as often as plain ones.
        let mut paused = 0u32;
        let mut yielded = false;
        let mut keep_spinning = |spins: &mut u32, pauses: u32| -> bool {
            *spins += 1;
            if *spins >= *budget.get_or_insert_with(|| self.spin_budget_here(for_data)) {
                return false;
            }
            paused += pauses;
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
        loop {
            match attempt() {
                Ok(v) => {
                    if spins > 0 {
                        self.learn(for_data, true);
                        self.note_contended(for_data, yielded);
                    }
                    return Ok(v);
                }
                Err(Blocked::Closed) => return Err(WaitFail::Closed),
                // A zero timeout (the `try_` forms of streamed messages) tries once.
                Err(_) if spins.is_multiple_of(256) && deadline.expired() => {
                    return Err(WaitFail::Timeout)
                }
                Err(Blocked::Full(blocked)) => {
                    // Hysteresis: polling the cell the consumer is reading right now
                    // would steal its line on every poll; wait instead until a cell a
                    // batch further on is free, then fill the whole batch.
                    let ahead = if self.spsc {
                        blocked.wrapping_add(self.ring_bytes() / 8)
                    } else {
                        blocked.wrapping_add((self.cells / 8).clamp(1, 64))
                    };
                    let mut go_on = true;
                    while !self.released(ahead) {
                        go_on = keep_spinning(&mut spins, 1);
                        if !go_on {
                            break;
                        }
                    }
                    if !go_on || !keep_spinning(&mut spins, 1) {
                        break;
                    }
                }
                Err(Blocked::Empty(_)) => {
                    // Polling the cell a producer is writing right now steals its line
                    // on every poll: pause about as long as the `tail` read that the
                    // lazy classification saves, then poll again.
                    for _ in 1..EMPTY_BACKOFF {
                        std::hint::spin_loop();
                    }
                    if !keep_spinning(&mut spins, EMPTY_BACKOFF) {
                        break;
                    }
                }
                Err(_) => {
                    if !keep_spinning(&mut spins, 1) {
                        break;
                    }
                }
            }
        }
        if budget != Some(0) {
            self.learn(for_data, false);
        }
        self.note_contended(for_data, true);
        let ctrl = self.ctrl();
        let w = if for_data {
            &ctrl.data.0
        } else {
            &ctrl.space.0
        };
        let mut stuck: Option<(u64, Instant)> = None;
        loop {
            if deadline.expired() {
                return Err(WaitFail::Timeout);
            }
            // Pipes: when the peer is gone, one last try, then end of stream.
            if self.spsc && self.peer_gone(for_data) {
                return match attempt() {
                    Ok(v) => Ok(v),
                    Err(_) => Err(WaitFail::Closed),
                };
            }
            w.sleepers.fetch_add(1, Ordering::SeqCst);
            let epoch = w.epoch.load(Ordering::SeqCst);
            if self.spsc && !for_data {
                self.adopt_read_pos();
            }
            // Pipes: a send in progress commits without a fence; read its writer word
            // before looking for data, and only nap while it is held (see
            // `Ring::take_end`).
            let sending =
                self.spsc && for_data && self.ctrl().tail.0.owner.load(Ordering::SeqCst) != 0;
            let outcome = match attempt() {
                Err(Blocked::Empty(pos)) => Err(self.get_blocked(GetFail::Empty { pos })),
                other => other,
            };
            let nap = match outcome {
                Ok(v) => {
                    w.sleepers.fetch_sub(1, Ordering::SeqCst);
                    return Ok(v);
                }
                Err(Blocked::Closed) => {
                    w.sleepers.fetch_sub(1, Ordering::SeqCst);
                    return Err(WaitFail::Closed);
                }
                Err(Blocked::Full(_)) if self.max_messages != 0 => {
                    // Bounded by count: a dead consumer's claim is never met at the tail,
                    // so look for one now and then.
                    match stuck {
                        Some((_, since)) if since.elapsed() >= STUCK => {
                            self.recover_dead_consumers();
                            stuck = Some((0, Instant::now()));
                        }
                        Some(_) => {}
                        None => stuck = Some((0, Instant::now())),
                    }
                    BOUNDED_NAP
                }
                Err(Blocked::Idle | Blocked::Full(_) | Blocked::Empty(_)) => {
                    stuck = None;
                    // Nothing to read: settle any claim a dead consumer left (its message
                    // is put again), at most every PEER_CHECK per ring handle.
                    if for_data && !self.spsc && self.due(&self.scanned) {
                        self.recover_dead_consumers();
                    }
                    if sending {
                        CLAIM_NAP
                    } else if self.spsc {
                        PEER_CHECK
                    } else {
                        IDLE_NAP
                    }
                }
                Err(Blocked::Busy) => CLAIM_NAP,
                Err(Blocked::Claimed(pos)) => {
                    match stuck {
                        Some((p, since)) if p == pos => {
                            if since.elapsed() >= STUCK {
                                let fixed = if for_data {
                                    self.recover_put_claim(pos)
                                } else {
                                    self.recover_get_claim(pos)
                                };
                                if !fixed {
                                    stuck = Some((pos, Instant::now()));
                                }
                            }
                        }
                        _ => stuck = Some((pos, Instant::now())),
                    }
                    CLAIM_NAP
                }
            };
            let until = match deadline.remaining() {
                Some(left) => Deadline::after(left.min(nap)),
                None => Deadline::after(nap),
            };
            let _ = sys::futex_wait(&w.epoch, epoch, until);
            w.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether the cell at previous-lap position `pos` has been released (is free for
    /// `pos + cells`), or is further on still.
    fn released(&self, pos: u64) -> bool {
        if self.spsc {
            return self.spsc_released(pos);
        }
        let seq = self.cell(pos).seq.load(Ordering::Relaxed) & !super::TOMB_BIT;
        signed(seq, pos.wrapping_add(self.cells)) >= 0
    }

    /// Classifies a failed put for the wait loop.
    pub(super) fn put_blocked(&self, fail: PutFail) -> Blocked {
        match fail {
            PutFail::Closed => Blocked::Closed,
            PutFail::Streaming => {
                self.recover_dead_writer();
                Blocked::Idle
            }
            PutFail::Full { blocked } => {
                // Consumed but not released: a consumer is between its CAS and release.
                let head = self.ctrl().head.0.pos.load(Ordering::SeqCst);
                if signed(head, blocked) > 0 && self.max_messages == 0 {
                    Blocked::Claimed(blocked)
                } else {
                    Blocked::Full(blocked)
                }
            }
        }
    }

    /// Classifies a failed get for the spin phase of the wait loop without reading
    /// `tail` (see [`Blocked::Empty`]).
    pub(super) fn get_blocked_lazy(&self, fail: GetFail) -> Blocked {
        match fail {
            GetFail::Closed => Blocked::Closed,
            GetFail::Empty { pos } => Blocked::Empty(pos),
        }
    }

    /// Classifies a failed get for the wait loop.
    pub(super) fn get_blocked(&self, fail: GetFail) -> Blocked {
        match fail {
            GetFail::Closed => Blocked::Closed,
            GetFail::Empty { pos } => {
                let tail = self.tail_pos();
                // A single-producer ring's tail moves only after a commit: nothing is
                // ever claimed and unwritten there.
                if signed(tail, pos) > 0 && !self.spsc {
                    Blocked::Claimed(pos)
                } else {
                    Blocked::Idle
                }
            }
        }
    }
}
