//! The errors of pools: per task ([`TaskError`]) and per pool ([`PoolError`]).

use std::fmt;
use std::time::Duration;

/// Why one task gave no result. Every other task of the same call goes on.
///
/// `task` is the position of the item in its call (its index in the input of `map`,
/// 0 for `apply`).
///
/// # Examples
/// ```
/// use shoal::pool::TaskError;
///
/// let e = TaskError::WorkerDied { pid: 4121, signal: Some(9), task: 17 };
/// assert_eq!(e.to_string(), "worker 4121 died from signal 9 while running task 17");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the worker lives on.
    Panicked {
        /// The task's position in its call.
        task: u64,
        /// The worker's pid.
        pid: u32,
        /// The panic message.
        message: String,
    },
    /// The worker running the task died (killed, crashed, aborted or exited).
    WorkerDied {
        /// The worker's pid.
        pid: u32,
        /// The signal that killed it, `None` when it exited.
        signal: Option<i32>,
        /// The task's position in its call.
        task: u64,
    },
    /// The task ran longer than the pool's per-task timeout; its worker was killed and
    /// replaced.
    Timeout {
        /// The worker's pid.
        pid: u32,
        /// The task's position in its call.
        task: u64,
        /// The timeout it exceeded.
        timeout: Duration,
    },
    /// The argument or the result could not travel (serde failed on either side).
    Codec {
        /// The task's position in its call.
        task: u64,
        /// What failed, and where (encoding the argument, decoding it in the worker,
        /// encoding or decoding the result).
        error: crate::codec::CodecError,
    },
    /// The pool was terminated before the task finished.
    Terminated {
        /// The task's position in its call.
        task: u64,
    },
    /// The pool was closed: no new work is accepted.
    Closed,
    /// The pool cannot run tasks any more: the initializer failed, or no worker could
    /// be started.
    Broken {
        /// What went wrong.
        message: String,
    },
    /// The function was not registered with [`task!`](crate::task!).
    NotRegistered {
        /// The function's type name.
        task: String,
    },
    /// The function is a closure that captures variables.
    NotAFunction {
        /// The closure's type name.
        task: String,
    },
    /// A timed wait ([`AsyncResult::get_timeout`](crate::AsyncResult::get_timeout))
    /// ended before the result was there; the work goes on and the handle can wait
    /// again.
    WaitTimeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// The result was already taken from this handle (by `get`, `get_timeout` or
    /// `.await`).
    Taken,
}

impl TaskError {
    /// The position of the failed item in its call, when the error concerns one item.
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::TaskError;
    ///
    /// assert_eq!(TaskError::Terminated { task: 4 }.task(), Some(4));
    /// assert_eq!(TaskError::Closed.task(), None); // not about one item
    /// ```
    pub fn task(&self) -> Option<u64> {
        match self {
            TaskError::Panicked { task, .. }
            | TaskError::WorkerDied { task, .. }
            | TaskError::Timeout { task, .. }
            | TaskError::Codec { task, .. }
            | TaskError::Terminated { task } => Some(*task),
            _ => None,
        }
    }

    /// Whether the error is [`TaskError::WorkerDied`].
    ///
    /// # Examples
    /// ```
    /// fn crash(_: ()) {
    ///     std::process::exit(1); // the worker dies mid-task
    /// }
    /// shoal::task!(crash);
    /// fn one(_: ()) -> u8 {
    ///     1
    /// }
    /// shoal::task!(one);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// let err = pool.apply(crash, ()).unwrap_err();
    /// assert!(err.is_worker_died());
    /// assert_eq!(pool.apply(one, ())?, 1); // a new worker took its place
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_worker_died(&self) -> bool {
        matches!(self, TaskError::WorkerDied { .. })
    }

    /// Whether the error is [`TaskError::Timeout`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(Duration::from_millis(ms));
    /// }
    /// shoal::task!(nap);
    ///
    /// let pool = shoal::Pool::builder()
    ///     .processes(1)
    ///     .task_timeout(Duration::from_millis(50))
    ///     .build()?;
    /// let err = pool.apply(nap, 60_000).unwrap_err();
    /// assert!(err.is_timeout() && !err.is_worker_died());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, TaskError::Timeout { .. })
    }

    /// Whether the error is [`TaskError::Panicked`].
    ///
    /// # Examples
    /// ```
    /// fn boom(_: ()) {
    ///     panic!("boom");
    /// }
    /// shoal::task!(boom);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// let err = pool.apply(boom, ()).unwrap_err();
    /// assert!(err.is_panic());
    /// assert!(err.to_string().contains("boom"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked { .. })
    }

    /// The same error for the item at position `task`.
    pub(crate) fn at(mut self, at: u64) -> TaskError {
        match &mut self {
            TaskError::Panicked { task, .. }
            | TaskError::WorkerDied { task, .. }
            | TaskError::Timeout { task, .. }
            | TaskError::Codec { task, .. }
            | TaskError::Terminated { task } => *task = at,
            _ => {}
        }
        self
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked { task, pid, message } => {
                write!(f, "task {task} panicked in worker {pid}: {message}")
            }
            TaskError::WorkerDied {
                pid,
                signal: Some(sig),
                task,
            } => write!(
                f,
                "worker {pid} died from signal {sig} while running task {task}"
            ),
            TaskError::WorkerDied {
                pid,
                signal: None,
                task,
            } => write!(f, "worker {pid} exited while running task {task}"),
            TaskError::Timeout { pid, task, timeout } => write!(
                f,
                "task {task} ran longer than {timeout:?} in worker {pid}, which was killed"
            ),
            TaskError::Codec { task, error } => write!(f, "task {task}: {error}"),
            TaskError::Terminated { task } => {
                write!(f, "the pool was terminated before task {task} finished")
            }
            TaskError::Closed => f.write_str("the pool is closed and accepts no new work"),
            TaskError::Broken { message } => {
                write!(f, "the pool cannot run tasks: {message}")
            }
            TaskError::NotRegistered { task } => {
                let short = task.rsplit("::").next().unwrap_or(task);
                write!(
                    f,
                    "task function `{task}` is not registered; add `shoal::task!({short});` \
                     next to its definition"
                )
            }
            TaskError::NotAFunction { task } => write!(
                f,
                "`{task}` captures variables; a pool task must be a plain function \
                 registered with `shoal::task!`"
            ),
            TaskError::WaitTimeout { waited } => write!(
                f,
                "the result was not ready within {waited:?}; the work goes on and can be \
                 waited for again"
            ),
            TaskError::Taken => f.write_str("the result was already taken from this handle"),
        }
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TaskError::Codec { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// How many failures a [`MapError`]'s message lists before it counts the rest.
const LISTED: usize = 3;

/// Why [`Pool::map`](crate::Pool::map) (or [`starmap`](crate::Pool::starmap),
/// [`map_timeout`](crate::Pool::map_timeout)) returned no results: every item that
/// failed, with its error, or the error that kept the whole call from running.
///
/// # Examples
/// ```
/// use shoal::pool::MapError;
///
/// fn hundred_over(x: i32) -> i32 {
///     100 / x
/// }
/// shoal::task!(hundred_over);
///
/// let pool = shoal::Pool::new(2)?;
/// let err = pool.map(hundred_over, [5, 0, 20, 0]).unwrap_err();
/// assert!(matches!(err, MapError::Failed { total: 4, .. }));
/// assert_eq!(err.failed_tasks(), [1, 3]); // every failed position, in input order
/// assert!(err.failures().iter().all(|e| e.is_panic()));
/// assert!(err.to_string().starts_with("2 of 4 tasks failed: task 1 panicked"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MapError {
    /// Some items failed; every other item ran (their results are dropped).
    Failed {
        /// The error of every failed item, in input order.
        failures: Vec<TaskError>,
        /// How many items the call had.
        total: u64,
    },
    /// The call could not run at all: the function is not registered, or the pool is
    /// closed or broken.
    Call(TaskError),
    /// [`map_timeout`](crate::Pool::map_timeout)'s time ran out before every item
    /// finished. Items not yet started are dropped; running ones finish in their
    /// workers, and their results are dropped.
    Timeout {
        /// The time limit of the call.
        timeout: Duration,
        /// How many items had finished (well or not).
        finished: u64,
        /// The errors of the finished items that failed, in input order.
        failures: Vec<TaskError>,
    },
}

impl MapError {
    /// Builds the error of a call whose items ended with `failures` (unsorted).
    pub(crate) fn from_failures(mut failures: Vec<TaskError>, total: u64) -> MapError {
        if let Some(i) = failures.iter().position(|e| e.task().is_none()) {
            return MapError::Call(failures.swap_remove(i));
        }
        failures.sort_by_key(TaskError::task);
        MapError::Failed { failures, total }
    }

    /// The errors of the failed items, in input order (the call's error for
    /// [`MapError::Call`]).
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::{MapError, TaskError};
    ///
    /// let err = MapError::Failed {
    ///     failures: vec![TaskError::Terminated { task: 2 }],
    ///     total: 5,
    /// };
    /// assert_eq!(err.failures(), [TaskError::Terminated { task: 2 }]);
    /// assert_eq!(MapError::Call(TaskError::Closed).failures(), [TaskError::Closed]);
    /// ```
    pub fn failures(&self) -> &[TaskError] {
        match self {
            MapError::Failed { failures, .. } | MapError::Timeout { failures, .. } => failures,
            MapError::Call(e) => std::slice::from_ref(e),
        }
    }

    /// The positions of the failed items in the input, in order.
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::{MapError, TaskError};
    ///
    /// let err = MapError::Failed {
    ///     failures: vec![
    ///         TaskError::Terminated { task: 1 },
    ///         TaskError::Terminated { task: 4 },
    ///     ],
    ///     total: 5,
    /// };
    /// assert_eq!(err.failed_tasks(), [1, 4]);
    /// assert!(MapError::Call(TaskError::Closed).failed_tasks().is_empty());
    /// ```
    pub fn failed_tasks(&self) -> Vec<u64> {
        self.failures().iter().filter_map(TaskError::task).collect()
    }

    /// Whether the error is [`MapError::Timeout`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::pool::MapError;
    ///
    /// let err = MapError::Timeout { timeout: Duration::from_secs(1), finished: 3, failures: vec![] };
    /// assert!(err.is_timeout());
    /// assert_eq!(err.to_string(), "the map did not finish within 1s: 3 tasks finished, 0 failed");
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, MapError::Timeout { .. })
    }
}

/// Writes the first few failures and counts the rest.
fn list_failures(f: &mut fmt::Formatter<'_>, failures: &[TaskError]) -> fmt::Result {
    for (i, e) in failures.iter().take(LISTED).enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        write!(f, "{sep}{e}")?;
    }
    if failures.len() > LISTED {
        write!(f, "; and {} more", failures.len() - LISTED)?;
    }
    Ok(())
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Failed { failures, total } => {
                let n = failures.len();
                let tasks = if *total == 1 { "task" } else { "tasks" };
                write!(f, "{n} of {total} {tasks} failed: ")?;
                list_failures(f, failures)
            }
            MapError::Call(e) => write!(f, "{e}"),
            MapError::Timeout {
                timeout,
                finished,
                failures,
            } => {
                write!(
                    f,
                    "the map did not finish within {timeout:?}: {finished} tasks finished, {} failed",
                    failures.len()
                )?;
                if !failures.is_empty() {
                    f.write_str(" (")?;
                    list_failures(f, failures)?;
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MapError::Call(e) => Some(e),
            MapError::Failed { failures, .. } => failures.first().map(|e| e as _),
            MapError::Timeout { .. } => None,
        }
    }
}

/// A timed wait of a pool call ([`IMap::next_timeout`](crate::pool::IMap::next_timeout))
/// ended before an outcome arrived; the work goes on.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::pool::TimedOut;
///
/// let e = TimedOut { timeout: Duration::from_millis(250) };
/// assert_eq!(e.to_string(), "no outcome arrived within 250ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// How long the call waited.
    pub timeout: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no outcome arrived within {:?}", self.timeout)
    }
}

impl std::error::Error for TimedOut {}

/// A pool could not be started, or a pool operation was refused.
///
/// # Examples
/// ```
/// use shoal::pool::PoolError;
///
/// let pool = shoal::Pool::new(1)?;
/// let err = pool.join().unwrap_err(); // not closed first
/// assert!(matches!(err, PoolError::StillRunning));
/// assert_eq!(err.to_string(), "cannot join a pool that is still running; close it first");
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// A worker process could not be started.
    Start(crate::process::ProcessError),
    /// The pool's channels, shared memory or supervisor thread could not be created.
    Create {
        /// What could not be created.
        what: &'static str,
        /// Why, when the system said so.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The initializer is not a registered entry, or its arguments cannot be sent.
    Initializer(String),
    /// `join` was called before `close` or `terminate` (as in Python).
    StillRunning,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Start(e) => write!(f, "could not start a pool worker: {e}"),
            PoolError::Create {
                what,
                source: Some(source),
            } => write!(f, "could not create a pool: {what}: {source}"),
            PoolError::Create { what, source: None } => {
                write!(f, "could not create a pool: {what}")
            }
            PoolError::Initializer(m) => write!(f, "unusable pool initializer: {m}"),
            PoolError::StillRunning => {
                f.write_str("cannot join a pool that is still running; close it first")
            }
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Start(e) => Some(e),
            PoolError::Create {
                source: Some(source),
                ..
            } => Some(&**source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_worker_and_task() {
        let e = TaskError::WorkerDied {
            pid: 7,
            signal: None,
            task: 3,
        };
        assert_eq!(e.to_string(), "worker 7 exited while running task 3");
        assert_eq!(e.clone().at(9).task(), Some(9));
        let e = TaskError::NotRegistered {
            task: "app::jobs::square".into(),
        };
        assert!(e.to_string().contains("add `shoal::task!(square);`"));
    }

    #[test]
    fn map_errors_count_and_list_their_failures() {
        let failures: Vec<_> = [9, 2, 5, 7, 1]
            .map(|task| TaskError::Terminated { task })
            .into();
        let e = MapError::from_failures(failures, 10);
        assert_eq!(e.failed_tasks(), [1, 2, 5, 7, 9]);
        assert_eq!(
            e.to_string(),
            "5 of 10 tasks failed: the pool was terminated before task 1 finished; \
             the pool was terminated before task 2 finished; \
             the pool was terminated before task 5 finished; and 2 more"
        );
        // An error of the whole call wins over the items'.
        let e = MapError::from_failures(
            vec![TaskError::Terminated { task: 0 }, TaskError::Closed],
            2,
        );
        assert_eq!(e, MapError::Call(TaskError::Closed));
        assert_eq!(e.to_string(), TaskError::Closed.to_string());
        let one = MapError::from_failures(vec![TaskError::Terminated { task: 0 }], 1);
        assert!(one.to_string().starts_with("1 of 1 task failed"), "{one}");
    }
}
