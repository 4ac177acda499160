//! [`IMap`]: the lazy, streaming results of `imap` and `imap_unordered`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::pool::async_result::{decode, decode_in_place};
use crate::pool::feed::feed;
use crate::pool::job::{Job, Piece};
use crate::pool::progress::Progress;
use crate::pool::shared::Shared;
use crate::pool::{TaskError, TimedOut};

/// The time one automatic chunk should take a worker, by the workers' pace.
const CHUNK_NS: u64 = 2_000_000;

/// What [`IMap::fill`] found.
enum Fill {
    /// `current` holds an item not yet yielded.
    Ready,
    /// Every item was yielded.
    End,
    /// The deadline passed first.
    TimedOut,
}

/// The results of [`Pool::imap`](crate::Pool::imap) (in input order) or
/// [`Pool::imap_unordered`](crate::Pool::imap_unordered) (in completion order), one
/// `Result` per item.
///
/// The input is pulled only as results are consumed: at most
/// [`max_in_flight`](IMap::max_in_flight) items are submitted and not yet yielded, so
/// memory stays bounded however long (even endless) the input is. Dropping the iterator
/// drops the items not yet started.
///
/// # Examples
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// shoal::task!(square);
///
/// let pool = shoal::Pool::builder().processes(2).build()?;
/// let first: Vec<u64> = pool
///     .imap(square, 0u64..) // endless
///     .take(5)
///     .collect::<Result<_, _>>()?;
/// assert_eq!(first, vec![0, 1, 4, 9, 16]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct IMap<'p, I, R> {
    shared: &'p Arc<Shared>,
    job: Arc<Job>,
    task: u32,
    input: Option<I>,
    chunksize: usize,
    /// The chunk size was chosen by the pool: chunks shrink (never below one item, never
    /// above the first size) to take about [`CHUNK_NS`] each by the workers' pace, so
    /// that slow tasks are spread evenly and fast ones still travel in long chunks.
    auto_chunks: Option<usize>,
    max_in_flight: u64,
    ordered: bool,
    submitted: u64,
    yielded: u64,
    /// Pieces that arrived ahead of their turn (ordered), by first item.
    reorder: BTreeMap<u64, Piece>,
    /// Pieces in arrival order (unordered).
    queue: VecDeque<Piece>,
    /// The piece being yielded, and the next item in it.
    current: Option<(Piece, usize)>,
    error: Option<TaskError>,
    progress: Progress,
    /// When waiting for outcomes gives up (timed forms only).
    deadline: Option<Instant>,
    _result: PhantomData<fn() -> R>,
}

impl<I, R> fmt::Debug for IMap<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("ordered", &self.ordered)
            .field("in_flight", &self.in_flight())
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl<'p, I, R> IMap<'p, I, R> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: &'p Arc<Shared>,
        task: Result<u32, TaskError>,
        input: I,
        chunksize: usize,
        max_in_flight: u64,
        ordered: bool,
        progress: Progress,
    ) -> IMap<'p, I, R> {
        let (task, error) = match task {
            Ok(t) => (t, None),
            Err(e) => (0, Some(e)),
        };
        IMap {
            shared,
            job: Arc::new(Job::default()),
            task,
            input: Some(input),
            chunksize: chunksize.max(1),
            auto_chunks: None,
            max_in_flight: max_in_flight.max(chunksize as u64),
            ordered,
            submitted: 0,
            yielded: 0,
            reorder: BTreeMap::new(),
            queue: VecDeque::new(),
            current: None,
            error,
            progress,
            deadline: None,
            _result: PhantomData,
        }
    }

    /// Items submitted and not yet yielded (running, queued, or finished and waiting
    /// their turn).
    ///
    /// # Examples
    /// ```
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// shoal::task!(square);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let mut results = pool.imap(square, 0u64..); // endless input
    /// for expected in (0u64..3000).map(|x| x * x) {
    ///     assert_eq!(results.next().unwrap()?, expected);
    ///     assert!(results.in_flight() <= results.max_in_flight());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_flight(&self) -> u64 {
        self.submitted - self.yielded
    }

    /// The bound on [`in_flight`](IMap::in_flight).
    ///
    /// # Examples
    /// ```
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// shoal::task!(square);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let mut results = pool.imap(square, 0u64..10_000_000);
    /// assert_eq!(results.next().unwrap()?, 0);
    /// // Ten million items, but only a bounded number were taken from the input.
    /// assert!(results.in_flight() <= results.max_in_flight());
    /// assert!(results.max_in_flight() < 10_000_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight
    }
}

impl<I, A, R> IMap<'_, I, R>
where
    I: Iterator<Item = A>,
    A: Serialize,
    R: DeserializeOwned,
{
    /// Makes `current` hold at least one item not yet yielded (feeding the input and
    /// waiting, until the deadline when there is one, as needed).
    fn fill(&mut self) -> Fill {
        loop {
            if let Some((p, k)) = &self.current {
                if (*k as u64) < p.len() {
                    return Fill::Ready;
                }
                self.current = None;
            }
            let next = if self.ordered {
                self.reorder.remove(&self.yielded)
            } else {
                self.queue.pop_front()
            };
            if let Some(p) = next {
                self.current = Some((p, 0));
                continue;
            }
            // Top up the input while there is room.
            let in_flight = self.in_flight();
            self.chunksize = self.next_chunksize();
            if let Some(input) = &mut self.input {
                let room = self.max_in_flight.saturating_sub(in_flight);
                // Refill by whole chunks, not item by item.
                if room >= self.chunksize as u64 || in_flight == 0 {
                    let (n, exhausted) = feed(
                        self.shared,
                        &self.job,
                        self.task,
                        self.chunksize,
                        input,
                        room,
                    );
                    self.submitted += n;
                    if exhausted {
                        self.input = None;
                        self.job.lock().input_done = true;
                    }
                }
            }
            if self.input.is_none() && self.yielded == self.submitted {
                self.progress.finish();
                return Fill::End;
            }
            // Wait for outcomes.
            let shared = self.shared;
            let left = self
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()));
            let (mut st, _) =
                self.job
                    .wait_until(left, |st| !st.arrived.is_empty(), || shared.stopped());
            if st.arrived.is_empty() && !shared.stopped() {
                // Only a deadline ends a wait with nothing, while the pool runs.
                return Fill::TimedOut;
            }
            if st.arrived.is_empty() {
                // The pool stopped and nothing will come: fail what is missing.
                drop(st);
                let base = self.yielded;
                let mut covered = vec![false; (self.submitted - base) as usize];
                for p in self.reorder.values().chain(self.queue.iter()) {
                    for i in p.first..p.first + p.len() {
                        if let Some(c) = i
                            .checked_sub(base)
                            .and_then(|d| covered.get_mut(d as usize))
                        {
                            *c = true;
                        }
                    }
                }
                for (d, c) in covered.into_iter().enumerate() {
                    if !c {
                        let i = base + d as u64;
                        let p = Piece::failed(i, TaskError::Terminated { task: i });
                        if self.ordered {
                            self.reorder.insert(i, p);
                        } else {
                            self.queue.push_back(p);
                        }
                    }
                }
                self.input = None;
                continue;
            }
            if self.ordered {
                self.reorder
                    .extend(st.arrived.drain(..).map(|p| (p.first, p)));
            } else {
                self.queue.extend(st.arrived.drain(..));
            }
        }
    }

    /// Decodes every outcome into `out` (the fast path of `map`), recording every failed
    /// item in `failures` (then `out` is left incomplete: the caller reports the
    /// failures, so results are no longer kept). `false` when the deadline passed first.
    pub(crate) fn collect_outcomes(
        &mut self,
        out: &mut Vec<R>,
        failures: &mut Vec<TaskError>,
    ) -> bool {
        if let Some(e) = self.error.take() {
            self.input = None;
            failures.push(e);
            return true;
        }
        loop {
            match self.fill() {
                Fill::Ready => {}
                Fill::End => return true,
                Fill::TimedOut => return false,
            }
            let (p, k) = self.current.as_mut().expect("filled");
            if let Some(e) = &p.error {
                *k += 1;
                self.yielded += 1;
                self.progress.advance();
                failures.push(e.clone());
                out.clear();
                continue;
            }
            // The rest of the piece at once: nothing in the loop returns early, so the
            // counts move once per piece, not once per item.
            let from = *k;
            let mut start = if from == 0 {
                0
            } else {
                p.ends[from - 1] as usize
            };
            for (i, &end) in (p.first + from as u64..).zip(&p.ends[from..]) {
                let end = end as usize;
                let r = decode_in_place(i, &p.data[start..end], end - start);
                start = end;
                match r {
                    Ok(v) if failures.is_empty() => out.push(v),
                    Ok(_) => {}
                    Err(e) => {
                        failures.push(e);
                        out.clear();
                    }
                }
            }
            let n = p.ends.len() - from;
            *k = p.ends.len();
            self.yielded += n as u64;
            self.progress.advance_by(n as u64);
        }
    }

    /// Items yielded (or collected) so far.
    pub(crate) fn yielded(&self) -> u64 {
        self.yielded
    }

    /// Lets the chunk size adapt to the task's cost (see `auto_chunks`): the pool chose
    /// it, the caller did not.
    pub(crate) fn adapt_chunks(&mut self) {
        self.auto_chunks = Some(self.chunksize);
    }

    /// The chunk size for the next items: by the workers' pace when it adapts.
    fn next_chunksize(&self) -> usize {
        match (self.auto_chunks, self.shared.pace()) {
            (Some(first), pace) if pace > 0 => {
                let by_pace = (CHUNK_NS / pace).clamp(1, first as u64);
                by_pace as usize
            }
            _ => self.chunksize,
        }
    }

    /// Sets the deadline of the waits that follow (`None`: wait as long as needed).
    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn next_outcome(&mut self) -> Result<Option<Result<R, TaskError>>, ()> {
        if let Some(e) = self.error.take() {
            // The function cannot run at all: one error, then the end.
            self.input = None;
            return Ok(Some(Err(e)));
        }
        match self.fill() {
            Fill::Ready => {}
            Fill::End => return Ok(None),
            Fill::TimedOut => return Err(()),
        }
        let (p, k) = self.current.as_mut().expect("filled");
        let i = p.first + *k as u64;
        let o = p.outcome(*k);
        *k += 1;
        self.yielded += 1;
        self.progress.advance();
        Ok(Some(o.and_then(|b| decode(i, b))))
    }

    /// The next outcome, like [`Iterator::next`], waiting at most `timeout` for it
    /// (Python's `IMapIterator.next(timeout)`). After a time-out the iterator is intact:
    /// the item is still running, and a later call yields it.
    ///
    /// # Errors
    /// [`TimedOut`] when no outcome arrived within `timeout`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    /// shoal::task!(nap);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// let mut it = pool.imap(nap, [300, 1]);
    /// // The first item takes 300 ms: a 1 ms wait gives up, the item runs on.
    /// assert!(it.next_timeout(Duration::from_millis(1)).is_err());
    /// assert_eq!(it.next_timeout(Duration::from_secs(30))?, Some(Ok(300)));
    /// assert_eq!(it.next_timeout(Duration::from_secs(30))?, Some(Ok(1)));
    /// assert_eq!(it.next_timeout(Duration::from_secs(30))?, None); // the end
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Result<R, TaskError>>, TimedOut> {
        // A timeout too long to add to now waits forever.
        self.deadline = Instant::now().checked_add(timeout);
        let r = self.next_outcome();
        self.deadline = None;
        r.map_err(|()| TimedOut { timeout })
    }
}

impl<I, A, R> Iterator for IMap<'_, I, R>
where
    I: Iterator<Item = A>,
    A: Serialize,
    R: DeserializeOwned,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Result<R, TaskError>> {
        // Without a deadline the wait ends only with an outcome or the end.
        self.next_outcome().unwrap_or(None)
    }
}

impl<I, R> Drop for IMap<'_, I, R> {
    fn drop(&mut self) {
        let mut st = self.job.lock();
        st.abandoned = true;
        st.arrived.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_chunks_follow_the_workers_pace_below_the_first_size() {
        let shared = Arc::new(Shared::new().unwrap());
        let progress = Progress::new(false, None);
        let mut it: IMap<'_, _, u64> =
            IMap::new(&shared, Ok(0), 0..10u64, 4096, 1 << 16, true, progress);
        assert_eq!(it.next_chunksize(), 4096);
        shared.set_pace(1_000);
        assert_eq!(
            it.next_chunksize(),
            4096,
            "a chunk size the caller chose stays"
        );
        it.adapt_chunks();
        shared.set_pace(0);
        assert_eq!(it.next_chunksize(), 4096, "no pace known yet");
        shared.set_pace(1_000);
        assert_eq!(it.next_chunksize(), (CHUNK_NS / 1_000) as usize);
        shared.set_pace(10 * CHUNK_NS);
        assert_eq!(it.next_chunksize(), 1, "a slow task travels alone");
        shared.set_pace(1);
        assert_eq!(it.next_chunksize(), 4096, "never above the first size");
    }
}
