//! The submitter side: [`Pool`], whose tasks run on worker hosts.

mod async_result;
mod builder;
mod reader;

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal::pool::TASK_CODEC;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

pub use async_result::AsyncResult;
pub use builder::PoolBuilder;

use crate::connect::{self, backoff, transient};
use crate::error::{ClusterError, TaskError};
use crate::key::ClusterKey;
use crate::names::Names;
use crate::wire::{self, Kind, TaskMessage};

/// Tasks sent to Redis in one pipeline, at most (in entries of up to
/// [`PoolBuilder::chunk_size`] tasks).
const BATCH: usize = 512;
/// How long a submission retries a Redis that does not answer before it fails.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(120);

/// The outcome of one task, as the reader hands it to its waiter.
pub(crate) type Outcome = Result<Vec<u8>, TaskError>;

/// The outcome of a task submitted with [`Pool::submit_encoded`]: the task's id and
/// its encoded result, or why there is none.
pub type EncodedOutcome = (u64, Result<Vec<u8>, TaskError>);

/// Where a task's outcome goes.
enum Reply {
    /// To the one call waiting for it.
    Once(oneshot::Sender<Outcome>),
    /// Onto a channel shared by many tasks, tagged with the task's id.
    To(std::sync::mpsc::Sender<EncodedOutcome>),
}

/// The tasks waiting for their results, by id.
type Tasks = HashMap<u64, Waiting, BuildHasherDefault<IdHasher>>;

/// A hasher for task ids: ids are a counter of this submitter, never chosen by anyone
/// else, so a multiply spreads them well enough and costs less than SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A task waiting for its result.
struct Waiting {
    /// The item's position in its call.
    index: u64,
    tx: Reply,
    /// Its place in the in-flight bound, given back with the result.
    _permit: OwnedSemaphorePermit,
    /// Its stream entry, once submitted (to cancel it), shared by the tasks of the
    /// entry.
    entry: Option<Arc<str>>,
}

/// What the submitter's threads share.
pub(crate) struct Inner {
    pub(crate) names: Names,
    pub(crate) key: ClusterKey,
    /// The stream tasks go to.
    stream: String,
    /// This submitter's result stream.
    pub(crate) results: String,
    pub(crate) con: ConnectionManager,
    waiting: Mutex<Tasks>,
    permits: Arc<Semaphore>,
    next_id: AtomicU64,
    task_timeout: Option<Duration>,
    max_deliveries: u32,
    max_in_flight: usize,
    /// Tasks of one call in one stream entry, at most.
    chunk: usize,
    pub(crate) stats: Stats,
}

/// Counters of a submitter.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) submitted: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) refused: AtomicU64,
}

impl Inner {
    fn waiting(&self) -> MutexGuard<'_, Tasks> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands each result to its waiter, dropping those nobody waits for (duplicates,
    /// and tasks whose caller went away).
    pub(crate) fn deliver_all(&self, results: impl IntoIterator<Item = (u64, Outcome)>) {
        let found: Vec<(u64, Outcome, Option<Waiting>)> = {
            let mut w = self.waiting();
            results
                .into_iter()
                .map(|(id, o)| {
                    let t = w.remove(&id);
                    (id, o, t)
                })
                .collect()
        };
        for (id, outcome, w) in found {
            self.hand(id, outcome, w);
        }
    }

    /// Hands a result to its waiter `w`; counts a duplicate when there is none.
    fn hand(&self, id: u64, outcome: Outcome, w: Option<Waiting>) {
        match w {
            Some(w) => {
                self.stats.completed.fetch_add(1, Ordering::Relaxed);
                let outcome = outcome.map_err(|e| e.at(w.index));
                match w.tx {
                    Reply::Once(tx) => {
                        let _ = tx.send(outcome);
                    }
                    Reply::To(tx) => {
                        let _ = tx.send((id, outcome));
                    }
                }
            }
            None => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Stops waiting for `ids`; deletes the entries of those not yet delivered to a
    /// host, so that they never run (an entry that still carries a task waited for
    /// stays).
    pub(crate) async fn forget(&self, ids: &[u64]) {
        let entries: Vec<String> = {
            let mut w = self.waiting();
            let mut gone: Vec<String> = ids
                .iter()
                .filter_map(|id| w.remove(id).and_then(|w| w.entry))
                .map(|e| e.to_string())
                .collect();
            gone.sort_unstable();
            gone.dedup();
            if !gone.is_empty() {
                let kept: std::collections::HashSet<&str> =
                    w.values().filter_map(|t| t.entry.as_deref()).collect();
                gone.retain(|e| !kept.contains(e.as_str()));
            }
            gone
        };
        if entries.is_empty() {
            return;
        }
        let mut con = self.con.clone();
        for chunk in entries.chunks(BATCH) {
            // An entry a host already holds stays in its pending list; deleting it
            // makes the host's reclaim drop it, and its result is ignored here.
            let _: redis::RedisResult<u64> = redis::cmd("XDEL")
                .arg(&self.stream)
                .arg(chunk)
                .query_async(&mut con)
                .await;
        }
    }

    /// Registers a task and gives its id and the receiver of its outcome.
    fn prepare(
        &self,
        index: u64,
        permit: OwnedSemaphorePermit,
    ) -> (u64, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        let id = self.prepare_to(index, permit, Reply::Once(tx));
        (id, rx)
    }

    /// Registers a task whose outcome goes to `tx`, and gives its id.
    fn prepare_to(&self, index: u64, permit: OwnedSemaphorePermit, tx: Reply) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.waiting().insert(
            id,
            Waiting {
                index,
                tx,
                _permit: permit,
                entry: None,
            },
        );
        id
    }

    /// How many tasks of a call of about `n` tasks go in one entry: an eighth of the
    /// call (so that a short call still spreads over hosts), up to the pool's bound.
    fn per_entry(&self, n: usize) -> usize {
        n.div_ceil(8).clamp(1, self.chunk)
    }

    /// Adds the tasks of `batch` (all of task `task`, registered with `prepare`) to
    /// the task stream, `per` tasks to an entry (by default, as many as suit a call of
    /// the batch's size), in one pipeline, retrying while Redis is unreachable. A
    /// retried pipeline may add a task twice: its second result is dropped as a
    /// duplicate.
    async fn send(
        &self,
        task: &str,
        per: Option<usize>,
        batch: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), ClusterError> {
        if batch.is_empty() {
            return Ok(());
        }
        let per = per.unwrap_or_else(|| self.per_entry(batch.len()));
        let mut pipe = redis::pipe();
        let mut sizes = Vec::with_capacity(batch.len().div_ceil(per));
        let mut items = batch.drain(..).peekable();
        let mut ids = Vec::new();
        while items.peek().is_some() {
            let msg = TaskMessage {
                reply: self.results.clone(),
                task: task.to_owned(),
                timeout_ms: self.task_timeout.map(|t| t.as_millis() as u64),
                max_deliveries: self.max_deliveries,
                items: items.by_ref().take(per.max(1)).collect(),
            };
            ids.extend(msg.items.iter().map(|(id, _)| *id));
            sizes.push(msg.items.len());
            match wire::seal(&self.key, self.names.pool(), Kind::Task, &msg) {
                Ok(m) => {
                    pipe.cmd("XADD").arg(&self.stream).arg("*").arg("m").arg(m);
                }
                Err(e) => {
                    ids.extend(items.map(|(id, _)| id));
                    self.waiting().retain(|id, _| !ids.contains(id));
                    return Err(ClusterError::Config(format!(
                        "could not sign a chunk of tasks of {task}: {e}"
                    )));
                }
            }
        }
        let started = Instant::now();
        let mut attempt = 0;
        let entries: Vec<String> = loop {
            let mut con = self.con.clone();
            match pipe.query_async(&mut con).await {
                Ok(v) => break v,
                Err(e) if transient(&e) && started.elapsed() < SUBMIT_PATIENCE => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    let ids: std::collections::HashSet<u64> = ids.into_iter().collect();
                    self.waiting().retain(|id, _| !ids.contains(id));
                    return Err(ClusterError::redis("submitting tasks", &e));
                }
            }
        };
        self.stats
            .submitted
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        let mut w = self.waiting();
        let mut ids = ids.into_iter();
        for (n, entry) in sizes.into_iter().zip(entries) {
            let entry: Arc<str> = Arc::from(entry);
            for id in ids.by_ref().take(n) {
                if let Some(t) = w.get_mut(&id) {
                    t.entry = Some(Arc::clone(&entry));
                }
            }
        }
        Ok(())
    }
}

/// A pool whose tasks run on worker hosts across machines, through Redis Streams: the
/// cluster form of [`shoal::Pool`].
///
/// Tasks are plain functions registered with [`shoal::task!`] in the worker hosts'
/// binary (see [`serve`](crate::serve)); the submitter names them by the same path.
/// Arguments and results travel through serde, every message signed with the
/// [`ClusterKey`]. Delivery is at least once (a task whose host dies runs again
/// elsewhere) and the pool drops duplicate results by task id, so each call sees every
/// result exactly once.
///
/// The blocking calls (`apply`, `map`, `AsyncResult::get`…) are for synchronous code:
/// do not call them from inside an async runtime.
///
/// # Examples
/// ```no_run
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// shoal::task!(square);
///
/// // Worker hosts: `my-binary --redis redis://… --pool squares --processes 4`, whose
/// // main calls `shoal_cluster::serve()`.
/// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1:6379", "squares")?;
/// assert_eq!(pool.map(square, 0..1000u64)?[999], 998_001);
/// assert_eq!(pool.apply(square, 12)?, 144);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool {
    inner: Arc<Inner>,
    rt: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("pool", &self.inner.names.pool())
            .field("results", &self.inner.results)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// Counters of a submitter, from [`Pool::stats`].
///
/// # Examples
/// ```
/// let s = shoal_cluster::PoolStats::default();
/// assert_eq!(s.duplicates, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Tasks added to the task stream (a pipeline retried after a lost reply counts
    /// its tasks again).
    pub submitted: u64,
    /// Results handed to their callers.
    pub completed: u64,
    /// Results dropped because their task already had one (at-least-once delivery).
    pub duplicates: u64,
    /// Result messages refused (unsigned or mis-signed) and dead-lettered.
    pub refused: u64,
}

impl Pool {
    /// Options for a pool named `name` on the Redis at `url`.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::builder("redis://127.0.0.1", "jobs")
    ///     .max_in_flight(256)
    ///     .connect()?;
    /// # let _ = pool;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn builder(url: &str, name: &str) -> PoolBuilder {
        PoolBuilder::new(url, name)
    }

    /// A pool named `name` on the Redis at `url`, with the key from
    /// `SHOAL_CLUSTER_KEY` and the default options.
    ///
    /// # Errors
    /// As [`PoolBuilder::connect`].
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// # let _ = pool;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn connect(url: &str, name: &str) -> Result<Pool, ClusterError> {
        Pool::builder(url, name).connect()
    }

    pub(crate) fn start(b: PoolBuilder) -> Result<Pool, ClusterError> {
        let names = Names::new(&b.name)?;
        let key = match b.key {
            Some(k) => k,
            None => ClusterKey::from_env()?,
        };
        let client = connect::client(&b.url)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("shoal-cluster")
            .enable_all()
            .build()
            .map_err(|e| {
                ClusterError::Config(format!("could not start the pool's runtime: {e}"))
            })?;
        let (con, reader_con) = rt.block_on(async {
            let con = connect::manager(&client, &b.url, false).await?;
            let reader = connect::manager(&client, &b.url, true).await?;
            let mut c = con.clone();
            connect::ensure_groups(&mut c, &names.all_tasks()).await?;
            Ok::<_, ClusterError>((con, reader))
        })?;
        let submitter = connect::random_id();
        let inner = Arc::new(Inner {
            stream: names.tasks(b.priority),
            results: names.results(&submitter),
            names,
            key,
            con,
            waiting: Mutex::new(Tasks::default()),
            permits: Arc::new(Semaphore::new(b.max_in_flight)),
            next_id: AtomicU64::new(0),
            task_timeout: b.task_timeout,
            max_deliveries: b.max_deliveries,
            max_in_flight: b.max_in_flight,
            chunk: b.chunk,
            stats: Stats::default(),
        });
        rt.spawn(reader::read_results(Arc::clone(&inner), reader_con));
        Ok(Pool {
            inner,
            rt: Some(rt),
        })
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives as long as the pool")
    }

    /// The pool's name.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// assert_eq!(pool.name(), "jobs");
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.inner.names.pool()
    }

    /// The most tasks kept in flight (see [`PoolBuilder::max_in_flight`]).
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// assert_eq!(pool.max_in_flight(), 4096);
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight
    }

    /// Tasks submitted and not yet answered.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// assert_eq!(pool.in_flight(), 0);
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.inner.waiting().len()
    }

    /// The submitter's counters.
    ///
    /// # Examples
    /// ```no_run
    /// fn inc(x: u32) -> u32 {
    ///     x + 1
    /// }
    /// shoal::task!(inc);
    ///
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// pool.map(inc, 0..10)?;
    /// assert_eq!(pool.stats().completed, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        let s = &self.inner.stats;
        PoolStats {
            submitted: s.submitted.load(Ordering::Relaxed),
            completed: s.completed.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
        }
    }

    /// Runs `f(arg)` on a worker host and waits for the result.
    ///
    /// # Errors
    /// The task's [`TaskError`].
    ///
    /// # Examples
    /// ```no_run
    /// fn shout(s: String) -> String {
    ///     s.to_uppercase()
    /// }
    /// shoal::task!(shout);
    ///
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// assert_eq!(pool.apply(shout, "hi".to_owned())?, "HI");
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

    /// Submits `f(arg)` and returns at once (waiting only while the pool has
    /// [`max_in_flight`](PoolBuilder::max_in_flight) tasks in flight).
    ///
    /// # Examples
    /// ```no_run
    /// fn cube(x: i64) -> i64 {
    ///     x * x * x
    /// }
    /// shoal::task!(cube);
    ///
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
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
        let inner = Arc::clone(&self.inner);
        let r = self.rt().block_on(async {
            let name = resolve(f)?;
            let arg = encode(&arg, 0)?;
            let permit = Arc::clone(&inner.permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (id, rx) = inner.prepare(0, permit);
            inner.send(name, Some(1), &mut vec![(id, arg)]).await?;
            Ok::<_, TaskError>((id, rx))
        });
        AsyncResult::new(Arc::clone(&self.inner), self.rt().handle().clone(), r)
    }

    /// Runs `f` on every item across the worker hosts and returns the results in input
    /// order. The input is consumed as the work goes, with at most
    /// [`max_in_flight`](PoolBuilder::max_in_flight) tasks in flight, submitted in
    /// batches.
    ///
    /// # Errors
    /// The error of the first item, in input order, that failed; the tasks after it
    /// that no host started yet are withdrawn.
    ///
    /// # Examples
    /// ```no_run
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// shoal::task!(square);
    ///
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// assert_eq!(pool.map(square, [1, 2, 3])?, vec![1, 4, 9]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> Result<Vec<R>, TaskError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, None)
    }

    /// As [`map`](Pool::map), giving up after `timeout` in all: the first item without
    /// a result then fails with [`TaskError::WaitTimeout`].
    ///
    /// # Errors
    /// As [`map`](Pool::map), and [`TaskError::WaitTimeout`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// shoal::task!(square);
    ///
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "jobs")?;
    /// let squares = pool.map_timeout(square, 0..100u64, Duration::from_secs(60))?;
    /// assert_eq!(squares.len(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_timeout<F, A, R, I>(
        &self,
        f: F,
        items: I,
        timeout: Duration,
    ) -> Result<Vec<R>, TaskError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, Some(Instant::now() + timeout))
    }

    fn map_inner<F, A, R, I>(
        &self,
        f: F,
        items: I,
        deadline: Option<Instant>,
    ) -> Result<Vec<R>, TaskError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let inner = &self.inner;
        let started = Instant::now();
        let name = resolve(f)?;
        let mut ids = Vec::new();
        let items = items.into_iter();
        // Chunks of an eighth of the input, or of each batch when its length is not
        // known.
        let per = match items.size_hint().0 {
            0 => None,
            n => Some(inner.per_entry(n)),
        };
        let r = self.rt().block_on(async {
            let mut out = Vec::new();
            let mut receivers = std::collections::VecDeque::new();
            let mut batch = Vec::new();
            let mut next_out = 0u64;
            for (i, a) in items.enumerate() {
                let arg = encode(&a, i as u64)?;
                let permit = match Arc::clone(&inner.permits).try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        inner.send(name, per, &mut batch).await?;
                        // Full: take the results that are there, then wait for room.
                        loop {
                            if let Ok(p) = Arc::clone(&inner.permits).try_acquire_owned() {
                                break p;
                            }
                            let Some(rx) = receivers.pop_front() else {
                                break Arc::clone(&inner.permits)
                                    .acquire_owned()
                                    .await
                                    .expect("the semaphore is never closed");
                            };
                            out.push(take::<R>(rx, next_out, deadline, started).await?);
                            next_out += 1;
                        }
                    }
                };
                let (id, rx) = inner.prepare(i as u64, permit);
                ids.push(id);
                receivers.push_back(rx);
                batch.push((id, arg));
                if batch.len() >= BATCH {
                    inner.send(name, per, &mut batch).await?;
                }
            }
            inner.send(name, per, &mut batch).await?;
            while let Some(rx) = receivers.pop_front() {
                out.push(take::<R>(rx, next_out, deadline, started).await?);
                next_out += 1;
            }
            Ok(out)
        });
        if r.is_err() {
            // Withdraw what is left of the call.
            self.rt().block_on(inner.forget(&ids));
        }
        r
    }
}

impl Pool {
    /// Submits the task named `task` once per argument of `args`, each already encoded
    /// as the worker hosts of the pool expect it, and returns the tasks' ids (in the
    /// order of `args`) once all are submitted. Each outcome is sent to `done` with its
    /// task's id as it comes, exactly once (duplicates are dropped as for `map`); a
    /// failed task's [`TaskError`] names its position in `args`.
    ///
    /// This is the untyped form of [`apply_async`](Pool::apply_async), for programs
    /// that name their tasks and encode their arguments themselves (the Python
    /// package's cluster pool, whose tasks are pickled calls). It waits while the pool
    /// has [`max_in_flight`](PoolBuilder::max_in_flight) tasks in flight, and submits
    /// in pipelines.
    ///
    /// # Errors
    /// [`ClusterError::Redis`] when Redis stays unreachable (the tasks of this call
    /// not yet submitted are withdrawn; those submitted still answer on `done`).
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "echo")?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let ids = pool.submit_encoded("echo", vec![b"a".to_vec(), b"b".to_vec()], &tx)?;
    /// for _ in &ids {
    ///     let (id, outcome) = rx.recv()?;
    ///     println!("task {id}: {:?}", outcome?);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_encoded(
        &self,
        task: &str,
        args: Vec<Vec<u8>>,
        done: &std::sync::mpsc::Sender<EncodedOutcome>,
    ) -> Result<Vec<u64>, ClusterError> {
        let inner = &self.inner;
        self.rt().block_on(async {
            let mut ids = Vec::with_capacity(args.len());
            let mut batch = Vec::new();
            let per = Some(inner.per_entry(args.len()));
            for (i, arg) in args.into_iter().enumerate() {
                let permit = match Arc::clone(&inner.permits).try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        // Full: send what is ready, then wait for room.
                        inner.send(task, per, &mut batch).await?;
                        Arc::clone(&inner.permits)
                            .acquire_owned()
                            .await
                            .expect("the semaphore is never closed")
                    }
                };
                let id = inner.prepare_to(i as u64, permit, Reply::To(done.clone()));
                ids.push(id);
                batch.push((id, arg));
                if batch.len() >= BATCH {
                    inner.send(task, per, &mut batch).await?;
                }
            }
            inner.send(task, per, &mut batch).await?;
            Ok(ids)
        })
    }

    /// Withdraws the tasks `ids`: those no worker host took yet never run, and the
    /// outcomes of the others are dropped when they come.
    ///
    /// # Examples
    /// ```no_run
    /// let pool = shoal_cluster::Pool::connect("redis://127.0.0.1", "echo")?;
    /// let (tx, _rx) = std::sync::mpsc::channel();
    /// let ids = pool.submit_encoded("echo", vec![b"a".to_vec()], &tx)?;
    /// pool.withdraw(&ids);
    /// assert_eq!(pool.in_flight(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn withdraw(&self, ids: &[u64]) {
        self.rt().block_on(self.inner.forget(ids));
    }
}

/// Waits for one outcome of a `map` and decodes it.
async fn take<R: DeserializeOwned>(
    rx: oneshot::Receiver<Outcome>,
    index: u64,
    deadline: Option<Instant>,
    started: Instant,
) -> Result<R, TaskError> {
    let got = match deadline {
        None => rx.await,
        Some(d) => match tokio::time::timeout_at(d.into(), rx).await {
            Ok(r) => r,
            Err(_) => {
                return Err(TaskError::WaitTimeout {
                    task: index,
                    waited: started.elapsed(),
                })
            }
        },
    };
    let bytes = got.unwrap_or(Err(TaskError::Cancelled { task: index }))?;
    decode(&bytes, index)
}

/// The registered name of the task function `f`.
fn resolve<F, A, R>(f: F) -> Result<&'static str, TaskError>
where
    F: Fn(A) -> R + Copy + 'static,
{
    let name = shoal::pool::task_name(f);
    if std::mem::size_of::<F>() != 0 {
        return Err(TaskError::NotAFunction {
            name: name.to_owned(),
        });
    }
    Ok(name)
}

fn encode<A: Serialize>(a: &A, index: u64) -> Result<Vec<u8>, TaskError> {
    TASK_CODEC.encode(a).map_err(|e| TaskError::Codec {
        task: index,
        message: format!("could not encode the argument: {e}"),
    })
}

pub(crate) fn decode<R: DeserializeOwned>(bytes: &[u8], index: u64) -> Result<R, TaskError> {
    TASK_CODEC.decode(bytes).map_err(|e| TaskError::Codec {
        task: index,
        message: format!("could not decode the result: {e}"),
    })
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // The result stream is this submitter's alone: remove it (best effort).
            let inner = Arc::clone(&self.inner);
            let _ = rt.block_on(async move {
                let mut con = inner.con.clone();
                tokio::time::timeout(Duration::from_secs(2), async move {
                    let _: redis::RedisResult<u64> = redis::cmd("DEL")
                        .arg(&inner.results)
                        .query_async(&mut con)
                        .await;
                })
                .await
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
