//! The worker host's loops: the blocking reader, the task runner, the heartbeat that
//! renews leases, the reclaimer of dead hosts' tasks, and the graceful stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use serde::{Deserialize, Serialize};
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
/// Results stored and tasks acknowledged in one script call, at most.
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

/// A checked task for the local pool, to the feeder.
pub(crate) struct Feed {
    task: String,
    arg: Vec<u8>,
    tx: oneshot::Sender<Result<Vec<u8>, Failure>>,
}

/// A finished task whose result waits to be stored by the completer.
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
    /// The tasks held: (stream, entry) → deliveries so far.
    held: Mutex<HashMap<(String, String), u32>>,
    /// Room for more tasks.
    free: Arc<Semaphore>,
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

impl Host {
    fn held(&self) -> MutexGuard<'_, HashMap<(String, String), u32>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
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
            held: self.held().len(),
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
    let (feed, fed) = mpsc::unbounded_channel();
    let running = start(opts, Runner::Local(local, feed))?;
    running.rt.spawn(feed_loop(Arc::clone(&running.host), fed));
    let r = running.rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| ClusterError::Config(format!("could not watch for SIGTERM: {e}")))?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| ClusterError::Config(format!("could not watch for SIGINT: {e}")))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok::<(), ClusterError>(())
    });
    running.shutdown();
    r
}

/// Connects, and starts the host's loops (reader, completer, heartbeat, reclaimer).
pub(crate) fn start(opts: ServeOptions, runner: Runner) -> Result<Running, ClusterError> {
    let key = opts.cluster_key()?;
    let names = Names::new(&opts.pool)?;
    let client = connect::client(&opts.redis)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("shoal-host")
        .enable_all()
        .build()
        .map_err(|e| ClusterError::Config(format!("could not start the host's runtime: {e}")))?;
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

/// Reads new tasks while there is room, highest priority first.
async fn read_loop(host: Arc<Host>, mut con: ConnectionManager) {
    let mut attempt = 0u32;
    while !host.stopping() {
        let first = tokio::select! {
            p = Arc::clone(&host.free).acquire_owned() => p.expect("the semaphore is never closed"),
            _ = host.stop.notified() => break,
        };
        let mut permits = vec![first];
        while permits.len() < host.prefetch {
            match Arc::clone(&host.free).try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let mut got = Vec::new();
        let mut failed = None;
        for s in &host.streams {
            let room = permits.len() - got.len();
            if room == 0 {
                break;
            }
            match read_group(&mut con, &host, std::slice::from_ref(s), room, None).await {
                Ok(v) => got.extend(v),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if got.is_empty() && failed.is_none() {
            // Nothing waits: block on every stream (one entry each at most) without
            // holding room, so that the reclaimer is not starved; an entry read this
            // way waits for room in its task (at most one per stream over the bound).
            drop(permits);
            permits = Vec::new();
            match read_group(&mut con, &host, &host.streams, 1, Some(BLOCK)).await {
                Ok(v) => got = v,
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            if e.code() == Some("NOGROUP") {
                let mut c = host.con.clone();
                let _ = connect::ensure_groups(&mut c, &host.streams).await;
            }
            drop(permits);
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            continue;
        }
        attempt = 0;
        for (stream, entry) in got {
            let permit = permits
                .pop()
                .or_else(|| Arc::clone(&host.free).try_acquire_owned().ok());
            tokio::spawn(run_task(Arc::clone(&host), stream, entry, 1, permit));
        }
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
fn message_of(entry: &StreamId) -> Vec<u8> {
    match entry.map.get("m") {
        Some(redis::Value::BulkString(b)) => b.clone(),
        _ => Vec::new(),
    }
}

/// Checks, runs and answers one task; `deliveries` counts this delivery.
async fn run_task(
    host: Arc<Host>,
    stream: String,
    entry: StreamId,
    deliveries: u32,
    permit: Option<OwnedSemaphorePermit>,
) {
    let m = message_of(&entry);
    // The signature is checked before anything of the message is decoded.
    let msg = match wire::open::<TaskMessage>(&host.key, host.names.pool(), Kind::Task, &m) {
        Ok(msg) => msg,
        Err(refused) => {
            dead_letter(
                &host,
                &stream,
                &entry.id,
                &refused.to_string(),
                deliveries,
                &m,
                None,
            )
            .await;
            return;
        }
    };
    if !host.names.is_results(&msg.reply) {
        let reason = format!(
            "the reply stream {:?} is not a result stream of pool {}",
            msg.reply,
            host.names.pool()
        );
        dead_letter(&host, &stream, &entry.id, &reason, deliveries, &m, None).await;
        return;
    }
    if deliveries > msg.max_deliveries {
        let gave_up = deliveries - 1;
        let reason = format!("delivered {gave_up} times without a result");
        let result = ResultMessage {
            id: msg.id,
            host: host.id.clone(),
            outcome: Err(Failure::DeadLettered(gave_up)),
        };
        let notify = wire::seal(&host.key, host.names.pool(), Kind::Result, &result)
            .ok()
            .map(|sealed| (msg.reply.clone(), sealed));
        dead_letter(&host, &stream, &entry.id, &reason, deliveries, &m, notify).await;
        return;
    }
    let slot = (stream.clone(), entry.id.clone());
    host.held().insert(slot.clone(), deliveries);
    // Held (so its lease is renewed) before it waits for room.
    let permit = match permit {
        Some(p) => p,
        None => Arc::clone(&host.free)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed"),
    };
    let run = execute(&host.runner, msg.task, msg.arg);
    let mut permit = Some(permit);
    let outcome = match msg.timeout_ms {
        None => run.await,
        Some(ms) => {
            let mut run = Box::pin(run);
            match tokio::time::timeout(Duration::from_millis(ms), &mut run).await {
                Ok(r) => r,
                Err(_) => {
                    // The local worker still runs the task: its room is given back
                    // only when it ends.
                    let p = permit.take();
                    tokio::spawn(async move {
                        let _ = run.await;
                        drop(p);
                    });
                    Some(Err(Failure::Timeout(ms)))
                }
            }
        }
    };
    if host.handed_back.load(Ordering::Acquire) {
        return;
    }
    let Some(outcome) = outcome else {
        // The program running handed tasks let this one go unrun (it is stopping):
        // give it back to the pool at once, without counting this delivery.
        let deliveries = host.held().remove(&slot);
        if let Some(d) = deliveries {
            give_back(&host, &[(slot, d)]).await;
        }
        return;
    };
    let result = ResultMessage {
        id: msg.id,
        host: host.id.clone(),
        outcome,
    };
    match wire::seal(&host.key, host.names.pool(), Kind::Result, &result) {
        Ok(sealed) => complete(&host, &stream, &entry.id, &msg.reply, &sealed).await,
        Err(e) => {
            let failed = ResultMessage {
                id: msg.id,
                host: host.id.clone(),
                outcome: Err(Failure::Codec(e)),
            };
            if let Ok(sealed) = wire::seal(&host.key, host.names.pool(), Kind::Result, &failed) {
                complete(&host, &stream, &entry.id, &msg.reply, &sealed).await;
            }
        }
    }
    host.held().remove(&slot);
    host.done.fetch_add(1, Ordering::Relaxed);
    drop(permit);
}

/// Runs one task with the host's runner; `None` when the runner let it go unrun.
fn execute(
    runner: &Runner,
    task: String,
    arg: Vec<u8>,
) -> impl std::future::Future<Output = Option<Result<Vec<u8>, Failure>>> + Send + 'static {
    enum Run {
        Local(Option<oneshot::Receiver<Result<Vec<u8>, Failure>>>),
        Handed(HandedOutcome),
    }
    let run = match runner {
        Runner::Local(_, feed) => {
            let (tx, rx) = oneshot::channel();
            Run::Local(feed.send(Feed { task, arg, tx }).ok().map(|()| rx))
        }
        Runner::Handed(handed) => Run::Handed(handed.hand(task, arg)),
    };
    async move {
        match run {
            // Without a feeder (the host is stopping), the task is handed back.
            Run::Local(rx) => rx?.await.ok(),
            Run::Handed(r) => r.outcome().await,
        }
    }
}

/// Feeds the local pool: takes the checked tasks that are ready, and sends them to
/// the local workers in chunks (one message and one answer per chunk instead of per
/// task), spread over the local processes.
async fn feed_loop(host: Arc<Host>, mut rx: mpsc::UnboundedReceiver<Feed>) {
    let Runner::Local(local, _) = &host.runner else {
        return;
    };
    let mut batch = Vec::with_capacity(FEED_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Let the tasks read with this one reach the channel too.
        tokio::task::yield_now().await;
        while batch.len() < FEED_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let mut groups: Vec<(String, Vec<Feed>)> = Vec::new();
        for f in batch.drain(..) {
            match groups.iter_mut().find(|(name, _)| *name == f.task) {
                Some((_, g)) => g.push(f),
                None => groups.push((f.task.clone(), vec![f])),
            }
        }
        for (name, mut items) in groups {
            let per = items
                .len()
                .div_ceil(2 * host.processes)
                .clamp(1, FEED_CHUNK);
            while !items.is_empty() {
                let rest = items.split_off(per.min(items.len()));
                let mut chunk = std::mem::replace(&mut items, rest);
                let args: Vec<Vec<u8>> = chunk
                    .iter_mut()
                    .map(|f| std::mem::take(&mut f.arg))
                    .collect();
                let run = local.apply_encoded_many(&name, &args);
                tokio::spawn(async move {
                    match run.await {
                        Ok(outcomes) => {
                            for (f, o) in chunk.into_iter().zip(outcomes) {
                                let _ = f.tx.send(o.map_err(failure));
                            }
                        }
                        Err(e) => {
                            for f in chunk {
                                let _ = f.tx.send(Err(failure(e.clone())));
                            }
                        }
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

/// Hands a result to the completer and waits until it is stored (or given up on).
async fn complete(host: &Host, stream: &str, entry: &str, reply: &str, sealed: &[u8]) {
    let (done, stored) = oneshot::channel();
    let c = Completion {
        stream: stream.to_owned(),
        entry: entry.to_owned(),
        reply: reply.to_owned(),
        sealed: sealed.to_vec(),
        done,
    };
    if host.completions.send(c).is_ok() {
        let _ = stored.await;
    }
}

/// Stores results and acknowledges their tasks, as many as are ready per script call,
/// retrying while Redis is away.
async fn complete_loop(host: Arc<Host>, mut rx: mpsc::UnboundedReceiver<Completion>) {
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while rx.recv_many(&mut batch, COMPLETE_BATCH).await > 0 {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let mut inv = host.scripts.complete.prepare_invoke();
            inv.arg(GROUP);
            for c in &batch {
                inv.key(&c.stream)
                    .key(&c.reply)
                    .arg(&c.entry)
                    .arg(&c.sealed);
            }
            let mut con = host.con.clone();
            // Retrying a batch is safe: a task answered by the first attempt is no
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
        for c in batch.drain(..) {
            let _ = c.done.send(());
        }
    }
}

/// Moves a task to the dead-letter stream (and tells its submitter when `notify` is
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
                // as long as this host holds less than twice its prefetch.
                if host.held().len() >= 2 * host.prefetch {
                    break;
                }
                let mut permits = Vec::new();
                while permits.len() < host.prefetch {
                    match Arc::clone(&host.free).try_acquire_owned() {
                        Ok(p) => permits.push(p),
                        Err(_) => break,
                    }
                }
                let mut con = host.con.clone();
                let r: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                    .arg(&s)
                    .arg(GROUP)
                    .arg(&host.id)
                    .arg(lease_ms)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(host.prefetch)
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
                for (i, e) in reply.claimed.into_iter().enumerate() {
                    let deliveries = counts
                        .get(i)
                        .and_then(|v| v.first())
                        .map_or(2, |p| p.3 as u32);
                    let permit = permits.pop();
                    tokio::spawn(run_task(
                        Arc::clone(&host),
                        s.clone(),
                        e,
                        deliveries,
                        permit,
                    ));
                }
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
    let held: Vec<((String, String), u32)> = host.held().drain().collect();
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
