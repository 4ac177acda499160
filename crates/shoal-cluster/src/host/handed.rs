//! [`HandedHost`]: a worker host whose tasks the embedding program runs itself.
//!
//! The host does everything a worker host does on the Redis side (reading, checking
//! signatures, leases, reclaim, dead letters, storing results in batches, the graceful
//! stop); it only hands each checked task to the program, which takes them in batches
//! with [`HandedHost::take`] and reports each outcome with [`HandedHost::finish`]. The
//! Python worker host (`python -m shoal.worker`) is built on it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ClusterError;
use crate::host::run::{self, Runner, Running};
use crate::host::ServeOptions;
use crate::wire::Failure;

/// A checked task for the embedding program to run, from [`HandedHost::take`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandedTask {
    /// Names this task in [`HandedHost::finish`].
    pub token: u64,
    /// The task's name, as its submitter gave it.
    pub task: String,
    /// Its argument, as its submitter encoded it (its signature has checked).
    pub arg: Vec<u8>,
}

struct State {
    queue: VecDeque<HandedTask>,
    waiting: HashMap<u64, oneshot::Sender<Result<Vec<u8>, Failure>>>,
    next: u64,
    closed: bool,
}

/// The tasks between the host's loops and the embedding program.
pub(crate) struct Handed {
    state: Mutex<State>,
    ready: Condvar,
}

/// The outcome of one handed task, when the program reports it.
pub(crate) struct HandedOutcome(Option<oneshot::Receiver<Result<Vec<u8>, Failure>>>);

impl HandedOutcome {
    /// The outcome; `None` when the program let the task go unrun.
    pub(crate) async fn outcome(self) -> Option<Result<Vec<u8>, Failure>> {
        self.0?.await.ok()
    }
}

impl Handed {
    fn new() -> Handed {
        Handed {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                waiting: HashMap::new(),
                next: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a task for the program.
    pub(crate) fn hand(&self, task: String, arg: Vec<u8>) -> HandedOutcome {
        let mut st = self.state();
        if st.closed {
            return HandedOutcome(None);
        }
        let token = st.next;
        st.next += 1;
        let (tx, rx) = oneshot::channel();
        st.waiting.insert(token, tx);
        st.queue.push_back(HandedTask { token, task, arg });
        drop(st);
        self.ready.notify_one();
        HandedOutcome(Some(rx))
    }

    /// No more tasks: `take` returns `None` once the queue is empty.
    pub(crate) fn close(&self) {
        let mut st = self.state();
        st.closed = true;
        st.queue.clear();
        st.waiting.clear();
        drop(st);
        self.ready.notify_all();
    }
}

/// A worker host whose tasks the calling program runs itself, for hosts that are not
/// Rust programs with [`shoal::task!`] tasks (the Python worker host is one).
///
/// The host reads, checks, leases, reclaims and dead-letters tasks, and stores results
/// (many per script call) exactly as [`serve`](crate::serve) does; the program takes
/// checked tasks with [`take`](HandedHost::take), runs them however it likes, and
/// reports each outcome with [`finish`](HandedHost::finish). A task is acknowledged
/// only once its outcome is stored.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
///
/// let opts = shoal_cluster::ServeOptions::new("redis://127.0.0.1", "echo");
/// let host = shoal_cluster::HandedHost::start(opts)?;
/// while let Some(tasks) = host.take(64, Duration::from_millis(50)) {
///     for t in tasks {
///         host.finish(t.token, Ok(t.arg)); // echo the argument back
///     }
/// }
/// # Ok::<(), shoal_cluster::ClusterError>(())
/// ```
pub struct HandedHost {
    handed: Arc<Handed>,
    id: String,
    running: Mutex<Option<Running>>,
    stopper: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for HandedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandedHost")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl HandedHost {
    /// Connects to Redis and starts serving (`opts.processes` is reported in the
    /// host's heartbeat; `opts.prefetch` bounds the tasks held at once).
    ///
    /// # Errors
    /// No key, a bad pool name, or Redis unreachable.
    ///
    /// # Examples
    /// ```no_run
    /// let host = shoal_cluster::HandedHost::start(
    ///     shoal_cluster::ServeOptions::new("redis://127.0.0.1", "jobs").processes(4),
    /// )?;
    /// println!("serving as {}", host.id());
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn start(opts: ServeOptions) -> Result<HandedHost, ClusterError> {
        let handed = Arc::new(Handed::new());
        let running = run::start(opts, Runner::Handed(Arc::clone(&handed)))?;
        Ok(HandedHost {
            handed,
            id: running.id().to_owned(),
            running: Mutex::new(Some(running)),
            stopper: Mutex::new(None),
        })
    }

    /// The host's id, as `shoal cluster status` shows it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits up to `timeout` for tasks and takes up to `max` of them (an empty batch
    /// when none came); `None` once the host has stopped and no task is left.
    ///
    /// # Examples
    /// ```no_run
    /// # let host = shoal_cluster::HandedHost::start(shoal_cluster::ServeOptions::new("redis://127.0.0.1", "jobs"))?;
    /// if let Some(tasks) = host.take(16, std::time::Duration::from_millis(100)) {
    ///     println!("{} tasks to run", tasks.len());
    /// }
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn take(&self, max: usize, timeout: Duration) -> Option<Vec<HandedTask>> {
        let until = Instant::now() + timeout;
        let mut st = self.handed.state();
        loop {
            if !st.queue.is_empty() {
                let n = st.queue.len().min(max.max(1));
                return Some(st.queue.drain(..n).collect());
            }
            if st.closed {
                return None;
            }
            let now = Instant::now();
            if now >= until {
                return Some(Vec::new());
            }
            st = self
                .handed
                .ready
                .wait_timeout(st, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Reports the outcome of the task `token`: its encoded result, or why there is
    /// none (the submitter gets it as a failure of the task). An unknown token (the
    /// host stopped and handed the task back) is ignored.
    ///
    /// # Examples
    /// ```no_run
    /// # let host = shoal_cluster::HandedHost::start(shoal_cluster::ServeOptions::new("redis://127.0.0.1", "jobs"))?;
    /// host.finish(7, Err("the input file is missing".to_owned()));
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn finish(&self, token: u64, outcome: Result<Vec<u8>, String>) {
        let tx = self.handed.state().waiting.remove(&token);
        if let Some(tx) = tx {
            let _ = tx.send(outcome.map_err(Failure::Other));
        }
    }

    /// Begins the graceful stop and returns at once: no new task is taken, the held
    /// ones may finish for the grace period (keep taking and finishing them), those
    /// that did not are handed back to the pool, then [`take`](HandedHost::take)
    /// returns `None`.
    pub fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(running) = running {
            let t = std::thread::Builder::new()
                .name("shoal-host-stop".to_owned())
                .spawn(move || running.shutdown());
            if let Ok(t) = t {
                *self.stopper.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
            }
        }
    }

    /// Waits up to `timeout` for a stop begun by [`stop`](HandedHost::stop) to end;
    /// true when it did.
    pub fn join(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            let mut s = self.stopper.lock().unwrap_or_else(|e| e.into_inner());
            match s.as_ref() {
                None => return self.running.lock().map_or(true, |r| r.is_none()),
                Some(t) if t.is_finished() => {
                    if let Some(t) = s.take() {
                        let _ = t.join();
                    }
                    return true;
                }
                Some(_) => {}
            }
            drop(s);
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for HandedHost {
    fn drop(&mut self) {
        self.stop();
        // The stop waits for held tasks no one will finish now: close them first.
        self.handed.close();
        self.join(Duration::from_secs(10));
    }
}
