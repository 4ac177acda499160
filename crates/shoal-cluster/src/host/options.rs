//! [`ServeOptions`]: what a worker host is told on its command line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ClusterError;
use crate::key::ClusterKey;

/// The options of a worker host (see [`serve`](crate::serve)).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal_cluster::ServeOptions;
///
/// let opts = ServeOptions::from_args(["--redis", "redis://r:6379", "--pool", "jobs", "--processes", "3"])?;
/// assert_eq!(opts.pool, "jobs");
/// assert_eq!(opts.processes, 3);
/// assert_eq!(opts.lease, Duration::from_secs(10));
/// assert!(ServeOptions::from_args(["--pool", "jobs"]).is_err()); // no --redis
/// # Ok::<(), shoal_cluster::ClusterError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// The Redis URL (`redis://`, `rediss://`; user and password in it).
    pub redis: String,
    /// The pool to serve.
    pub pool: String,
    /// Processes of the local pool (default: the number of CPUs).
    pub processes: usize,
    /// The cluster key; `None`: from `key_file`, else `SHOAL_CLUSTER_KEY`.
    pub key: Option<ClusterKey>,
    /// The file holding the cluster key.
    pub key_file: Option<PathBuf>,
    /// How long a task held by a host that stops renewing it stays its own; after that,
    /// another host may take it (default 10 s). Hosts renew their leases four times a
    /// lease.
    pub lease: Duration,
    /// How long a stopping host lets its tasks finish before it hands them back
    /// (default 30 s).
    pub grace: Duration,
    /// Room for tasks held at once (default: twice the processes, at least 3). Tasks
    /// come in stream entries taken whole: an entry of more tasks than this takes all
    /// the room.
    pub prefetch: usize,
}

impl ServeOptions {
    /// Options for serving `pool` on the Redis at `redis`, the rest by default.
    ///
    /// # Examples
    /// ```
    /// let o = shoal_cluster::ServeOptions::new("redis://127.0.0.1", "jobs");
    /// assert!(o.processes >= 1);
    /// ```
    pub fn new(redis: &str, pool: &str) -> ServeOptions {
        let processes = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServeOptions {
            redis: redis.to_owned(),
            pool: pool.to_owned(),
            processes,
            key: None,
            key_file: None,
            lease: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            prefetch: (2 * processes).max(3),
        }
    }

    /// Sets the number of local processes (and the prefetch that follows from it).
    ///
    /// # Examples
    /// ```
    /// let o = shoal_cluster::ServeOptions::new("redis://127.0.0.1", "jobs").processes(4);
    /// assert_eq!((o.processes, o.prefetch), (4, 8));
    /// ```
    pub fn processes(mut self, n: usize) -> ServeOptions {
        self.processes = n.max(1);
        self.prefetch = (2 * self.processes).max(3);
        self
    }

    /// Sets the cluster key.
    ///
    /// # Examples
    /// ```
    /// let key = shoal_cluster::ClusterKey::new(vec![1; 32])?;
    /// let o = shoal_cluster::ServeOptions::new("redis://127.0.0.1", "jobs").key(key);
    /// assert!(o.key.is_some());
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn key(mut self, key: ClusterKey) -> ServeOptions {
        self.key = Some(key);
        self
    }

    /// Parses a worker host's command line (without the program name).
    ///
    /// # Errors
    /// [`ClusterError::Config`] for an unknown flag, a missing value, or a missing
    /// `--redis` or `--pool`.
    ///
    /// # Examples
    /// ```
    /// let o = shoal_cluster::ServeOptions::from_args([
    ///     "--redis", "redis://127.0.0.1", "--pool", "jobs", "--lease-ms", "2000",
    /// ])?;
    /// assert_eq!(o.lease.as_millis(), 2000);
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn from_args<I, S>(args: I) -> Result<ServeOptions, ClusterError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut redis = None;
        let mut pool = None;
        let mut processes = None;
        let mut key_file = None;
        let mut lease = None;
        let mut grace = None;
        let mut prefetch = None;
        let mut it = args.into_iter().map(Into::into);
        while let Some(flag) = it.next() {
            let flag = flag.to_string_lossy().into_owned();
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (flag.clone(), None),
            };
            let mut value = || -> Result<String, ClusterError> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it
                        .next()
                        .map(|v| v.to_string_lossy().into_owned())
                        .ok_or_else(|| ClusterError::Config(format!("{name} needs a value"))),
                }
            };
            match name.as_str() {
                "--redis" => redis = Some(value()?),
                "--pool" => pool = Some(value()?),
                "--processes" => processes = Some(number(&name, &value()?)?),
                "--key-file" => key_file = Some(PathBuf::from(value()?)),
                "--lease-ms" => lease = Some(number(&name, &value()?)?),
                "--grace-ms" => grace = Some(number(&name, &value()?)?),
                "--prefetch" => prefetch = Some(number(&name, &value()?)?),
                other => {
                    return Err(ClusterError::Config(format!(
                        "unknown argument {other:?}; a worker host takes --redis URL --pool NAME \
                         [--processes N] [--key-file F] [--lease-ms MS] [--grace-ms MS] [--prefetch N]"
                    )))
                }
            }
        }
        let redis = redis.ok_or_else(|| ClusterError::Config("--redis URL is required".into()))?;
        let pool = pool.ok_or_else(|| ClusterError::Config("--pool NAME is required".into()))?;
        let mut o = ServeOptions::new(&redis, &pool);
        if let Some(n) = processes {
            o = o.processes(n as usize);
        }
        o.key_file = key_file;
        if let Some(ms) = lease {
            o.lease = Duration::from_millis(ms.max(100));
        }
        if let Some(ms) = grace {
            o.grace = Duration::from_millis(ms);
        }
        if let Some(n) = prefetch {
            o.prefetch = (n as usize).max(3);
        }
        Ok(o)
    }

    /// The key these options name.
    pub(crate) fn cluster_key(&self) -> Result<ClusterKey, ClusterError> {
        match &self.key {
            Some(k) => Ok(k.clone()),
            None => ClusterKey::load(self.key_file.as_ref()),
        }
    }
}

fn number(flag: &str, v: &str) -> Result<u64, ClusterError> {
    v.parse()
        .map_err(|_| ClusterError::Config(format!("{flag} takes a number, not {v:?}")))
}
