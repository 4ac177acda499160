//! A job: the items of one call (`apply`, `map`, `imap`…) and their outcomes as they
//! arrive, shared between the caller and the pool's supervisor thread.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::pool::TaskError;

/// The outcomes of consecutive items of a job: their encoded results one after the
/// other, or the error of one item. Results travel in runs so that a chunk of a
/// thousand results costs one allocation, not a thousand.
#[derive(Debug)]
pub(crate) struct Piece {
    /// Index of the first item.
    pub(crate) first: u64,
    /// The encoded results, back to back.
    pub(crate) data: Vec<u8>,
    /// Where each result ends in `data`.
    pub(crate) ends: Vec<u32>,
    /// The error of the one item of this piece (then `ends` is empty).
    pub(crate) error: Option<TaskError>,
}

impl Piece {
    /// A piece for one failed item.
    pub(crate) fn failed(index: u64, error: TaskError) -> Piece {
        Piece {
            first: index,
            data: Vec::new(),
            ends: Vec::new(),
            error: Some(error),
        }
    }

    /// An empty run of results starting at item `first`.
    pub(crate) fn run(first: u64) -> Piece {
        Piece {
            first,
            data: Vec::new(),
            ends: Vec::new(),
            error: None,
        }
    }

    /// How many items it covers.
    pub(crate) fn len(&self) -> u64 {
        if self.error.is_some() {
            1
        } else {
            self.ends.len() as u64
        }
    }

    /// The outcome of its `k`-th item.
    #[inline]
    pub(crate) fn outcome(&self, k: usize) -> Result<&[u8], TaskError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let start = if k == 0 { 0 } else { self.ends[k - 1] as usize };
        Ok(&self.data[start..self.ends[k] as usize])
    }

    /// Whether every item of it succeeded.
    pub(crate) fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The shared state of one call.
#[derive(Debug, Default)]
pub(crate) struct Job {
    state: Mutex<JobState>,
    cond: Condvar,
}

/// What the caller and the supervisor see of a job.
#[derive(Debug, Default)]
pub(crate) struct JobState {
    /// Outcomes not yet taken by the caller, in arrival order.
    pub(crate) arrived: VecDeque<Piece>,
    /// Items submitted so far.
    pub(crate) submitted: u64,
    /// Outcomes delivered so far (taken or not).
    pub(crate) finished: u64,
    /// No more items will be submitted.
    pub(crate) input_done: bool,
    /// The caller went away: outcomes are dropped, pending chunks are not run.
    pub(crate) abandoned: bool,
    waker: Option<Waker>,
    /// Threads blocked in [`Job::wait_until`] (a notify costs a system call: skip it
    /// when nobody waits).
    waiting: u32,
}

impl JobState {
    /// Every submitted item has its outcome, and no more will come.
    pub(crate) fn complete(&self) -> bool {
        self.input_done && self.finished == self.submitted
    }
}

impl Job {
    pub(crate) fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records outcomes and wakes whoever waits for them.
    pub(crate) fn deliver(&self, pieces: impl IntoIterator<Item = Piece>) {
        let waker = {
            let mut st = self.lock();
            let keep = !st.abandoned;
            for p in pieces {
                st.finished += p.len();
                if keep {
                    st.arrived.push_back(p);
                }
            }
            if !keep {
                return;
            }
            (st.waker.take(), st.waiting > 0)
        };
        let (waker, notify) = waker;
        if notify {
            self.cond.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Registers the waker of a future waiting for this job.
    pub(crate) fn set_waker(st: &mut JobState, waker: &Waker) {
        match &st.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.waker = Some(waker.clone()),
        }
    }

    /// Waits until `done(state)` or `timeout`; returns the guard and whether `done`.
    /// Waits in slices so that `stopped()` (the pool is gone) is noticed.
    pub(crate) fn wait_until<'a>(
        &'a self,
        timeout: Option<Duration>,
        mut done: impl FnMut(&JobState) -> bool,
        stopped: impl Fn() -> bool,
    ) -> (MutexGuard<'a, JobState>, bool) {
        const SLICE: Duration = Duration::from_millis(100);
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.lock();
        loop {
            if done(&st) {
                return (st, true);
            }
            if stopped() {
                // The supervisor delivers every outcome before it stops; look once more.
                let ok = done(&st);
                return (st, ok);
            }
            let slice = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return (st, false);
                    }
                    (d - now).min(SLICE)
                }
                None => SLICE,
            };
            st.waiting += 1;
            st = self
                .cond
                .wait_timeout(st, slice)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.waiting -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_wake_a_waiter() {
        let job = std::sync::Arc::new(Job::default());
        job.lock().submitted = 2;
        job.lock().input_done = true;
        let j2 = job.clone();
        let t = std::thread::spawn(move || {
            let mut run = Piece::run(0);
            run.data.push(1);
            run.ends.push(1);
            j2.deliver([run, Piece::failed(1, TaskError::Closed)]);
        });
        let (st, ok) = job.wait_until(Some(Duration::from_secs(10)), JobState::complete, || false);
        assert!(ok);
        assert_eq!(st.arrived.len(), 2);
        assert_eq!(st.arrived[0].outcome(0), Ok(&[1u8][..]));
        assert!(!st.arrived[1].is_ok());
        drop(st);
        t.join().unwrap();
    }
}
