//! The worker host's loops: the blocking reader, the task runner, the heartbeat that
//! renews leases, the reclaimer of dead hosts' tasks, and the graceful stop.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::connect::{self, backoff, now_ms, transient, Scripts, BLOCK};
use crate::error::ClusterError;
use crate::host::handed::{Handed, HandedOutcome};
use crate::host::ServeOptions;
use crate::key::ClusterKey;
use crate::names::{Names, GROUP};
use crate::wire::{self, Failure, Kind, ResultMessage, TaskMessage};

/// How long a host retries storing a result while Redis is away, before it leaves the
/// task to be reclaimed.
const COMPLETE_PATIENCE: Duration = Duration::from_secs(300);
/// Idle time given to a handed-back task: far past any lease, so the next reclaim takes it.
const HANDED_BACK_IDLE_MS: u64 = 1_000_000_000;
/// Task entries answered (their results stored, the entries acknowledged) in one
/// script call, at most.
const COMPLETE_BATCH: usize = 256;
/// Tasks taken at once by the feeder of the local pool, at most.
const FEED_BATCH: usize = 1024;
/// Tasks in one chunk of the local pool, at most (a local worker that dies fails the
/// tasks of its chunk it had not answered).
const FEED_CHUNK: usize = 32;

/// Who runs the tasks a host takes.
pub(crate) enum Runner {
    /// Tasks registered with `shoal::task!` in this program, run in a local `shoal::Pool`
    /// fed in chunks by the feeder (the sender).
    Local(shoal::Pool, mpsc::UnboundedSender<Feed>),
    /// Tasks handed to the program embedding the host (the Python worker host), which
    /// runs them and reports each outcome.
    Handed(Arc<Handed>),
}

/// The outcome of one task.
type TaskOutcome = Result<Vec<u8>, Failure>;

/// Where the outcomes of an entry's tasks go, a local chunk at a time: the position in
/// the entry of the chunk's first task, and its tasks' outcomes.
type OutcomeTx = mpsc::UnboundedSender<(usize, Vec<TaskOutcome>)>;

/// The checked tasks of one entry for the local pool, to the feeder.
pub(crate) struct Feed {
    task: Arc<str>,
    args: Vec<Vec<u8>>,
    tx: OutcomeTx,
}

/// A finished task entry whose results wait to be stored by the completer.
struct Completion {
    stream: String,
    entry: String,
    reply: String,
    sealed: Vec<u8>,
    /// Told once the result is stored (or given up on).
    done: oneshot::Sender<()>,
}

/// A worker host's heartbeat, in the pool's hash of hosts (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostInfo {
    pub(crate) id: String,
    pub(crate) hostname: String,
    pub(crate) pid: u32,
    pub(crate) processes: usize,
    /// Tasks held now.
    pub(crate) held: usize,
    /// Tasks finished since the host started.
    pub(crate) done: u64,
    /// When this heartbeat was written, ms since the epoch.
    pub(crate) seen_ms: u64,
    pub(crate) lease_ms: u64,
    pub(crate) stopping: bool,
}

struct Host {
    id: String,
    names: Names,
    key: ClusterKey,
    con: ConnectionManager,
    runner: Runner,
    scripts: Scripts,
    /// Finished tasks, to the completer.
    completions: mpsc::UnboundedSender<Completion>,
    streams: Vec<String>,
    /// The task entries held: (stream, entry) → deliveries so far and tasks.
    held: Mutex<HashMap<(String, String), Held>>,
    /// Room for more tasks.
    free: Arc<Semaphore>,
    /// Tasks per entry in the last entries read (at least 1): how many entries a
    /// read asks for to fill the room it has.
    per_entry: AtomicUsize,
    prefetch: usize,
    processes: usize,
    lease: Duration,
    hostname: String,
    done: AtomicU64,
    /// No new tasks are taken.
    stopping: AtomicBool,
    stop: Notify,
    /// The held tasks were handed back: their outcomes are not stored.
    handed_back: AtomicBool,
}

/// A task entry a host holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Its deliveries so far, this one included.
    deliveries: u32,
    /// Its tasks.
    tasks: usize,
}

/// A task entry as read, its signature checked (`msg`) before anything was decoded.
struct Taken {
    stream: String,
    entry: String,
    /// The entry's message as it came.
    m: Vec<u8>,
    msg: Result<TaskMessage, wire::Refused>,
}

impl Taken {
    /// The room the entry's tasks need (a refused entry needs none).
    fn tasks(&self) -> usize {
        self.msg.as_ref().map_or(0, |m| m.items.len())
    }
}

impl Host {
    fn held(&self) -> MutexGuard<'_, HashMap<(String, String), Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tasks held now.
    fn held_tasks(&self) -> usize {
        self.held().values().map(|h| h.tasks).sum()
    }

    /// Checks the signature of an entry read from `stream`, and only then decodes it.
    fn take(&self, stream: &str, mut entry: StreamId) -> Taken {
        let m = message_of(&mut entry);
        let msg = wire::open::<TaskMessage>(&self.key, self.names.pool(), Kind::Task, &m);
        Taken {
            stream: stream.to_owned(),
            entry: entry.id,
            m,
            msg,
        }
    }

    /// How many entries to ask for to fill `room` tasks.
    fn entries_for(&self, room: usize) -> usize {
        room.div_ceil(self.per_entry.load(Ordering::Relaxed).max(1))
            .max(1)
    }

    /// Notes the tasks per entry of what was just read.
    fn saw(&self, taken: &[Taken]) {
        let tasks: usize = taken.iter().map(Taken::tasks).sum();
        if !taken.is_empty() {
            self.per_entry
                .store((tasks / taken.len()).max(1), Ordering::Relaxed);
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn info(&self) -> HostInfo {
        HostInfo {
            id: self.id.clone(),
            hostname: self.hostname.clone(),
            pid: std::process::id(),
            processes: self.processes,
            held: self.held_tasks(),
            done: self.done.load(Ordering::Relaxed),
            seen_ms: now_ms(),
            lease_ms: self.lease.as_millis() as u64,
            stopping: self.stopping(),
        }
    }
}

/// A worker host at work: its runtime and its loops.
pub(crate) struct Running {
    host: Arc<Host>,
    rt: tokio::runtime::Runtime,
    reader: tokio::task::JoinHandle<()>,
    beat: tokio::task::JoinHandle<()>,
    reclaim: tokio::task::JoinHandle<()>,
    grace: Duration,
}

/// Runs a worker host of `shoal::task!` tasks until SIGTERM or SIGINT.
pub(crate) fn run(opts: ServeOptions) -> Result<(), ClusterError> {
    let local = shoal::Pool::builder()
        .processes(opts.processes)
        .build()
        .map_err(|e| ClusterError::LocalPool(e.to_string()))?;
    let rt = runtime()?;
    // Watched before the first task is read: a signal that comes while the host
    // starts is a stop, not the default action that would kill it with tasks held.
    let (mut term, mut int) = {
        let _in = rt.enter();
        let watch = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|e| ClusterError::Config(format!("could not watch for {name}: {e}")))
        };
        (
            watch(SignalKind::terminate(), "SIGTERM")?,
            watch(SignalKind::interrupt(), "SIGINT")?,
        )
    };
    let (feed, fed) = mpsc::unbounded_channel();
    let running = start_on(rt, opts, Runner::Local(local, feed))?;
    running.rt.spawn(feed_loop(Arc::clone(&running.host), fed));
    running.rt.block_on(async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
    running.shutdown();
    Ok(())
}

/// The host's runtime: two threads carry its loops.
fn runtime() -> Result<tokio::runtime::Runtime, ClusterError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("shoal-host")
        .enable_all()
        .build()
        .map_err(|e| ClusterError::Config(format!("could not start the host's runtime: {e}")))
}

/// Connects, and starts the host's loops (reader, completer, heartbeat, reclaimer).
pub(crate) fn start(opts: ServeOptions, runner: Runner) -> Result<Running, ClusterError> {
    start_on(runtime()?, opts, runner)
}

/// [`start`], on the runtime `rt`.
fn start_on(
    rt: tokio::runtime::Runtime,
    opts: ServeOptions,
    runner: Runner,
) -> Result<Running, ClusterError> {
    let key = opts.cluster_key()?;
    let names = Names::new(&opts.pool)?;
    let client = connect::client(&opts.redis)?;
    let (con, reader_con) = rt.block_on(async {
        let con = connect::manager(&client, &opts.redis, false).await?;
        let reader = connect::manager(&client, &opts.redis, true).await?;
        let mut c = con.clone();
        connect::ensure_groups(&mut c, &names.all_tasks()).await?;
        Ok::<_, ClusterError>((con, reader))
    })?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let (completions, completed) = mpsc::unbounded_channel();
    let host = Arc::new(Host {
        id: format!(
            "{hostname}:{}:{}",
            std::process::id(),
            &connect::random_id()[..6]
        ),
        streams: names.all_tasks(),
        names,
        key,
        con,
        runner,
        scripts: Scripts::new(),
        completions,
        held: Mutex::new(HashMap::new()),
        free: Arc::new(Semaphore::new(opts.prefetch)),
        per_entry: AtomicUsize::new(1),
        prefetch: opts.prefetch,
        processes: opts.processes,
        lease: opts.lease,
        hostname,
        done: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        stop: Notify::new(),
        handed_back: AtomicBool::new(false),
    });
    let h = Arc::clone(&host);
    let (reader, beat, reclaim) = rt.block_on(async move {
        heartbeat_once(&h).await;
        tokio::spawn(complete_loop(Arc::clone(&h), completed));
        (
            tokio::spawn(read_loop(Arc::clone(&h), reader_con)),
            tokio::spawn(heartbeat_loop(Arc::clone(&h))),
            tokio::spawn(reclaim_loop(Arc::clone(&h))),
        )
    });
    Ok(Running {
        host,
        rt,
        reader,
        beat,
        reclaim,
        grace: opts.grace,
    })
}

impl Running {
    /// The host's id (`hostname:pid:random`).
    pub(crate) fn id(&self) -> &str {
        &self.host.id
    }

    /// Stops taking tasks, lets the held ones finish for the grace period (their
    /// leases still renewed), hands back those that did not, and leaves.
    pub(crate) fn shutdown(self) {
        let Running {
            host,
            rt,
            reader,
            beat,
            reclaim,
            grace,
        } = self;
        let h = Arc::clone(&host);
        rt.block_on(async move {
            h.stopping.store(true, Ordering::Release);
            h.stop.notify_waiters();
            let _ = reader.await;
            reclaim.abort();
            let until = Instant::now() + grace;
            while !h.held().is_empty() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            beat.abort();
            hand_back(&h).await;
            let mut c = h.con.clone();
            let _: redis::RedisResult<u64> = redis::cmd("HDEL")
                .arg(h.names.hosts())
                .arg(&h.id)
                .query_async(&mut c)
                .await;
        });
        match &host.runner {
            Runner::Local(local, _) => local.terminate(),
            Runner::Handed(handed) => handed.close(),
        }
        rt.shutdown_timeout(Duration::from_secs(2));
    }
}

/// Reads new task entries while there is room, highest priority first.
async fn read_loop(host: Arc<Host>, mut con: ConnectionManager) {
    let mut attempt = 0u32;
    while !host.stopping() {
        let mut room = tokio::select! {
            p = Arc::clone(&host.free).acquire_owned() => p.expect("the semaphore is never closed"),
            _ = host.stop.notified() => break,
        };
        let more = host
            .free
            .available_permits()
            .min(host.prefetch.saturating_sub(1));
        if more > 0 {
            if let Ok(p) = Arc::clone(&host.free).try_acquire_many_owned(more as u32) {
                room.merge(p);
            }
        }
        let mut got: Vec<Taken> = Vec::new();
        let mut failed = None;
        let mut wanted = room.num_permits();
        for s in &host.streams {
            if wanted == 0 {
                break;
            }
            let count = host.entries_for(wanted);
            match read_group(&mut con, &host, std::slice::from_ref(s), count, None).await {
                Ok(v) => {
                    let taken: Vec<Taken> = v.into_iter().map(|(s, e)| host.take(&s, e)).collect();
                    host.saw(&taken);
                    wanted = wanted.saturating_sub(taken.iter().map(Taken::tasks).sum());
                    got.extend(taken);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let mut room = Some(room);
        if got.is_empty() && failed.is_none() {
            // Nothing waits: block on every stream (one entry each at most) without
            // holding room, so that the reclaimer is not starved; an entry read this
            // way waits for room in its task.
            room = None;
            match read_group(&mut con, &host, &host.streams, 1, Some(BLOCK)).await {
                Ok(v) => {
                    got = v.into_iter().map(|(s, e)| host.take(&s, e)).collect();
                    host.saw(&got);
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            if e.code() == Some("NOGROUP") {
                let mut c = host.con.clone();
                let _ = connect::ensure_groups(&mut c, &host.streams).await;
            }
            drop(room);
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            continue;
        }
        attempt = 0;
        dispatch(&host, got.into_iter().map(|t| (t, 1)).collect(), room);
    }
}

/// Starts a task for each entry taken (with its delivery count), giving each the
/// room it needs out of `room` while there is enough; the rest of `room` is given
/// back. An entry gets all its room or none (it then waits for all of it): one that
/// held part of its room while waiting for the rest could wait for ever on another
/// doing the same.
fn dispatch(host: &Arc<Host>, taken: Vec<(Taken, u32)>, mut room: Option<OwnedSemaphorePermit>) {
    for (t, deliveries) in taken {
        let need = t.tasks().min(host.prefetch);
        let permit = match room.as_mut() {
            Some(r) if need > 0 && r.num_permits() >= need => r.split(need),
            _ => None,
        };
        tokio::spawn(run_entry(Arc::clone(host), t, deliveries, permit));
    }
}

/// One `XREADGROUP` of new entries.
async fn read_group(
    con: &mut ConnectionManager,
    host: &Host,
    streams: &[String],
    count: usize,
    block: Option<Duration>,
) -> redis::RedisResult<Vec<(String, StreamId)>> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(GROUP)
        .arg(&host.id)
        .arg("COUNT")
        .arg(count);
    if let Some(b) = block {
        cmd.arg("BLOCK").arg(b.as_millis() as u64);
    }
    cmd.arg("STREAMS").arg(streams);
    for _ in streams {
        cmd.arg(">");
    }
    let reply: Option<StreamReadReply> = cmd.query_async(con).await?;
    Ok(reply
        .map(|r| {
            r.keys
                .into_iter()
                .flat_map(|k| {
                    let key = k.key;
                    k.ids.into_iter().map(move |e| (key.clone(), e))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The bytes of an entry's `m` field (empty when there is none).
fn message_of(entry: &mut StreamId) -> Vec<u8> {
    match entry.map.remove("m") {
        Some(redis::Value::BulkString(b)) => b,
        _ => Vec::new(),
    }
}

/// Runs and answers one task entry whose signature was checked when it was taken (or
/// dead-letters it); `deliveries` counts this delivery, `permit` is its room when it
/// has it already (else it waits for it).
async fn run_entry(
    host: Arc<Host>,
    taken: Taken,
    deliveries: u32,
    permit: Option<OwnedSemaphorePermit>,
) {
    let Taken {
        stream,
        entry,
        m,
        msg,
    } = taken;
    let msg = match msg {
        Ok(msg) => msg,
        Err(refused) => {
            let reason = refused.to_string();
            dead_letter(&host, &stream, &entry, &reason, deliveries, &m, None).await;
            return;
        }
    };
    if !host.names.is_results(&msg.reply) {
        let reason = format!(
            "the reply stream {:?} is not a result stream of pool {}",
            msg.reply,
            host.names.pool()
        );
        dead_letter(&host, &stream, &entry, &reason, deliveries, &m, None).await;
        return;
    }
    if deliveries > msg.max_deliveries {
        let gave_up = deliveries - 1;
        let reason = format!("delivered {gave_up} times without a result");
        let result = ResultMessage {
            host: host.id.clone(),
            results: msg
                .items
                .iter()
                .map(|(id, _)| (*id, Err(Failure::DeadLettered(gave_up))))
                .collect(),
        };
        let notify = wire::seal(&host.key, host.names.pool(), Kind::Result, &result)
            .ok()
            .map(|sealed| (msg.reply.clone(), sealed));
        dead_letter(&host, &stream, &entry, &reason, deliveries, &m, notify).await;
        return;
    }
    drop(m);
    let tasks = msg.items.len();
    let slot = (stream, entry);
    host.held().insert(slot.clone(), Held { deliveries, tasks });
    // Held (so its lease is renewed) before it waits for room.
    let need = tasks.min(host.prefetch);
    let permit = match permit {
        Some(p) => p,
        // Nothing held while waiting (see `dispatch`).
        None => Arc::clone(&host.free)
            .acquire_many_owned(need as u32)
            .await
            .expect("the semaphore is never closed"),
    };
    // Shared with the tasks that run past their timeout: the room is given back when
    // the last of them ends.
    let permit = Arc::new(permit);
    let started = Instant::now();
    let name: Arc<str> = Arc::from(msg.task);
    let (ids, args): (Vec<u64>, Vec<Vec<u8>>) = msg.items.into_iter().unzip();
    let until = msg
        .timeout_ms
        .map(|ms| (ms, started + Duration::from_millis(ms)));
    let outcomes = match &host.runner {
        Runner::Local(_, feed) => run_local(feed, name, args, until, &permit).await,
        Runner::Handed(handed) => run_handed(handed, &name, args, until, &permit).await,
    };
    let mut results = Vec::with_capacity(tasks);
    let mut unrun = false;
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        match outcome {
            Some(o) => results.push((id, o)),
            None => unrun = true,
        }
    }
    if host.handed_back.load(Ordering::Acquire) {
        return;
    }
    if unrun {
        // The program running handed tasks let some go unrun (it is stopping): give
        // the entry back to the pool at once, without counting this delivery.
        let held = host.held().remove(&slot);
        if let Some(h) = held {
            give_back(&host, &[(slot, h.deliveries)]).await;
        }
        return;
    }
    let result = ResultMessage {
        host: host.id.clone(),
        results,
    };
    let sealed = wire::seal(&host.key, host.names.pool(), Kind::Result, &result).or_else(|e| {
        let failed = ResultMessage {
            host: host.id.clone(),
            results: result
                .results
                .iter()
                .map(|(id, _)| (*id, Err(Failure::Codec(e.clone()))))
                .collect(),
        };
        wire::seal(&host.key, host.names.pool(), Kind::Result, &failed)
    });
    if let Ok(sealed) = sealed {
        complete(&host, &slot.0, &slot.1, &msg.reply, sealed).await;
    }
    host.held().remove(&slot);
    host.done.fetch_add(tasks as u64, Ordering::Relaxed);
    drop(permit);
}

/// Runs the tasks of an entry in the local pool; each outcome, `None` for a task left
/// unrun (the host is stopping). Past `until`, the tasks without an outcome time out
/// (their room, `permit`, is kept until they end).
async fn run_local(
    feed: &mpsc::UnboundedSender<Feed>,
    task: Arc<str>,
    args: Vec<Vec<u8>>,
    until: Option<(u64, Instant)>,
    permit: &Arc<OwnedSemaphorePermit>,
) -> Vec<Option<TaskOutcome>> {
    let n = args.len();
    let mut got: Vec<Option<TaskOutcome>> = Vec::new();
    if n == 0 {
        // A signed entry without tasks: nothing to run, nothing to answer.
        return got;
    }
    got.resize_with(n, || None);
    let (tx, mut rx) = mpsc::unbounded_channel();
    if feed.send(Feed { task, args, tx }).is_err() {
        // Without a feeder (the host is stopping), the tasks are handed back.
        return got;
    }
    let mut left = n;
    while left > 0 {
        let next = match until {
            None => rx.recv().await,
            Some((ms, at)) => match tokio::time::timeout_at(at.into(), rx.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    for o in got.iter_mut().filter(|o| o.is_none()) {
                        *o = Some(Err(Failure::Timeout(ms)));
                    }
                    // The local workers still run them: the room is given back only
                    // when they end.
                    let p = Arc::clone(permit);
                    tokio::spawn(async move {
                        while left > 0 {
                            match rx.recv().await {
                                Some((_, outs)) => left = left.saturating_sub(outs.len()),
                                None => break,
                            }
                        }
                        drop(p);
                    });
                    return got;
                }
            },
        };
        let Some((at, outs)) = next else { break };
        for (slot, o) in got.iter_mut().skip(at).zip(outs) {
            *slot = Some(o);
            left -= 1;
        }
    }
    got
}

/// Hands the tasks of an entry to the program embedding the host; as [`run_local`].
async fn run_handed(
    handed: &Handed,
    task: &str,
    args: Vec<Vec<u8>>,
    until: Option<(u64, Instant)>,
    permit: &Arc<OwnedSemaphorePermit>,
) -> Vec<Option<TaskOutcome>> {
    let runs: Vec<HandedOutcome> = args
        .into_iter()
        .map(|arg| handed.hand(task.to_owned(), arg))
        .collect();
    let mut got = Vec::with_capacity(runs.len());
    for run in runs {
        let run = run.outcome();
        let outcome = match until {
            None => run.await,
            Some((ms, at)) => {
                let mut run = Box::pin(run);
                match tokio::time::timeout_at(at.into(), &mut run).await {
                    Ok(r) => r,
                    Err(_) => {
                        // The program still runs the task: its room is given back
                        // only when it ends.
                        let p = Arc::clone(permit);
                        tokio::spawn(async move {
                            let _ = run.await;
                            drop(p);
                        });
                        Some(Err(Failure::Timeout(ms)))
                    }
                }
            }
        };
        got.push(outcome);
    }
    got
}

/// Feeds the local pool: takes the entries whose tasks are ready, and sends their
/// tasks to the local workers in chunks (one message and one answer per chunk instead
/// of per task; a chunk may hold tasks of several entries of one task name), spread
/// over the local processes.
async fn feed_loop(host: Arc<Host>, mut rx: mpsc::UnboundedReceiver<Feed>) {
    let Runner::Local(local, _) = &host.runner else {
        return;
    };
    let mut batch = Vec::with_capacity(FEED_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Let the entries read with this one reach the channel too.
        tokio::task::yield_now().await;
        while batch.len() < FEED_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let total: usize = batch.iter().map(|f| f.args.len()).sum();
        let per = total.div_ceil(2 * host.processes).clamp(1, FEED_CHUNK);
        // Per task name, its entries and how many tasks of each went already.
        type Queue = VecDeque<(Feed, usize)>;
        let mut groups: Vec<(Arc<str>, Queue)> = Vec::new();
        for f in batch.drain(..) {
            match groups.iter_mut().find(|(name, _)| *name == f.task) {
                Some((_, g)) => g.push_back((f, 0)),
                None => groups.push((Arc::clone(&f.task), VecDeque::from([(f, 0)]))),
            }
        }
        for (name, mut queue) in groups {
            // Each chunk: the arguments, and per entry it draws from, where the
            // outcomes go, the position of its first task there, and how many.
            let mut args: Vec<Vec<u8>> = Vec::with_capacity(per);
            let mut parts: Vec<(OutcomeTx, usize, usize)> = Vec::new();
            while let Some((f, at)) = queue.front_mut() {
                let take = (per - args.len()).min(f.args.len() - *at);
                args.extend(f.args[*at..*at + take].iter_mut().map(std::mem::take));
                parts.push((f.tx.clone(), *at, take));
                *at += take;
                if *at == f.args.len() {
                    queue.pop_front();
                }
                if args.len() < per && !queue.is_empty() {
                    continue;
                }
                let run = local.apply_encoded_many(&name, &args);
                let parts = std::mem::take(&mut parts);
                let n = args.len();
                args.clear();
                tokio::spawn(async move {
                    let outs: Vec<TaskOutcome> = match run.await {
                        Ok(outs) => outs.into_iter().map(|o| o.map_err(failure)).collect(),
                        Err(e) => (0..n).map(|_| Err(failure(e.clone()))).collect(),
                    };
                    let mut outs = outs.into_iter();
                    for (tx, at, k) in parts {
                        let _ = tx.send((at, outs.by_ref().take(k).collect()));
                    }
                });
            }
        }
    }
}

/// What a local pool's task error becomes on the wire.
fn failure(e: shoal::pool::TaskError) -> Failure {
    use shoal::pool::TaskError as L;
    match e {
        L::Panicked { message, .. } => Failure::Panicked(message),
        L::Timeout { timeout, .. } => Failure::Timeout(timeout.as_millis() as u64),
        L::Codec { error, .. } => Failure::Codec(error.to_string()),
        L::NotRegistered { task } => Failure::NotRegistered(task),
        e @ L::WorkerDied { .. } => Failure::WorkerDied(e.to_string()),
        e => Failure::Other(e.to_string()),
    }
}

/// Hands the results of an entry to the completer and waits until they are stored
/// (or given up on).
async fn complete(host: &Host, stream: &str, entry: &str, reply: &str, sealed: Vec<u8>) {
    let (done, stored) = oneshot::channel();
    let c = Completion {
        stream: stream.to_owned(),
        entry: entry.to_owned(),
        reply: reply.to_owned(),
        sealed,
        done,
    };
    if host.completions.send(c).is_ok() {
        let _ = stored.await;
    }
}

/// Stores results and acknowledges their entries, as many as are ready per script
/// call, retrying while Redis is away.
async fn complete_loop(host: Arc<Host>, mut rx: mpsc::UnboundedReceiver<Completion>) {
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while rx.recv_many(&mut batch, COMPLETE_BATCH).await > 0 {
        // The script names each stream once, and each entry by the indices of its
        // streams (Lua counts from 1).
        fn index<'a>(keys: &mut Vec<&'a str>, k: &'a str) -> usize {
            match keys.iter().position(|x| *x == k) {
                Some(i) => i + 1,
                None => {
                    keys.push(k);
                    keys.len()
                }
            }
        }
        let mut keys: Vec<&str> = Vec::new();
        let slots: Vec<(usize, usize)> = batch
            .iter()
            .map(|c| (index(&mut keys, &c.stream), index(&mut keys, &c.reply)))
            .collect();
        let mut inv = host.scripts.complete.prepare_invoke();
        for k in &keys {
            inv.key(*k);
        }
        inv.arg(GROUP);
        for (c, (t, r)) in batch.iter().zip(&slots) {
            inv.arg(*t).arg(*r).arg(&c.entry).arg(&c.sealed);
        }
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let mut con = host.con.clone();
            // Retrying a batch is safe: an entry answered by the first attempt is no
            // longer pending, so the retry skips it.
            let r: redis::RedisResult<i64> = inv.invoke_async(&mut con).await;
            match r {
                Ok(_) => break,
                Err(e) if transient(&e) && started.elapsed() < COMPLETE_PATIENCE => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                // Left pending: the leases run out and other hosts run them again.
                Err(_) => break,
            }
        }
        drop(inv);
        for c in batch.drain(..) {
            let _ = c.done.send(());
        }
    }
}

/// Moves a task entry to the dead-letter stream (and tells its submitter when `notify` is
/// given), retrying while Redis is away.
async fn dead_letter(
    host: &Host,
    stream: &str,
    entry: &str,
    reason: &str,
    deliveries: u32,
    m: &[u8],
    notify: Option<(String, Vec<u8>)>,
) {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let mut con = host.con.clone();
        let mut inv = host.scripts.dead_letter.key(stream);
        inv.key(host.names.dead());
        if let Some((reply, _)) = &notify {
            inv.key(reply);
        }
        inv.arg(GROUP)
            .arg(entry)
            .arg(reason)
            .arg(deliveries)
            .arg(&host.id)
            .arg(m);
        if let Some((_, sealed)) = &notify {
            inv.arg(sealed);
        }
        let r: redis::RedisResult<i64> = inv.invoke_async(&mut con).await;
        match r {
            Ok(_) => return,
            Err(e) if transient(&e) && started.elapsed() < COMPLETE_PATIENCE => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(_) => return,
        }
    }
}

/// Writes the host's heartbeat and renews the leases of the tasks it holds.
async fn heartbeat_once(host: &Host) {
    let mut con = host.con.clone();
    if let Ok(json) = serde_json::to_string(&host.info()) {
        let _: redis::RedisResult<u64> = redis::cmd("HSET")
            .arg(host.names.hosts())
            .arg(&host.id)
            .arg(json)
            .query_async(&mut con)
            .await;
    }
    let mut by_stream: HashMap<String, Vec<String>> = HashMap::new();
    for (s, e) in host.held().keys() {
        by_stream.entry(s.clone()).or_default().push(e.clone());
    }
    for (s, ids) in by_stream {
        for chunk in ids.chunks(256) {
            let mut inv = host.scripts.renew.key(&s);
            inv.arg(GROUP).arg(&host.id).arg(chunk);
            // A lost lease (another host took the task) is not stopped: the first
            // result stored wins, and the submitter drops the other.
            let _: redis::RedisResult<Vec<String>> = inv.invoke_async(&mut con).await;
        }
    }
}

async fn heartbeat_loop(host: Arc<Host>) {
    loop {
        tokio::time::sleep(host.lease / 4).await;
        heartbeat_once(&host).await;
    }
}

/// Takes over the tasks whose lease ran out (their host died, or hung), and forgets
/// hosts long silent.
async fn reclaim_loop(host: Arc<Host>) {
    let lease_ms = host.lease.as_millis() as u64;
    loop {
        tokio::time::sleep(host.lease / 2).await;
        if host.stopping() {
            return;
        }
        for s in host.streams.clone() {
            let mut cursor = "0-0".to_owned();
            loop {
                // Tasks of dead hosts come before new ones: claim a prefetch's worth
                // even when full (those without room wait for it, first in line),
                // as long as this host holds less than twice its prefetch (in entries:
                // one entry may carry more tasks than a prefetch).
                if host.held().len() >= 2 * host.entries_for(host.prefetch) {
                    break;
                }
                let free = host.free.available_permits().min(host.prefetch);
                let room = if free > 0 {
                    Arc::clone(&host.free)
                        .try_acquire_many_owned(free as u32)
                        .ok()
                } else {
                    None
                };
                let mut con = host.con.clone();
                let r: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                    .arg(&s)
                    .arg(GROUP)
                    .arg(&host.id)
                    .arg(lease_ms)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(host.entries_for(host.prefetch))
                    .query_async(&mut con)
                    .await;
                let Ok(reply) = r else { break };
                let mut pipe = redis::pipe();
                for e in &reply.claimed {
                    pipe.cmd("XPENDING")
                        .arg(&s)
                        .arg(GROUP)
                        .arg(&e.id)
                        .arg(&e.id)
                        .arg(1);
                }
                let counts: Vec<Vec<(String, String, u64, u64)>> = if reply.claimed.is_empty() {
                    Vec::new()
                } else {
                    pipe.query_async(&mut con).await.unwrap_or_default()
                };
                let taken: Vec<(Taken, u32)> = reply
                    .claimed
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let deliveries = counts
                            .get(i)
                            .and_then(|v| v.first())
                            .map_or(2, |p| p.3 as u32);
                        (host.take(&s, e), deliveries)
                    })
                    .collect();
                dispatch(&host, taken, room);
                cursor = reply.next_stream_id;
                if cursor == "0-0" || host.stopping() {
                    break;
                }
            }
        }
        prune_hosts(&host, lease_ms).await;
    }
}

/// Removes from the hash of hosts those silent for ten leases.
async fn prune_hosts(host: &Host, lease_ms: u64) {
    let mut con = host.con.clone();
    let all: HashMap<String, String> = match redis::cmd("HGETALL")
        .arg(host.names.hosts())
        .query_async(&mut con)
        .await
    {
        Ok(v) => v,
        Err(_) => return,
    };
    let now = now_ms();
    for (id, json) in all {
        let stale = serde_json::from_str::<HostInfo>(&json)
            .map(|i| now.saturating_sub(i.seen_ms) > 10 * i.lease_ms.max(lease_ms))
            .unwrap_or(true);
        if stale {
            let _: redis::RedisResult<u64> = redis::cmd("HDEL")
                .arg(host.names.hosts())
                .arg(&id)
                .query_async(&mut con)
                .await;
        }
    }
}

/// Gives the tasks still held back to the pool: each is made to look long idle (so the
/// next reclaim by any host takes it) and its delivery count is set back, so that
/// this stop does not count as a failed delivery.
async fn hand_back(host: &Host) {
    host.handed_back.store(true, Ordering::Release);
    let held: Vec<((String, String), u32)> = host
        .held()
        .drain()
        .map(|(slot, h)| (slot, h.deliveries))
        .collect();
    give_back(host, &held).await;
}

/// Makes the tasks `held` (with their delivery counts) look long idle, with this
/// delivery not counted.
async fn give_back(host: &Host, held: &[((String, String), u32)]) {
    if held.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for ((s, e), deliveries) in held {
        pipe.cmd("XCLAIM")
            .arg(s)
            .arg(GROUP)
            .arg(&host.id)
            .arg(0)
            .arg(e)
            .arg("IDLE")
            .arg(HANDED_BACK_IDLE_MS)
            .arg("RETRYCOUNT")
            .arg(deliveries.saturating_sub(1))
            .arg("JUSTID")
            .ignore();
    }
    let mut con = host.con.clone();
    let _: redis::RedisResult<()> = pipe.query_async(&mut con).await;
}
