//! [`AsyncResult`]: the result of `apply_async` / `map_async`, to wait for, poll, or
//! `.await`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::codec;
use crate::pool::job::{Job, JobState, Piece};
use crate::pool::shared::Shared;
use crate::pool::TaskError;

/// Turns the outcomes of a job into the caller's value.
type Finish<T> = fn(Vec<Piece>, u64) -> Result<T, TaskError>;

/// A result that will be ready later (Python's `AsyncResult`), from
/// [`Pool::apply_async`](crate::Pool::apply_async) or
/// [`Pool::map_async`](crate::Pool::map_async).
///
/// Wait for it with [`get`](AsyncResult::get) / [`get_timeout`](AsyncResult::get_timeout),
/// check it with [`ready`](AsyncResult::ready), or `.await` it in any async runtime (it
/// is a [`Future`] that needs no particular executor). Dropping it does not stop the work.
///
/// # Examples
/// ```
/// fn add((a, b): (i32, i32)) -> i32 {
///     a + b
/// }
/// shoal::task!(add);
///
/// let pool = shoal::Pool::builder().processes(1).build()?;
/// let r = pool.apply_async(add, (2, 3));
/// r.wait();
/// assert!(r.ready());
/// assert_eq!(r.successful(), Some(true));
/// assert_eq!(r.get()?, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncResult<T> {
    job: Arc<Job>,
    shared: Arc<Shared>,
    finish: Finish<T>,
    taken: bool,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

/// Decodes the single outcome of an `apply`.
pub(crate) fn finish_one<R: DeserializeOwned>(
    mut v: Vec<Piece>,
    _total: u64,
) -> Result<R, TaskError> {
    match v.pop() {
        Some(p) if p.len() == 1 => decode(p.first, p.outcome(0)?),
        _ => Err(TaskError::Terminated { task: 0 }),
    }
}

/// Orders and decodes the outcomes of a `map`: the values in input order, or the
/// error of the first item (in input order) that failed.
pub(crate) fn finish_all<R: DeserializeOwned>(
    mut v: Vec<Piece>,
    total: u64,
) -> Result<Vec<R>, TaskError> {
    v.sort_unstable_by_key(|p| p.first);
    let mut out = Vec::with_capacity(total.min(1 << 24) as usize);
    let mut expect = 0u64;
    for p in v {
        if p.first != expect {
            return Err(TaskError::Terminated { task: expect });
        }
        if let Some(e) = &p.error {
            return Err(e.clone());
        }
        let mut start = 0;
        for (k, &end) in p.ends.iter().enumerate() {
            let end = end as usize;
            out.push(decode_in_place(
                p.first + k as u64,
                &p.data[start..],
                end - start,
            )?);
            start = end;
        }
        expect += p.len();
    }
    if expect != total {
        return Err(TaskError::Terminated { task: expect });
    }
    Ok(out)
}

/// Decodes the result of item `i`.
pub(crate) fn decode<R: DeserializeOwned>(i: u64, bytes: &[u8]) -> Result<R, TaskError> {
    decode_in_place(i, bytes, bytes.len())
}

/// Decodes the result of item `i`, the first `len` bytes of `bytes` (the results after
/// it may follow: see `codec::bincode_decode_prefix`).
#[inline]
pub(crate) fn decode_in_place<R: DeserializeOwned>(
    i: u64,
    bytes: &[u8],
    len: usize,
) -> Result<R, TaskError> {
    codec::bincode_decode_prefix(bytes, len).map_err(|e| TaskError::Codec {
        task: i,
        error: crate::codec::CodecError::new(format!("could not decode the result: {e}")),
    })
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(job: Arc<Job>, shared: Arc<Shared>, finish: Finish<T>) -> AsyncResult<T> {
        AsyncResult {
            job,
            shared,
            finish,
            taken: false,
        }
    }

    fn take(&mut self, st: &mut JobState) -> Result<T, TaskError> {
        if self.taken {
            return Err(TaskError::Taken);
        }
        self.taken = true;
        let total = st.submitted;
        (self.finish)(st.arrived.drain(..).collect(), total)
    }

    /// Whether the result is there (every item finished, in success or failure).
    ///
    /// # Examples
    /// ```
    /// fn slow(ms: u64) -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// }
    /// shoal::task!(slow);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// let r = pool.apply_async(slow, 300);
    /// assert!(!r.ready()); // running
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.job.lock().complete()
    }

    /// `None` while not ready; then whether every item succeeded.
    ///
    /// # Examples
    /// ```
    /// fn hundred_over(x: i32) -> i32 {
    ///     100 / x
    /// }
    /// shoal::task!(hundred_over);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let good = pool.map_async(hundred_over, [1, 2]);
    /// let bad = pool.map_async(hundred_over, [1, 0]);
    /// good.wait();
    /// bad.wait();
    /// assert_eq!(good.successful(), Some(true));
    /// assert_eq!(bad.successful(), Some(false)); // one item panicked
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn successful(&self) -> Option<bool> {
        let st = self.job.lock();
        st.complete().then(|| st.arrived.iter().all(Piece::is_ok))
    }

    /// Waits until the result is ready.
    ///
    /// # Examples
    /// ```
    /// fn inc(x: u32) -> u32 {
    ///     x + 1
    /// }
    /// shoal::task!(inc);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let r = pool.map_async(inc, 0..100);
    /// r.wait();
    /// assert!(r.ready());
    /// assert_eq!(r.get()?.len(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self) {
        let shared = &self.shared;
        drop(
            self.job
                .wait_until(None, JobState::complete, || shared.stopped()),
        );
    }

    /// Waits up to `timeout`; returns whether the result is ready.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// fn slow(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    /// shoal::task!(slow);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// let r = pool.apply_async(slow, 300);
    /// assert!(!r.wait_timeout(Duration::ZERO)); // not yet
    /// assert!(r.wait_timeout(Duration::from_secs(60)));
    /// assert_eq!(r.get()?, 300);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let shared = &self.shared;
        self.job
            .wait_until(Some(timeout), JobState::complete, || shared.stopped())
            .1
    }

    /// Waits for the result and returns it.
    ///
    /// # Errors
    /// The [`TaskError`] of the task (for `map_async`: of the first item, in input
    /// order, that failed).
    ///
    /// # Examples
    /// ```
    /// fn hundred_over(x: i32) -> i32 {
    ///     100 / x
    /// }
    /// shoal::task!(hundred_over);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// assert_eq!(pool.map_async(hundred_over, [4, 5]).get()?, vec![25, 20]);
    /// let err = pool.map_async(hundred_over, [1, 0, 2]).get().unwrap_err();
    /// assert_eq!(err.task(), Some(1)); // the first item that failed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(mut self) -> Result<T, TaskError> {
        let job = Arc::clone(&self.job);
        let shared = Arc::clone(&self.shared);
        let (mut st, _) = job.wait_until(None, JobState::complete, || shared.stopped());
        self.take(&mut st)
    }

    /// Waits up to `timeout` for the result (Python's `get(timeout)`).
    ///
    /// # Errors
    /// [`TaskError::WaitTimeout`] when the result is not there yet: the work goes on,
    /// and the same handle can wait again. Otherwise as [`get`](AsyncResult::get);
    /// [`TaskError::Taken`] once the result was taken.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::pool::TaskError;
    ///
    /// fn slow(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    /// shoal::task!(slow);
    ///
    /// let pool = shoal::Pool::builder().processes(1).build()?;
    /// let mut r = pool.apply_async(slow, 300);
    /// let early = r.get_timeout(Duration::ZERO).unwrap_err(); // not yet
    /// assert_eq!(early, TaskError::WaitTimeout { waited: Duration::ZERO });
    /// assert_eq!(r.get_timeout(Duration::from_secs(60))?, 300);
    /// assert_eq!(r.get_timeout(Duration::ZERO), Err(TaskError::Taken));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<T, TaskError> {
        let job = Arc::clone(&self.job);
        let shared = Arc::clone(&self.shared);
        let (mut st, ok) = job.wait_until(Some(timeout), JobState::complete, || shared.stopped());
        if ok || shared.stopped() || self.taken {
            self.take(&mut st)
        } else {
            Err(TaskError::WaitTimeout { waited: timeout })
        }
    }
}

impl<T> Future for AsyncResult<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let job = Arc::clone(&this.job);
        let mut st = job.lock();
        if st.complete() || this.shared.stopped() {
            return Poll::Ready(this.take(&mut st));
        }
        Job::set_waker(&mut st, cx.waker());
        Poll::Pending
    }
}
