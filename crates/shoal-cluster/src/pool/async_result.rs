//! [`AsyncResult`]: a cluster task's result, to wait for or cancel.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::error::TaskError;
use crate::pool::{decode, Inner, Outcome};

/// The result of [`Pool::apply_async`](crate::Pool::apply_async), ready once a worker
/// host answered.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
///
/// fn add((a, b): (i32, i32)) -> i32 {
///     a + b
/// }
/// shoal::task!(add);
///
/// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
/// let r = pool.apply_async(add, (2, 3));
/// assert_eq!(r.get_timeout(Duration::from_secs(30))?, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncResult<R> {
    inner: Arc<Inner>,
    rt: tokio::runtime::Handle,
    state: State,
    _r: PhantomData<fn() -> R>,
}

enum State {
    Waiting {
        id: u64,
        rx: oneshot::Receiver<Outcome>,
    },
    Failed(TaskError),
    Taken,
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { id, .. } => format!("waiting for task {id}"),
            State::Failed(e) => format!("failed: {e}"),
            State::Taken => "taken".to_owned(),
        };
        f.debug_struct("AsyncResult")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<R: DeserializeOwned> AsyncResult<R> {
    pub(crate) fn new(
        inner: Arc<Inner>,
        rt: tokio::runtime::Handle,
        submitted: Result<(u64, oneshot::Receiver<Outcome>), TaskError>,
    ) -> AsyncResult<R> {
        let state = match submitted {
            Ok((id, rx)) => State::Waiting { id, rx },
            Err(e) => State::Failed(e),
        };
        AsyncResult {
            inner,
            rt,
            state,
            _r: PhantomData,
        }
    }

    /// Waits for the result.
    ///
    /// # Errors
    /// The task's [`TaskError`]; [`TaskError::Cancelled`] when it was already taken.
    ///
    /// # Examples
    /// ```no_run
    /// fn inc(x: u32) -> u32 {
    ///     x + 1
    /// }
    /// shoal::task!(inc);
    ///
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// assert_eq!(pool.apply_async(inc, 1).get()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(mut self) -> Result<R, TaskError> {
        self.wait(None)
    }

    /// Waits up to `timeout` for the result.
    ///
    /// # Errors
    /// The task's [`TaskError`], or [`TaskError::WaitTimeout`]; the task then goes on,
    /// and its result, when it comes, is dropped.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    /// shoal::task!(nap);
    ///
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// let r = pool.apply_async(nap, 60_000);
    /// assert!(r.get_timeout(Duration::from_millis(10)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_timeout(mut self, timeout: Duration) -> Result<R, TaskError> {
        self.wait(Some(timeout))
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<R, TaskError> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Taken => Err(TaskError::Cancelled { task: 0 }),
            State::Failed(e) => Err(e),
            State::Waiting { id, rx } => {
                let started = Instant::now();
                let got = self.rt.block_on(async {
                    match timeout {
                        None => Some(rx.await),
                        Some(t) => tokio::time::timeout(t, rx).await.ok(),
                    }
                });
                match got {
                    Some(Ok(outcome)) => decode(&outcome?, 0),
                    Some(Err(_)) => Err(TaskError::Cancelled { task: 0 }),
                    None => {
                        self.rt.block_on(self.inner.forget(&[id]));
                        Err(TaskError::WaitTimeout {
                            task: 0,
                            waited: started.elapsed(),
                        })
                    }
                }
            }
        }
    }

    /// Withdraws the task: when no worker host took it yet, it never runs; otherwise
    /// its result is dropped when it comes.
    ///
    /// # Examples
    /// ```no_run
    /// fn inc(x: u32) -> u32 {
    ///     x + 1
    /// }
    /// shoal::task!(inc);
    ///
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// pool.apply_async(inc, 1).cancel();
    /// assert_eq!(pool.in_flight(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(mut self) {
        if let State::Waiting { id, .. } = std::mem::replace(&mut self.state, State::Taken) {
            self.rt.block_on(self.inner.forget(&[id]));
        }
    }
}
