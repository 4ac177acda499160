//! The errors of cluster pools: per pool ([`ClusterError`]) and per task ([`TaskError`]).

use std::fmt;
use std::time::Duration;

use crate::wire::Failure;

/// Why a cluster pool, a worker host or a status query could not do its work.
///
/// # Examples
/// ```
/// let e = shoal_cluster::ClusterError::Key("no cluster key".into());
/// assert_eq!(e.to_string(), "no cluster key");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterError {
    /// The cluster key is missing, unreadable or too short.
    Key(String),
    /// The Redis URL is not valid, or the first connection failed.
    Connect(String),
    /// A Redis command failed.
    Redis {
        /// What was being done.
        doing: String,
        /// What Redis or the connection said.
        message: String,
    },
    /// An option or argument is not valid.
    Config(String),
    /// The local pool of a worker host could not be started.
    LocalPool(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Key(m) | ClusterError::Connect(m) | ClusterError::Config(m) => {
                f.write_str(m)
            }
            ClusterError::Redis { doing, message } => {
                write!(f, "redis failed while {doing}: {message}")
            }
            ClusterError::LocalPool(m) => write!(f, "the local pool could not start: {m}"),
        }
    }
}

impl std::error::Error for ClusterError {}

impl ClusterError {
    pub(crate) fn redis(doing: impl Into<String>, e: &redis::RedisError) -> ClusterError {
        ClusterError::Redis {
            doing: doing.into(),
            message: e.to_string(),
        }
    }
}

/// Why one task of a cluster pool gave no result. `task` is the item's position in its
/// call (its index in the input of `map`, 0 for `apply`).
///
/// # Examples
/// ```
/// use shoal_cluster::TaskError;
///
/// let e = TaskError::Panicked { task: 3, host: "h1".into(), message: "boom".into() };
/// assert_eq!(e.to_string(), "task 3 panicked on worker host h1: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked on a worker host.
    Panicked {
        /// The item's position in its call.
        task: u64,
        /// The worker host.
        host: String,
        /// The panic message.
        message: String,
    },
    /// The task ran past the pool's task timeout on a worker host.
    Timeout {
        /// The item's position in its call.
        task: u64,
        /// The worker host.
        host: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The local worker process running the task died.
    WorkerDied {
        /// The item's position in its call.
        task: u64,
        /// The worker host.
        host: String,
        /// What the host's pool said.
        message: String,
    },
    /// The worker host has no task of that name (its binary does not register it).
    NotRegistered {
        /// The item's position in its call.
        task: u64,
        /// The worker host.
        host: String,
        /// The task name.
        name: String,
    },
    /// The argument or the result could not travel (serde failed).
    Codec {
        /// The item's position in its call.
        task: u64,
        /// What failed.
        message: String,
    },
    /// The task was delivered the maximum number of times without a result (its hosts
    /// died or gave it up) and went to the dead-letter stream.
    DeadLettered {
        /// The item's position in its call.
        task: u64,
        /// How many times it was delivered.
        deliveries: u32,
    },
    /// No result came within the time the caller waited.
    WaitTimeout {
        /// The item's position in its call.
        task: u64,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The task was cancelled by its submitter.
    Cancelled {
        /// The item's position in its call.
        task: u64,
    },
    /// The function was not registered with `shoal::task!`, or is a capturing closure.
    NotAFunction {
        /// The function's type name.
        name: String,
    },
    /// The pool could not submit or follow the task.
    Cluster(ClusterError),
    /// A failure the host reported in words only.
    Other {
        /// The item's position in its call.
        task: u64,
        /// What the host said.
        message: String,
    },
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked { task, host, message } => {
                write!(f, "task {task} panicked on worker host {host}: {message}")
            }
            TaskError::Timeout { task, host, timeout } => write!(
                f,
                "task {task} ran longer than its timeout of {timeout:?} on worker host {host}"
            ),
            TaskError::WorkerDied { task, host, message } => write!(
                f,
                "the worker process running task {task} on worker host {host} died: {message}"
            ),
            TaskError::NotRegistered { task, host, name } => write!(
                f,
                "worker host {host} has no task named {name} (task {task}): register it with shoal::task!"
            ),
            TaskError::Codec { task, message } => write!(f, "task {task}: {message}"),
            TaskError::DeadLettered { task, deliveries } => write!(
                f,
                "task {task} was delivered {deliveries} times without a result and went to the dead-letter stream"
            ),
            TaskError::WaitTimeout { task, waited } => {
                write!(f, "no result for task {task} after waiting {waited:?}")
            }
            TaskError::Cancelled { task } => write!(f, "task {task} was cancelled"),
            TaskError::NotAFunction { name } => write!(
                f,
                "{name} is not a function registered with shoal::task!"
            ),
            TaskError::Cluster(e) => e.fmt(f),
            TaskError::Other { task, message } => write!(f, "task {task} failed: {message}"),
        }
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TaskError::Cluster(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ClusterError> for TaskError {
    fn from(e: ClusterError) -> TaskError {
        TaskError::Cluster(e)
    }
}

impl TaskError {
    /// The position of the failed item in its call, when the error concerns one item.
    ///
    /// # Examples
    /// ```
    /// use shoal_cluster::TaskError;
    ///
    /// assert_eq!(TaskError::Cancelled { task: 4 }.task(), Some(4));
    /// ```
    pub fn task(&self) -> Option<u64> {
        match self {
            TaskError::Panicked { task, .. }
            | TaskError::Timeout { task, .. }
            | TaskError::WorkerDied { task, .. }
            | TaskError::NotRegistered { task, .. }
            | TaskError::Codec { task, .. }
            | TaskError::DeadLettered { task, .. }
            | TaskError::WaitTimeout { task, .. }
            | TaskError::Cancelled { task }
            | TaskError::Other { task, .. } => Some(*task),
            TaskError::NotAFunction { .. } | TaskError::Cluster(_) => None,
        }
    }

    /// The error with its item position set to `task`.
    pub(crate) fn at(mut self, index: u64) -> TaskError {
        match &mut self {
            TaskError::Panicked { task, .. }
            | TaskError::Timeout { task, .. }
            | TaskError::WorkerDied { task, .. }
            | TaskError::NotRegistered { task, .. }
            | TaskError::Codec { task, .. }
            | TaskError::DeadLettered { task, .. }
            | TaskError::WaitTimeout { task, .. }
            | TaskError::Cancelled { task }
            | TaskError::Other { task, .. } => *task = index,
            TaskError::NotAFunction { .. } | TaskError::Cluster(_) => {}
        }
        self
    }

    /// The error a host's failure report stands for.
    pub(crate) fn from_failure(f: Failure, host: String) -> TaskError {
        match f {
            Failure::Panicked(message) => TaskError::Panicked {
                task: 0,
                host,
                message,
            },
            Failure::Timeout(ms) => TaskError::Timeout {
                task: 0,
                host,
                timeout: Duration::from_millis(ms),
            },
            Failure::WorkerDied(message) => TaskError::WorkerDied {
                task: 0,
                host,
                message,
            },
            Failure::NotRegistered(name) => TaskError::NotRegistered {
                task: 0,
                host,
                name,
            },
            Failure::Codec(message) => TaskError::Codec { task: 0, message },
            Failure::DeadLettered(deliveries) => TaskError::DeadLettered {
                task: 0,
                deliveries,
            },
            Failure::Other(message) => TaskError::Other { task: 0, message },
        }
    }
}
