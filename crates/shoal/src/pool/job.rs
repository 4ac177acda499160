//! A job: the items of one call (`apply`, `map`, `imap`…) and their outcomes as they
//! arrive, shared between the caller and the pool's supervisor thread.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::pool::TaskError;

/// The encoded result of one item, or why there is none.
pub(crate) type Outcome = Result<Vec<u8>, TaskError>;

/// The shared state of one call.
#[derive(Debug, Default)]
pub(crate) struct Job {
    state: Mutex<JobState>,
    cond: Condvar,
}

/// What the caller and the supervisor see of a job.
#[derive(Debug, Default)]
pub(crate) struct JobState {
    /// Outcomes not yet taken by the caller, in arrival order, with their item index.
    pub(crate) arrived: VecDeque<(u64, Outcome)>,
    /// Items submitted so far.
    pub(crate) submitted: u64,
    /// Outcomes delivered so far (taken or not).
    pub(crate) finished: u64,
    /// No more items will be submitted.
    pub(crate) input_done: bool,
    /// The caller went away: outcomes are dropped, pending chunks are not run.
    pub(crate) abandoned: bool,
    waker: Option<Waker>,
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
    pub(crate) fn deliver(&self, outcomes: impl IntoIterator<Item = (u64, Outcome)>) {
        let waker = {
            let mut st = self.lock();
            let before = st.arrived.len();
            if st.abandoned {
                let n = outcomes.into_iter().count() as u64;
                st.finished += n;
                return;
            }
            st.arrived.extend(outcomes);
            st.finished += (st.arrived.len() - before) as u64;
            st.waker.take()
        };
        self.cond.notify_all();
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
            st = self
                .cond
                .wait_timeout(st, slice)
                .unwrap_or_else(|e| e.into_inner())
                .0;
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
            j2.deliver([(0, Ok(vec![1])), (1, Err(TaskError::Closed))]);
        });
        let (st, ok) = job.wait_until(Some(Duration::from_secs(10)), JobState::complete, || false);
        assert!(ok);
        assert_eq!(st.arrived.len(), 2);
        drop(st);
        t.join().unwrap();
    }
}
