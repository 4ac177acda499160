//! [`PoolBuilder`]: how many workers, how they start, and how tasks are run.

use std::any::type_name;
use std::sync::Arc;
use std::time::Duration;

use crate::handoff;
use crate::pool::handle::ScopedPool;
use crate::pool::shared::Config;
use crate::pool::worker::InitSpec;
use crate::pool::{Pool, PoolError};
use crate::process::{EntryFn, StartMethod};

/// Options of a [`Pool`], made by [`Pool::builder`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::process::StartMethod;
///
/// fn setup(greeting: String) {
///     assert_eq!(greeting, "hello");
/// }
/// shoal::entry!(setup);
///
/// fn double(x: i64) -> i64 {
///     x * 2
/// }
/// shoal::task!(double);
///
/// let pool = shoal::Pool::builder()
///     .processes(2)
///     .initializer(setup, "hello".to_owned())
///     .max_tasks_per_child(1000)
///     .start_method(StartMethod::ForkServer)
///     .chunksize(16)
///     .retries(1)
///     .task_timeout(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(pool.apply(double, 21)?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "nothing starts before `build` is called"]
pub struct PoolBuilder {
    processes: Option<usize>,
    init: Option<Result<InitSpec, PoolError>>,
    max_tasks: u64,
    method: StartMethod,
    chunksize: Option<usize>,
    retries: u32,
    timeout: Option<Duration>,
    progress: bool,
}

impl PoolBuilder {
    /// Number of worker processes (default: the number of CPUs; at least 1).
    ///
    /// # Examples
    /// ```
    /// let pool = shoal::Pool::builder().processes(3).build()?;
    /// assert_eq!(pool.worker_pids().len(), 3);
    /// let at_least_one = shoal::Pool::builder().processes(0).build()?;
    /// assert_eq!(at_least_one.processes(), 1);
    /// # Ok::<(), shoal::pool::PoolError>(())
    /// ```
    pub fn processes(mut self, n: usize) -> PoolBuilder {
        self.processes = Some(n.max(1));
        self
    }

    /// Runs `entry(args)` once in each worker before its first task. `entry` is a plain
    /// function registered with [`entry!`](crate::entry!) (as for a
    /// [`Process`](crate::Process)); shoal objects in `args` travel as descriptors. If it
    /// fails (returns an error or a non-zero code, or panics), the pool is broken: every
    /// task fails with [`TaskError::Broken`](crate::pool::TaskError::Broken).
    ///
    /// `entry` may take no argument (`args` is then `()`). Shoal objects in `args` reach
    /// every worker, under every [`StartMethod`]; other descriptors the parent has open
    /// (files, sockets) exist in the workers only under [`StartMethod::Fork`] (see the
    /// table on [`StartMethod`]): with the default forkserver, pass them inside
    /// [`handoff::Fd`](crate::handoff::Fd) in `args`, which reaches the workers under
    /// every method.
    ///
    /// # Examples
    /// ```
    /// use std::sync::OnceLock;
    ///
    /// static GREETING: OnceLock<String> = OnceLock::new();
    ///
    /// fn set_greeting(greeting: String) {
    ///     GREETING.set(greeting).unwrap();
    /// }
    /// shoal::entry!(set_greeting);
    ///
    /// fn greet(name: String) -> String {
    ///     format!("{}, {name}!", GREETING.get().unwrap())
    /// }
    /// shoal::task!(greet);
    ///
    /// let pool = shoal::Pool::builder()
    ///     .processes(2)
    ///     .initializer(set_greeting, "Hello".to_owned())
    ///     .build()?;
    /// assert_eq!(pool.apply(greet, "Ada".to_owned())?, "Hello, Ada!");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn initializer<F, M>(mut self, entry: F, args: F::Args) -> PoolBuilder
    where
        F: EntryFn<M>,
    {
        let _ = entry;
        let name = type_name::<F>();
        let registered = crate::process::__private::ENTRIES
            .iter()
            .any(|e| (e.name)() == name);
        self.init = Some(if std::mem::size_of::<F>() != 0 {
            Err(PoolError::Initializer(format!(
                "`{name}` captures variables; use a plain function registered with `shoal::entry!`"
            )))
        } else if !registered {
            Err(PoolError::Initializer(format!(
                "`{name}` is not registered; add `shoal::entry!(...)` next to its definition"
            )))
        } else {
            handoff::encode(&args)
                .map(|enc| InitSpec {
                    entry: name.to_owned(),
                    bytes: enc.bytes,
                    fds: Arc::new(enc.fds),
                })
                .map_err(|e| PoolError::Initializer(format!("its argument: {e}")))
        });
        self
    }

    /// Replaces a worker after it ran `n` tasks (0, the default: never). A worker
    /// finishes the chunk it is in before it leaves.
    ///
    /// # Examples
    /// ```
    /// fn my_pid(_: ()) -> u32 {
    ///     std::process::id()
    /// }
    /// shoal::task!(my_pid);
    ///
    /// let pool = shoal::Pool::builder().processes(1).max_tasks_per_child(2).build()?;
    /// let pids: Vec<u32> = (0..4).map(|_| pool.apply(my_pid, ())).collect::<Result<_, _>>()?;
    /// assert_eq!(pids[0], pids[1]);
    /// assert_ne!(pids[1], pids[2]); // replaced after two tasks
    /// assert_eq!(pids[2], pids[3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_tasks_per_child(mut self, n: u64) -> PoolBuilder {
        self.max_tasks = n;
        self
    }

    /// How workers start (default [`StartMethod::ForkServer`]).
    ///
    /// # Examples
    /// ```
    /// use shoal::process::StartMethod;
    ///
    /// fn double(x: i32) -> i32 {
    ///     x * 2
    /// }
    /// shoal::task!(double);
    ///
    /// let pool = shoal::Pool::builder()
    ///     .processes(1)
    ///     .start_method(StartMethod::Spawn)
    ///     .build()?;
    /// assert_eq!(pool.apply(double, 21)?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> PoolBuilder {
        self.method = method;
        self
    }

    /// Items per chunk for `map`, `imap` and their relatives (default: automatic —
    /// about four chunks per worker for inputs of known length, capped to keep chunks
    /// small; 1 for inputs of unknown length).
    ///
    /// # Examples
    /// ```
    /// fn my_pid(_: u32) -> u32 {
    ///     std::process::id()
    /// }
    /// shoal::task!(my_pid);
    ///
    /// let pool = shoal::Pool::builder().processes(2).chunksize(4).build()?;
    /// let pids = pool.map(my_pid, 0..8)?;
    /// // Each chunk of four items ran in one worker.
    /// assert!(pids[..4].iter().all(|&p| p == pids[0]));
    /// assert!(pids[4..].iter().all(|&p| p == pids[4]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chunksize(mut self, n: usize) -> PoolBuilder {
        self.chunksize = Some(n.max(1));
        self
    }

    /// How many times a task whose worker died is run again before it fails with
    /// [`TaskError::WorkerDied`](crate::pool::TaskError::WorkerDied) (default 0).
    ///
    /// # Examples
    /// ```
    /// fn crash_once(marker: std::path::PathBuf) -> String {
    ///     if std::fs::File::create_new(&marker).is_ok() {
    ///         std::process::exit(1); // the first run ends its worker
    ///     }
    ///     "done".to_owned()
    /// }
    /// shoal::task!(crash_once);
    ///
    /// let marker = std::env::temp_dir().join(format!("shoal-doc-retries-{}", std::process::id()));
    /// let pool = shoal::Pool::builder().processes(1).retries(1).build()?;
    /// let outcome = pool.apply(crash_once, marker.clone());
    /// std::fs::remove_file(&marker)?;
    /// assert_eq!(outcome?, "done"); // run again in a new worker
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retries(mut self, n: u32) -> PoolBuilder {
        self.retries = n;
        self
    }

    /// Longest a task may run: its worker is then killed and replaced, and the task
    /// fails with [`TaskError::Timeout`](crate::pool::TaskError::Timeout) (it is not
    /// retried). Default: none.
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
    /// let pool = shoal::Pool::builder()
    ///     .processes(1)
    ///     .task_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// assert!(pool.apply(nap, 60_000).unwrap_err().is_timeout());
    /// assert_eq!(pool.apply(nap, 0)?, 0); // a new worker took over
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn task_timeout(mut self, timeout: Duration) -> PoolBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Draws a progress bar on standard error during `map`, `imap` and
    /// `imap_unordered` (default off). Needs the `progress` feature (on by default).
    ///
    /// # Examples
    /// ```
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// shoal::task!(square);
    ///
    /// let pool = shoal::Pool::builder().processes(2).progress(true).build()?;
    /// // A bar counts the items on standard error (when it is a terminal).
    /// let squares = pool.map(square, 0..1000u64)?;
    /// assert_eq!(squares[999], 998_001);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(mut self, on: bool) -> PoolBuilder {
        self.progress = on;
        self
    }

    fn config(self) -> Result<(Config, Option<usize>), PoolError> {
        let processes = self.processes.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let init = self.init.transpose()?;
        Ok((
            Config {
                processes,
                method: self.method,
                max_tasks: self.max_tasks,
                retries: self.retries,
                timeout: self.timeout,
                init,
            },
            self.chunksize,
        ))
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// [`PoolError::Start`] when a worker cannot start, [`PoolError::Create`] when the
    /// channels cannot be created, [`PoolError::Initializer`] for an unusable
    /// initializer.
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::PoolError;
    ///
    /// fn setup(_: ()) {}
    /// // `setup` is not registered with `shoal::entry!`.
    ///
    /// let pool = shoal::Pool::builder().processes(2).build()?;
    /// assert_eq!(pool.processes(), 2);
    /// let refused = shoal::Pool::builder().initializer(setup, ()).build();
    /// assert!(matches!(refused, Err(PoolError::Initializer(_))));
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn build(self) -> Result<Pool, PoolError> {
        let progress = self.progress;
        let (cfg, chunksize) = self.config()?;
        Pool::start(cfg, chunksize, progress)
    }

    /// Starts the workers; the pool is closed and joined (every submitted task
    /// finishes) when the returned guard is dropped.
    ///
    /// # Errors
    /// As [`build`](PoolBuilder::build).
    ///
    /// # Examples
    /// ```
    /// fn inc(x: u32) -> u32 {
    ///     x + 1
    /// }
    /// shoal::task!(inc);
    ///
    /// {
    ///     let pool = shoal::Pool::builder().processes(2).build_scoped()?;
    ///     assert_eq!(pool.map(inc, [1, 2, 3])?, vec![2, 3, 4]);
    /// } // closed and joined here
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_scoped(self) -> Result<ScopedPool, PoolError> {
        self.build().map(ScopedPool::new)
    }
}
