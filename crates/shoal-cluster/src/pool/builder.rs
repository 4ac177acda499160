//! [`PoolBuilder`]: the options of a cluster pool's submitter side.

use std::time::Duration;

use crate::error::ClusterError;
use crate::key::ClusterKey;
use crate::names::Priority;
use crate::pool::Pool;

/// Tasks a submitter keeps in flight at most, by default.
pub(crate) const DEFAULT_IN_FLIGHT: usize = 4096;
/// Deliveries of one task before it is dead-lettered, by default.
pub(crate) const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Tasks of one call in one stream entry, at most, by default.
pub(crate) const DEFAULT_CHUNK: usize = 64;

/// Options for a cluster [`Pool`], from [`Pool::builder`].
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use shoal_cluster::{ClusterKey, Pool, Priority};
///
/// let pool = Pool::builder("redis://127.0.0.1:6379", "images")
///     .key(ClusterKey::new(b"0123456789abcdef".to_vec())?)
///     .priority(Priority::High)
///     .task_timeout(Duration::from_secs(30))
///     .max_deliveries(3)
///     .max_in_flight(1000)
///     .connect()?;
/// # let _ = pool;
/// # Ok::<(), shoal_cluster::ClusterError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) key: Option<ClusterKey>,
    pub(crate) priority: Priority,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_deliveries: u32,
    pub(crate) max_in_flight: usize,
    pub(crate) chunk: usize,
}

impl PoolBuilder {
    pub(crate) fn new(url: &str, name: &str) -> PoolBuilder {
        PoolBuilder {
            url: url.to_owned(),
            name: name.to_owned(),
            key: None,
            priority: Priority::Normal,
            task_timeout: None,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            max_in_flight: DEFAULT_IN_FLIGHT,
            chunk: DEFAULT_CHUNK,
        }
    }

    /// The cluster key (default: from `SHOAL_CLUSTER_KEY`).
    ///
    /// # Examples
    /// ```no_run
    /// let key = shoal_cluster::ClusterKey::from_file("/etc/shoal/cluster.key")?;
    /// let pool = shoal_cluster::Pool::builder("redis://127.0.0.1", "jobs").key(key).connect()?;
    /// # let _ = pool;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn key(mut self, key: ClusterKey) -> PoolBuilder {
        self.key = Some(key);
        self
    }

    /// The priority of the tasks this pool submits (default [`Priority::Normal`]).
    ///
    /// # Examples
    /// ```no_run
    /// let urgent = shoal_cluster::Pool::builder("redis://127.0.0.1", "jobs")
    ///     .priority(shoal_cluster::Priority::High)
    ///     .connect()?;
    /// # let _ = urgent;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn priority(mut self, p: Priority) -> PoolBuilder {
        self.priority = p;
        self
    }

    /// How long each task may run on a worker host; past it, the task fails with
    /// [`TaskError::Timeout`](crate::TaskError::Timeout). Default: no limit.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::builder("redis://127.0.0.1", "jobs")
    ///     .task_timeout(std::time::Duration::from_secs(60))
    ///     .connect()?;
    /// # let _ = pool;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn task_timeout(mut self, t: Duration) -> PoolBuilder {
        self.task_timeout = Some(t);
        self
    }

    /// How many times a task may be delivered to worker hosts (each delivery after the
    /// first follows a host that died or gave it up) before it goes to the dead-letter
    /// stream and fails with
    /// [`TaskError::DeadLettered`](crate::TaskError::DeadLettered). Default 5, at least 1.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::builder("redis://127.0.0.1", "jobs")
    ///     .max_deliveries(2)
    ///     .connect()?;
    /// # let _ = pool;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn max_deliveries(mut self, n: u32) -> PoolBuilder {
        self.max_deliveries = n.max(1);
        self
    }

    /// How many tasks the submitter keeps submitted and not yet answered, at most
    /// (default 4096, at least 1): `map` waits for results before it submits more, so
    /// a long input neither floods Redis nor grows memory.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::builder("redis://127.0.0.1", "jobs")
    ///     .max_in_flight(100)
    ///     .connect()?;
    /// assert_eq!(pool.max_in_flight(), 100);
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn max_in_flight(mut self, n: usize) -> PoolBuilder {
        self.max_in_flight = n.max(1);
        self
    }

    /// How many tasks of one call travel in one stream entry, at most (default 64, at
    /// least 1). A `map` of `n` items puts `n / 8` tasks (rounded up) in an entry, up
    /// to this bound, so that even a short map is spread over several hosts (of an
    /// input that does not tell its length, an eighth of each batch it submits); `apply`
    /// sends one task per entry. An entry is the unit of delivery: a host takes it
    /// whole, its results are stored together, and when its host dies another host
    /// runs all its tasks again (the caller still gets each result once). Set 1 for
    /// long tasks where one more run matters.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::builder("redis://127.0.0.1", "jobs")
    ///     .chunk_size(1)
    ///     .connect()?;
    /// # let _ = pool;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn chunk_size(mut self, n: usize) -> PoolBuilder {
        self.chunk = n.max(1);
        self
    }

    /// Connects to Redis and starts the result reader.
    ///
    /// # Errors
    /// [`ClusterError::Key`] without a key, [`ClusterError::Config`] for a bad pool
    /// name, [`ClusterError::Connect`] when Redis cannot be reached.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::builder("rediss://user:secret@redis.example:6380", "jobs")
    ///     .connect()?;
    /// # let _ = pool;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn connect(self) -> Result<Pool, ClusterError> {
        Pool::start(self)
    }
}
