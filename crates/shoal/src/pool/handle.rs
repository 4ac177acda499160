//! [`Pool`]: the handle callers use; [`ScopedPool`]: one that closes and joins on drop.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::pool::async_result::{finish_all, finish_one, AsyncResult};
use crate::pool::builder::PoolBuilder;
use crate::pool::feed::feed;
use crate::pool::imap::IMap;
use crate::pool::job::{Job, Piece};
use crate::pool::progress::Progress;
use crate::pool::shared::{Config, Shared};
use crate::pool::supervisor::Supervisor;
use crate::pool::{task, MapError, PoolError, TaskError};

/// Largest automatic chunk.
const AUTO_CHUNK_MAX: usize = 4096;
/// Items `map` and `imap` keep in flight at least.
const MIN_IN_FLIGHT: u64 = 1024;

/// A pool of worker processes that run registered functions (Python's
/// `multiprocessing.Pool`), and that never hangs when a worker dies.
///
/// Tasks are plain functions registered with [`task!`](crate::task!); arguments and
/// results travel through serde. Items travel to the workers in chunks over
/// shared-memory queues, and results come back in batches. As in Python, shoal objects
/// (queues, locks, shared memory) cannot be task arguments: hand them to the workers
/// through the [`initializer`](PoolBuilder::initializer).
///
/// A worker that dies (killed, crashed, aborted) is seen at once through its pidfd: the
/// task it was running fails with [`TaskError::WorkerDied`] (or runs again when
/// [`retries`](PoolBuilder::retries) is set), a new worker takes its place, and every
/// other task goes on. A panic fails its task only. Every wait has a way out.
///
/// Dropping the pool terminates it (as leaving Python's `with Pool()` block does):
/// workers are killed and reaped, tasks not finished fail with
/// [`TaskError::Terminated`]. Use [`close`](Pool::close) + [`join`](Pool::join), or
/// [`PoolBuilder::build_scoped`], to let submitted work finish.
///
/// # Examples
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// shoal::task!(square);
///
/// let pool = shoal::Pool::new(2)?;
/// assert_eq!(pool.map(square, 0..5u64)?, vec![0, 1, 4, 9, 16]);
/// assert_eq!(pool.apply(square, 7)?, 49);
/// pool.close();
/// pool.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool {
    pub(crate) shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    processes: usize,
    chunksize: Option<usize>,
    progress: bool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes)
            .field("workers", &self.worker_pids())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Options for a new pool.
    ///
    /// # Examples
    /// ```
    /// fn double(x: u32) -> u32 {
    ///     x * 2
    /// }
    /// shoal::task!(double);
    ///
    /// let pool = shoal::Pool::builder().processes(3).chunksize(8).build()?;
    /// assert_eq!(pool.processes(), 3);
    /// assert_eq!(pool.map(double, 0..4)?, vec![0, 2, 4, 6]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// A pool of `processes` workers with the default options.
    ///
    /// `processes` of 0 gives one worker (Python's `Pool(0)` raises `ValueError`
    /// instead); [`Pool::builder`] without
    /// [`processes`](crate::pool::PoolBuilder::processes) gives one per CPU.
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    ///
    /// # Examples
    /// ```
    /// fn shout(s: String) -> String {
    ///     s.to_uppercase()
    /// }
    /// shoal::task!(shout);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// assert_eq!(pool.apply(shout, "hi".to_owned())?, "HI");
    /// assert_eq!(shoal::Pool::new(0)?.processes(), 1); // never a pool of no worker
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        Pool::builder().processes(processes).build()
    }

    pub(crate) fn start(
        cfg: Config,
        chunksize: Option<usize>,
        progress: bool,
    ) -> Result<Pool, PoolError> {
        let processes = cfg.processes;
        let shared = Arc::new(Shared::new().map_err(|e| PoolError::Create {
            what: "the results queue",
            source: Some(Box::new(e)),
        })?);
        let thread = Supervisor::start(Arc::clone(&shared), cfg)?;
        Ok(Pool {
            shared,
            thread: Mutex::new(Some(thread)),
            processes,
            chunksize,
            progress,
        })
    }

    /// The number of workers.
    ///
    /// # Examples
    /// ```
    /// let pool = shoal::Pool::new(3)?;
    /// assert_eq!(pool.processes(), 3);
    /// assert_eq!(pool.worker_pids().len(), 3);
    /// # Ok::<(), shoal::pool::PoolError>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// The pids of the workers running now (replaced workers have new pids).
    ///
    /// # Examples
    /// ```
    /// fn my_pid(_: ()) -> u32 {
    ///     std::process::id()
    /// }
    /// shoal::task!(my_pid);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let pid = pool.apply(my_pid, ())?;
    /// assert!(pool.worker_pids().contains(&pid));
    /// assert!(!pool.worker_pids().contains(&std::process::id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.pids()
    }

    fn chunksize_for(&self, len: Option<usize>) -> usize {
        match (self.chunksize, len) {
            (Some(c), _) => c,
            (None, Some(n)) => n.div_ceil(4 * self.processes).clamp(1, AUTO_CHUNK_MAX),
            (None, None) => 1,
        }
    }

    fn in_flight_for(&self, chunksize: usize) -> u64 {
        (8 * self.processes as u64 * chunksize as u64).max(MIN_IN_FLIGHT)
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python's `apply`).
    ///
    /// # Errors
    /// The task's [`TaskError`].
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::TaskError;
    ///
    /// fn parse(s: String) -> i64 {
    ///     s.parse().expect("a number")
    /// }
    /// shoal::task!(parse);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// assert_eq!(pool.apply(parse, "42".to_owned())?, 42);
    /// let failed = pool.apply(parse, "forty-two".to_owned());
    /// assert!(matches!(failed, Err(TaskError::Panicked { .. })));
    /// assert_eq!(pool.apply(parse, "7".to_owned())?, 7); // the worker lives on
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply<F, A, R>(&self, f: F, arg: A) -> Result<R, TaskError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
    {
        self.apply_async(f, arg).get()
    }

    /// Submits `f(arg)` and returns at once (Python's `apply_async`).
    ///
    /// # Examples
    /// ```
    /// fn cube(x: i64) -> i64 {
    ///     x * x * x
    /// }
    /// shoal::task!(cube);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let pending: Vec<_> = (1..=3).map(|x| pool.apply_async(cube, x)).collect();
    /// let cubes: Vec<i64> = pending.into_iter().map(|r| r.get()).collect::<Result<_, _>>()?;
    /// assert_eq!(cubes, vec![1, 8, 27]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_async<F, A, R>(&self, f: F, arg: A) -> AsyncResult<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
    {
        let _ = f;
        let job = Arc::new(Job::default());
        match task::resolve::<F>() {
            Ok(t) => {
                // Take up to 2 so that `feed` sees the end of the input.
                feed(&self.shared, &job, t, 1, &mut std::iter::once(arg), 2);
            }
            Err(e) => fail_job(&job, e),
        }
        AsyncResult::new(job, Arc::clone(&self.shared), finish_one::<R>)
    }

    /// Runs `f` on every item and returns the results in input order (Python's `map`).
    /// The input is consumed as the work goes, with a bounded number of items in
    /// flight.
    ///
    /// Every item runs, whether others failed or not (as in Python).
    ///
    /// # Errors
    /// [`MapError::Failed`] listing every item that failed, with its position and
    /// error, in input order; [`MapError::Call`] when the call cannot run at all (the
    /// function is not registered, the pool is closed or broken). Use
    /// [`imap`](Pool::imap) for the results of the items that succeeded too.
    ///
    /// # Examples
    /// ```
    /// fn hundred_over(x: i32) -> i32 {
    ///     100 / x
    /// }
    /// shoal::task!(hundred_over);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// assert_eq!(pool.map(hundred_over, [1, 2, 4])?, vec![100, 50, 25]);
    /// let err = pool.map(hundred_over, [5, 0, 10, 0, 20]).unwrap_err();
    /// assert_eq!(err.failed_tasks(), [1, 3]); // the positions of the zeros
    /// assert!(err.failures().iter().all(|e| e.is_panic()));
    /// assert!(err.to_string().starts_with("2 of 5 tasks failed"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> Result<Vec<R>, MapError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.map_until(f, items, None)
    }

    /// [`map`](Pool::map) with a time limit on the whole call: the results in input
    /// order, or [`MapError::Timeout`] once `timeout` has passed with items still
    /// unfinished. Then the items not yet started are dropped, and those running finish
    /// in their workers with their results dropped (the pool goes on serving).
    ///
    /// # Errors
    /// [`MapError::Timeout`] (with the failures seen so far), and those of
    /// [`map`](Pool::map).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::pool::MapError;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    /// shoal::task!(nap);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// assert_eq!(pool.map_timeout(nap, [1, 2], Duration::from_secs(30))?, vec![1, 2]);
    /// let err = pool.map_timeout(nap, [1, 60_000], Duration::from_millis(100)).unwrap_err();
    /// assert!(matches!(err, MapError::Timeout { .. }), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_timeout<F, A, R, I>(
        &self,
        f: F,
        items: I,
        timeout: Duration,
    ) -> Result<Vec<R>, MapError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        // A timeout too long to add to now waits forever.
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.map_until(f, items, Some((deadline, timeout))),
            None => self.map_until(f, items, None),
        }
    }

    /// The body of [`map`](Pool::map) and [`map_timeout`](Pool::map_timeout).
    fn map_until<F, A, R, I>(
        &self,
        f: F,
        items: I,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<Vec<R>, MapError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let iter = items.into_iter();
        let (lo, hi) = iter.size_hint();
        let mut out = Vec::with_capacity(lo.min(1 << 24));
        let len = (Some(lo) == hi).then_some(lo);
        let chunksize = self.chunksize_for(len);
        let mut it: IMap<'_, _, R> = IMap::new(
            &self.shared,
            task::resolve::<F>(),
            iter,
            chunksize,
            self.in_flight_for(chunksize),
            true,
            Progress::new(self.progress, len.map(|n| n as u64)),
        );
        let _ = f;
        it.set_deadline(deadline.map(|(d, _)| d));
        if self.chunksize.is_none() {
            it.adapt_chunks();
        }
        let mut failures = Vec::new();
        let finished = it.collect_outcomes(&mut out, &mut failures);
        if !finished {
            let (_, timeout) = deadline.expect("only a deadline stops the collection early");
            failures.sort_by_key(TaskError::task);
            return Err(MapError::Timeout {
                timeout,
                finished: it.yielded(),
                failures,
            });
        }
        if failures.is_empty() {
            Ok(out)
        } else {
            Err(MapError::from_failures(failures, it.yielded()))
        }
    }

    /// [`map`](Pool::map) for functions of several arguments, given as tuples (Python's
    /// `starmap`). In Rust a task takes one argument, so this is `map` over tuples.
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    ///
    /// # Examples
    /// ```
    /// fn power((base, exp): (u64, u32)) -> u64 {
    ///     base.pow(exp)
    /// }
    /// shoal::task!(power);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// assert_eq!(pool.starmap(power, [(2, 10), (3, 2), (10, 0)])?, vec![1024, 9, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn starmap<F, A, R, I>(&self, f: F, items: I) -> Result<Vec<R>, MapError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.map(f, items)
    }

    /// Submits `f` over every item and returns at once (Python's `map_async`). The
    /// items are encoded and queued now.
    ///
    /// # Examples
    /// ```
    /// fn len(s: String) -> usize {
    ///     s.len()
    /// }
    /// shoal::task!(len);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let r = pool.map_async(len, ["a", "bb", "ccc"].map(String::from));
    /// // … other work …
    /// assert_eq!(r.get()?, vec![1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_async<F, A, R, I>(&self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let _ = f;
        let job = Arc::new(Job::default());
        let mut iter = items.into_iter();
        let (lo, hi) = iter.size_hint();
        let chunksize = self.chunksize_for((Some(lo) == hi).then_some(lo));
        match task::resolve::<F>() {
            Ok(t) => {
                feed(&self.shared, &job, t, chunksize, &mut iter, u64::MAX);
            }
            Err(e) => fail_job(&job, e),
        }
        AsyncResult::new(job, Arc::clone(&self.shared), finish_all::<R>)
    }

    /// [`map_async`](Pool::map_async) over tuples (Python's `starmap_async`).
    ///
    /// # Examples
    /// ```
    /// fn repeat((s, n): (String, usize)) -> String {
    ///     s.repeat(n)
    /// }
    /// shoal::task!(repeat);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let r = pool.starmap_async(repeat, [("ab".to_owned(), 2), ("c".to_owned(), 3)]);
    /// assert_eq!(r.get()?, vec!["abab", "ccc"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn starmap_async<F, A, R, I>(&self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.map_async(f, items)
    }

    /// Runs `f` on every item lazily; yields each item's outcome in input order
    /// (Python's `imap`). See [`IMap`] for the memory bound.
    ///
    /// # Examples
    /// ```
    /// fn hundred_over(x: i32) -> i32 {
    ///     100 / x
    /// }
    /// shoal::task!(hundred_over);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let outcomes: Vec<_> = pool.imap(hundred_over, [50, 0, 25]).collect();
    /// assert_eq!(outcomes[0], Ok(2));
    /// assert!(outcomes[1].as_ref().is_err_and(|e| e.is_panic())); // one item failed...
    /// assert_eq!(outcomes[2], Ok(4)); // ...the others did not
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn imap<F, A, R, I>(&self, f: F, items: I) -> IMap<'_, I::IntoIter, R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.imap_with(f, items, true)
    }

    /// As [`imap`](Pool::imap), yielding outcomes as they complete (Python's
    /// `imap_unordered`).
    ///
    /// # Examples
    /// ```
    /// fn half(x: u32) -> u32 {
    ///     x / 2
    /// }
    /// shoal::task!(half);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let mut got: Vec<u32> = pool.imap_unordered(half, [8, 2, 6, 4]).collect::<Result<_, _>>()?;
    /// got.sort();
    /// assert_eq!(got, vec![1, 2, 3, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn imap_unordered<F, A, R, I>(&self, f: F, items: I) -> IMap<'_, I::IntoIter, R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.imap_with(f, items, false)
    }

    /// The body of [`imap`](Pool::imap) (`ordered`) and
    /// [`imap_unordered`](Pool::imap_unordered).
    fn imap_with<F, A, R, I>(&self, f: F, items: I, ordered: bool) -> IMap<'_, I::IntoIter, R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        // The task is found by its type; the value itself carries nothing.
        let _ = f;
        let chunksize = self.chunksize.unwrap_or(1);
        let iter = items.into_iter();
        let (lo, hi) = iter.size_hint();
        let len = (Some(lo) == hi).then_some(lo as u64);
        IMap::new(
            &self.shared,
            task::resolve::<F>(),
            iter,
            chunksize,
            self.in_flight_for(chunksize),
            ordered,
            Progress::new(self.progress, len),
        )
    }

    /// Accepts no more work; what was submitted still runs. Then [`join`](Pool::join).
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::TaskError;
    ///
    /// fn inc(x: u8) -> u8 {
    ///     x + 1
    /// }
    /// shoal::task!(inc);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// let pending = pool.apply_async(inc, 1);
    /// pool.close();
    /// assert_eq!(pool.apply(inc, 2), Err(TaskError::Closed)); // no new work
    /// assert_eq!(pending.get()?, 2); // submitted work still runs
    /// pool.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake();
    }

    /// Waits until the workers have finished the submitted work and exited. Call
    /// [`close`](Pool::close) (or [`terminate`](Pool::terminate)) first.
    ///
    /// # Errors
    /// [`PoolError::StillRunning`] when the pool was neither closed nor terminated.
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::PoolError;
    ///
    /// fn inc(x: u8) -> u8 {
    ///     x + 1
    /// }
    /// shoal::task!(inc);
    ///
    /// let pool = shoal::Pool::new(2)?;
    /// let r = pool.map_async(inc, [1, 2, 3]);
    /// assert!(matches!(pool.join(), Err(PoolError::StillRunning)));
    /// pool.close();
    /// pool.join()?; // the submitted work finished first
    /// assert_eq!(r.get()?, vec![2, 3, 4]);
    /// assert!(pool.worker_pids().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(&self) -> Result<(), PoolError> {
        {
            let s = self.shared.lock();
            if !s.closed && !s.terminate {
                return Err(PoolError::StillRunning);
            }
        }
        self.join_thread();
        Ok(())
    }

    fn join_thread(&self) {
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Kills the workers now and waits until they are reaped; tasks not finished fail
    /// with [`TaskError::Terminated`]. Leaves no worker, zombie or orphan behind.
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::TaskError;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// }
    /// shoal::task!(nap);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 60_000);
    /// pool.terminate();
    /// assert!(matches!(r.get(), Err(TaskError::Terminated { .. })));
    /// assert!(pool.worker_pids().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn terminate(&self) {
        {
            let mut s = self.shared.lock();
            s.terminate = true;
            s.closed = true;
        }
        self.shared.wake();
        self.join_thread();
    }
}

/// Fails the one-item `job` at once.
fn fail_job(job: &Job, e: TaskError) {
    {
        let mut st = job.lock();
        st.submitted = 1;
        st.input_done = true;
    }
    job.deliver([Piece::failed(0, e)]);
}

impl Drop for Pool {
    fn drop(&mut self) {
        let running = self
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if running {
            self.terminate();
        }
    }
}

/// A [`Pool`] that is closed and joined when dropped (every submitted task finishes
/// first), made by [`PoolBuilder::build_scoped`].
///
/// # Examples
/// ```
/// fn inc(x: u32) -> u32 {
///     x + 1
/// }
/// shoal::task!(inc);
///
/// let pending = {
///     let pool = shoal::Pool::builder().processes(2).build_scoped()?;
///     pool.map_async(inc, 0..10)
/// }; // the pool is closed here, and waits for the submitted work
/// assert!(pending.ready());
/// assert_eq!(pending.get()?, (1..=10).collect::<Vec<u32>>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ScopedPool {
    pool: Pool,
}

impl ScopedPool {
    pub(crate) fn new(pool: Pool) -> ScopedPool {
        ScopedPool { pool }
    }
}

impl Deref for ScopedPool {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        &self.pool
    }
}

impl Drop for ScopedPool {
    fn drop(&mut self) {
        self.pool.close();
        let _ = self.pool.join();
    }
}
