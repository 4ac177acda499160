//! The supervisor: one thread per pool that owns the workers, hands chunks to them,
//! collects their results, and replaces the ones that die.
//!
//! Everything it waits for arrives on one queue, the shared result queue: results from
//! the workers, `EXITED` from a watcher thread per worker (which blocks on the worker's
//! pidfd, so a death is seen at once), and `WAKE` from callers that submitted work. So
//! the supervisor blocks in one place only, and never on a worker: each worker has its
//! own task queue, and the supervisor puts into it only what it knows fits (it counts
//! the cells of what it sent and of what came back), so a put never waits.
//!
//! Because the supervisor decides which worker gets which chunk, and a worker runs its
//! chunks in order and returns results in order, the supervisor knows at every moment
//! which items each worker holds; the worker's slot (see `slots.rs`) says which one of
//! them was running. When a worker dies, that item fails (or is retried) and the others
//! go back to the front of the line.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::channel::Queue;
use crate::handoff::Fd;
use crate::pool::chunk::{Chunk, TASK_CELL};
use crate::pool::job::{Job, Piece};
use crate::pool::shared::{Config, Shared};
use crate::pool::slots::{now_ns, Slots};
use crate::pool::wire::{self, Reader};
use crate::pool::worker::{worker_main, WorkerArgs};
use crate::pool::TaskError;
use crate::process::Process;
use crate::sys;

/// Ring of each worker's task queue.
const TASK_RING: usize = 1 << 20;
/// Items a worker may hold beyond its first two chunks, at most…
const WINDOW_ITEMS: u64 = 256;
/// …and about this much work by its recent pace: fast tasks are sent in long runs
/// (fewer wake-ups), slow ones one chunk ahead (no long line behind a slow task while
/// another worker idles).
const WINDOW_NS: u64 = 1_000_000;
/// Messages taken from the result queue at once.
const TAKE: usize = 256;
/// A worker that holds items, runs none, has nothing queued and reported nothing for
/// this long lost a message: its items are handed out again.
const STALL: Duration = Duration::from_secs(2);
/// How often workers are checked for stalls and for deaths whose report was lost.
const HEALTH_CHECK: Duration = Duration::from_millis(250);

/// One worker slot and the process in it.
struct Worker {
    generation: u32,
    process: Option<Process>,
    pid: u32,
    queue: Option<Queue<()>>,
    assigned: VecDeque<Chunk>,
    /// Items of the first assigned chunk already returned.
    cursor: u32,
    /// Items assigned and not returned.
    items: u64,
    /// Ring bytes of the chunks assigned and not returned.
    cost: usize,
    /// Items ever assigned to this process (for `max_tasks_per_child`).
    total: u64,
    /// The task it was killed for (per-task timeout).
    killed_for: Option<(u64, u32)>,
    /// Its queue was closed: it exits when done, and is not replaced.
    retiring: bool,
    /// When it last returned results (or got work while idle).
    progress: Instant,
    /// Seen dead by a health check whose exit report has not arrived.
    dead_seen: bool,
    /// Recent time per item (moving average; 0 until known).
    ns_per_item: u64,
    /// This end of its descriptor socket: the descriptors of a chunk's argument go
    /// there just before the chunk goes into its queue.
    fd_sock: Option<UnixStream>,
}

impl Worker {
    fn empty() -> Worker {
        Worker {
            generation: 0,
            process: None,
            pid: 0,
            queue: None,
            assigned: VecDeque::new(),
            cursor: 0,
            items: 0,
            cost: 0,
            total: 0,
            killed_for: None,
            retiring: false,
            progress: Instant::now(),
            dead_seen: false,
            ns_per_item: 0,
            fd_sock: None,
        }
    }

    fn live(&self) -> bool {
        self.process.is_some()
    }

    /// Items it may hold, by its pace (two chunks until the pace is known).
    fn window(&self) -> u64 {
        match self.ns_per_item {
            0 => 1,
            ns => (WINDOW_NS / ns).clamp(1, WINDOW_ITEMS),
        }
    }

    /// `n` items came back now: update the pace and the progress time.
    fn returned(&mut self, n: u32) {
        let now = Instant::now();
        let per = (now - self.progress).as_nanos() as u64 / u64::from(n.max(1));
        self.ns_per_item = if self.ns_per_item == 0 {
            per.max(1)
        } else {
            ((3 * self.ns_per_item + per) / 4).max(1)
        };
        self.progress = now;
    }
}

/// The supervisor thread's state.
pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    cfg: Config,
    slots: Slots,
    workers: Vec<Worker>,
    ready: VecDeque<Chunk>,
    start_failures: u32,
    last_start_try: Option<Instant>,
    last_health_check: Instant,
}

/// Marks the pool stopped however the supervisor thread ends.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        let pending = {
            let mut s = self.0.lock();
            s.closed = true;
            std::mem::take(&mut s.pending)
        };
        for c in pending {
            c.fail(0, c.count, &TaskError::Terminated { task: 0 });
        }
        self.0.stopped.store(true, Ordering::Release);
    }
}

impl Supervisor {
    /// Starts the workers and the supervisor thread; returns once every worker started.
    pub(crate) fn start(
        shared: Arc<Shared>,
        cfg: Config,
    ) -> Result<thread::JoinHandle<()>, crate::pool::PoolError> {
        let slots = Slots::new(cfg.processes).map_err(|e| crate::pool::PoolError::Create {
            what: "the workers' slots",
            source: Some(Box::new(e)),
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = thread::Builder::new()
            .name("shoal-pool".into())
            .spawn(move || {
                let guard = StopGuard(Arc::clone(&shared));
                let mut sup = Supervisor {
                    workers: (0..cfg.processes).map(|_| Worker::empty()).collect(),
                    shared,
                    cfg,
                    slots,
                    ready: VecDeque::new(),
                    start_failures: 0,
                    last_start_try: None,
                    last_health_check: Instant::now(),
                };
                // Workers are started from this thread, which lives as long as the
                // pool: the parent-death signal of a daemon follows its creating thread.
                for slot in 0..sup.workers.len() {
                    if let Err(e) = sup.start_worker(slot) {
                        sup.kill_all();
                        sup.await_exits(Duration::from_secs(10));
                        let _ = tx.send(Err(e));
                        drop(guard);
                        return;
                    }
                }
                let _ = tx.send(Ok(()));
                sup.run();
                drop(guard);
            })
            .map_err(|e| crate::pool::PoolError::Create {
                what: "the supervisor thread",
                source: Some(Box::new(e)),
            })?;
        match rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(crate::pool::PoolError::Start(e))
            }
            Err(_) => {
                let _ = handle.join();
                Err(crate::pool::PoolError::Create {
                    what: "the workers (the supervisor thread ended while starting them)",
                    source: None,
                })
            }
        }
    }

    fn start_worker(&mut self, slot: usize) -> Result<(), crate::process::ProcessError> {
        let w = &mut self.workers[slot];
        w.generation = w.generation.wrapping_add(1);
        let generation = w.generation;
        self.slots.reset(slot);
        let queue: Queue<()> = Queue::builder()
            .capacity_bytes(TASK_RING)
            .cell_size(TASK_CELL)
            .build()
            .map_err(|e| crate::process::ProcessError::Start {
                name: format!("PoolWorker-{slot}"),
                source: std::io::Error::other(e.to_string()),
            })?;
        let (fd_sock, theirs) =
            UnixStream::pair().map_err(|e| crate::process::ProcessError::Start {
                name: format!("PoolWorker-{slot}"),
                source: e,
            })?;
        let args = WorkerArgs {
            fd_sock: Fd(theirs),
            slot: slot as u32,
            generation,
            tasks: queue.clone(),
            results: self.shared.results.clone(),
            slots: self.slots.shm().clone(),
            timed: self.cfg.timeout.is_some(),
            max_tasks: self.cfg.max_tasks,
            init: self.cfg.init.clone(),
        };
        let p = Process::new(worker_main, args)
            .name(format!("PoolWorker-{slot}"))
            .daemon(true)
            .start_method(self.cfg.method)
            .start()?;
        let watched = p.clone();
        let results = self.shared.results.clone();
        let watcher = thread::Builder::new()
            .name("shoal-pool-watch".into())
            .spawn(move || {
                let code = watched.join().unwrap_or(wire::UNKNOWN_EXIT);
                let mut m = Vec::with_capacity(13);
                wire::header(&mut m, wire::EXITED, slot as u32, generation);
                m.extend_from_slice(&code.to_le_bytes());
                let _ = results.put_bytes(&m);
            });
        if let Err(e) = watcher {
            let _ = p.kill();
            let _ = p.join();
            return Err(crate::process::ProcessError::Start {
                name: p.name().to_owned(),
                source: e,
            });
        }
        let w = &mut self.workers[slot];
        w.pid = p.pid();
        w.process = Some(p);
        w.queue = Some(queue);
        w.fd_sock = Some(fd_sock);
        w.cursor = 0;
        w.items = 0;
        w.cost = 0;
        w.total = 0;
        w.killed_for = None;
        w.retiring = false;
        w.progress = Instant::now();
        w.dead_seen = false;
        w.ns_per_item = 0;
        self.publish_pids();
        Ok(())
    }

    fn publish_pids(&self) {
        let pids = self
            .workers
            .iter()
            .filter(|w| w.live())
            .map(|w| w.pid)
            .collect();
        *self.shared.pids.lock().unwrap_or_else(|e| e.into_inner()) = pids;
    }

    fn run(&mut self) {
        loop {
            self.shared.wake_sent.store(false, Ordering::SeqCst);
            let (closed, terminate, broken) = {
                let mut s = self.shared.lock();
                self.ready.append(&mut s.pending);
                (s.closed, s.terminate, s.broken.clone())
            };
            if terminate {
                self.terminate();
                return;
            }
            if let Some(m) = broken {
                let err = TaskError::Broken { message: m };
                for c in self.ready.drain(..) {
                    c.fail(0, c.count, &err);
                }
            }
            self.restart_empty_slots();
            self.dispatch();
            if closed && self.ready.is_empty() && self.workers.iter().all(|w| w.assigned.is_empty())
            {
                self.retire_all();
                self.await_exits(Duration::from_secs(30));
                return;
            }
            let busy = self.workers.iter().any(|w| !w.assigned.is_empty());
            let wait = match self.cfg.timeout {
                Some(t) if busy => {
                    (t / 4).clamp(Duration::from_millis(1), Duration::from_millis(10))
                }
                _ => Duration::from_millis(200),
            };
            match self.take_messages(wait) {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                Err(_) => return,
            }
            if self.cfg.timeout.is_some() {
                self.check_timeouts();
            }
            self.check_health();
        }
    }

    /// The safety net under the channels: a worker whose exit report never came, or
    /// that holds items it will never return (a message lost on the way), is dealt
    /// with as if the report or the results had arrived, so no wait hangs.
    fn check_health(&mut self) {
        if self.last_health_check.elapsed() < HEALTH_CHECK {
            return;
        }
        self.last_health_check = Instant::now();
        for slot in 0..self.workers.len() {
            let w = &mut self.workers[slot];
            let Some(p) = &w.process else { continue };
            if !p.is_alive() {
                if !w.dead_seen {
                    // Its report may be on the way: wait one more check.
                    w.dead_seen = true;
                    continue;
                }
                let code = p.exitcode().unwrap_or(wire::UNKNOWN_EXIT);
                let generation = w.generation;
                self.exited(slot, generation, code);
                continue;
            }
            if w.assigned.is_empty() || w.progress.elapsed() < STALL {
                continue;
            }
            let idle =
                self.slots.running(slot).is_none() && w.queue.as_ref().is_some_and(Queue::is_empty);
            if !idle {
                continue;
            }
            let cursor = std::mem::take(&mut w.cursor);
            let assigned = std::mem::take(&mut w.assigned);
            w.items = 0;
            w.cost = 0;
            w.progress = Instant::now();
            let mut requeue = Vec::new();
            for (k, c) in assigned.into_iter().enumerate() {
                let start = if k == 0 { cursor } else { 0 };
                // New chunk ids: results of the old ones, should they come, are ignored.
                requeue.push(self.sub_chunk(&c, start, c.count, c.attempt));
            }
            for c in requeue.into_iter().rev() {
                self.ready.push_front(c);
            }
        }
    }

    /// Slots whose worker could not be restarted: try again now and then.
    fn restart_empty_slots(&mut self) {
        if self.shared.lock().broken.is_some() {
            return;
        }
        let want: Vec<usize> = (0..self.workers.len())
            .filter(|&i| !self.workers[i].live() && !self.workers[i].retiring)
            .collect();
        if want.is_empty() {
            return;
        }
        if self
            .last_start_try
            .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_start_try = Some(Instant::now());
        for slot in want {
            match self.start_worker(slot) {
                Ok(()) => self.start_failures = 0,
                Err(e) => {
                    self.start_failures += 1;
                    if self.start_failures >= 20 && !self.workers.iter().any(Worker::live) {
                        self.break_pool(format!("no worker could be started: {e}"));
                        return;
                    }
                }
            }
        }
    }

    fn break_pool(&mut self, message: String) {
        let err = TaskError::Broken {
            message: message.clone(),
        };
        self.shared.lock().broken = Some(message);
        for c in self.ready.drain(..) {
            c.fail(0, c.count, &err);
        }
        for w in &mut self.workers {
            let cursor = w.cursor;
            for (k, c) in w.assigned.drain(..).enumerate() {
                c.fail(if k == 0 { cursor } else { 0 }, c.count, &err);
            }
            w.cursor = 0;
            w.items = 0;
            w.cost = 0;
        }
    }

    /// Gives ready chunks to the workers with room, the least loaded first.
    fn dispatch(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        // A quarter of the ring: a worker reads its chunks where they lie, so the cells
        // of the batch it runs stay taken until the batch ends, though their results
        // may already be back (and their cost freed here). What is counted plus what
        // such a batch holds stays within half the ring: a put never waits.
        let limit = TASK_RING / 4;
        let mut batches: Vec<Vec<usize>> = vec![Vec::new(); self.workers.len()];
        // The worker of the previous chunk, while it has room in its window: runs of
        // consecutive items go to one worker, so their results come back as one run
        // (one piece for the caller, not one per item, when chunks are small).
        let mut last: Option<usize> = None;
        // The job last seen not abandoned: its other chunks need not lock it again.
        let mut live_job: Option<Arc<Job>> = None;
        while let Some(c) = self.ready.front() {
            let known = live_job.as_ref().is_some_and(|j| Arc::ptr_eq(j, &c.job));
            if !known && c.job.lock().abandoned {
                let c = self.ready.pop_front().expect("front");
                c.fail(0, c.count, &TaskError::Terminated { task: 0 });
                continue;
            }
            let cost = c.cost();
            let count = u64::from(c.count);
            let max_tasks = self.cfg.max_tasks;
            let fits = |w: &Worker| {
                w.live()
                    && !w.retiring
                    && w.killed_for.is_none()
                    && (max_tasks == 0 || w.total < max_tasks)
                    && (w.assigned.is_empty()
                        || (w.cost + cost <= limit
                            && (w.assigned.len() < 2 || w.items + count <= w.window())))
            };
            let same_job = |w: &Worker| {
                w.assigned.back().is_some_and(|b| {
                    Arc::ptr_eq(&b.job, &c.job) && b.first + u64::from(b.count) == c.first
                })
            };
            let sticky = last.filter(|&i| {
                let w = &self.workers[i];
                fits(w) && same_job(w) && w.items + count <= w.window()
            });
            let best = sticky.or_else(|| {
                self.workers
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| fits(w))
                    .min_by_key(|(_, w)| w.items)
                    .map(|(i, _)| i)
            });
            let Some(i) = best else { break };
            last = Some(i);
            if !known {
                live_job = Some(Arc::clone(&c.job));
            }
            let c = self.ready.pop_front().expect("front");
            let w = &mut self.workers[i];
            if w.assigned.is_empty() {
                w.progress = Instant::now();
            }
            w.items += count;
            w.total += count;
            w.cost += cost;
            w.assigned.push_back(c);
            batches[i].push(w.assigned.len() - 1);
        }
        for (i, batch) in batches.into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let w = &self.workers[i];
            for &k in &batch {
                let c = &w.assigned[k];
                if let (false, Some(sock)) = (c.fds.is_empty(), &w.fd_sock) {
                    let fds: Vec<BorrowedFd<'_>> = c.fds.iter().map(AsFd::as_fd).collect();
                    // A worker that died meanwhile is handled by its exit report (the
                    // chunk is retried or failed there).
                    let _ = sys::send_with_fds(sock.as_fd(), &[1], &fds);
                }
            }
            let msgs: Vec<&[u8]> = batch.iter().map(|&k| &w.assigned[k].msg[..]).collect();
            if let Some(q) = &w.queue {
                // Never waits: the chunks fit (counted above), or the worker is idle and
                // reads the one large chunk as it streams in.
                let _ = q.put_bytes_many(&msgs);
            }
        }
    }

    /// Handles the messages on the result queue, read where they lie in the ring (no
    /// copy, no allocation per message), waiting up to `wait` for the first.
    fn take_messages(&mut self, wait: Duration) -> Result<usize, crate::channel::GetError> {
        let shared = Arc::clone(&self.shared);
        shared
            .results
            .get_bytes_with(TAKE, Some(wait), |m| self.handle(m))
    }

    fn handle(&mut self, m: &[u8]) {
        let mut r = Reader::new(m);
        match r.u8() {
            Some(wire::RESULTS) => {
                if let (Some(slot), Some(generation)) = (r.u32(), r.u32()) {
                    self.results(slot as usize, generation, r);
                }
            }
            Some(wire::EXITED) => {
                if let (Some(slot), Some(generation), Some(code)) = (r.u32(), r.u32(), r.i32()) {
                    self.exited(slot as usize, generation, code);
                }
            }
            Some(wire::INIT_FAILED) => {
                let _ = (r.u32(), r.u32());
                let msg = String::from_utf8_lossy(r.rest()).into_owned();
                self.break_pool(msg);
            }
            _ => {} // WAKE
        }
    }

    fn results(&mut self, slot: usize, generation: u32, mut r: Reader<'_>) {
        let Some(w) = self.workers.get_mut(slot) else {
            return;
        };
        if w.generation != generation {
            return;
        }
        let pid = w.pid;
        // Items this message returns: the pace is measured once per message (one clock
        // reading, however many small chunks it closes).
        let mut returned = 0u32;
        // Pieces for the job of the current chunk; a run of results grows in `run`.
        let mut batch: Vec<Piece> = Vec::new();
        let mut batch_job: Option<Arc<Job>> = None;
        let mut run: Option<Piece> = None;
        while !r.is_empty() {
            let (Some(chunk), Some(first), Some(n), Some(status)) =
                (r.u64(), r.u32(), r.u32(), r.u8())
            else {
                break;
            };
            let Some(lens) = r.bytes(4 * n as usize) else {
                break;
            };
            let lens = lens
                .chunks_exact(4)
                .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")));
            let total: usize = lens.clone().map(|l| l as usize).sum();
            let Some(data) = r.bytes(total) else {
                break;
            };
            let Some(head) = w.assigned.front() else {
                break;
            };
            if head.id != chunk || w.cursor != first || n == 0 || n > head.count - w.cursor {
                // Not what this worker holds: a message from a confused peer.
                continue;
            }
            let index = head.first + u64::from(first);
            if !batch_job
                .as_ref()
                .is_some_and(|j| Arc::ptr_eq(j, &head.job))
            {
                batch.extend(run.take());
                if let Some(j) = batch_job.take() {
                    j.deliver(batch.drain(..));
                }
                batch_job = Some(Arc::clone(&head.job));
            }
            if status == wire::OK {
                let p = match &mut run {
                    Some(p) if p.first + p.len() == index => p,
                    _ => {
                        batch.extend(run.take());
                        run.insert(Piece::run(index))
                    }
                };
                let mut end = p.data.len() as u32;
                p.data.extend_from_slice(data);
                p.ends.extend(lens.map(|l| {
                    end += l;
                    end
                }));
            } else {
                batch.extend(run.take());
                let message = String::from_utf8_lossy(data).into_owned();
                batch.push(Piece::failed(
                    index,
                    if status == wire::PANICKED {
                        TaskError::Panicked {
                            task: index,
                            pid,
                            message,
                        }
                    } else {
                        TaskError::Codec {
                            task: index,
                            error: crate::codec::CodecError::new(message),
                        }
                    },
                ));
            }
            let head_count = head.count;
            w.cursor += n;
            w.items -= u64::from(n);
            returned += n;
            if w.cursor == head_count {
                let done = w.assigned.pop_front().expect("head");
                w.cost -= done.cost();
                w.cursor = 0;
            }
        }
        batch.extend(run.take());
        if let Some(j) = batch_job {
            j.deliver(batch);
        }
        if returned > 0 {
            w.returned(returned);
            self.shared.set_pace(w.ns_per_item);
        }
    }

    fn exited(&mut self, slot: usize, generation: u32, code: i32) {
        let Some(w) = self.workers.get_mut(slot) else {
            return;
        };
        if w.generation != generation || !w.live() {
            return;
        }
        let pid = w.pid;
        w.process = None;
        w.queue = None;
        let held = self.slots.running(slot);
        let signal = (code < 0 && code != wire::UNKNOWN_EXIT).then_some(-code);
        let killed_for = w.killed_for.take();
        let cursor = std::mem::take(&mut w.cursor);
        let assigned = std::mem::take(&mut w.assigned);
        w.items = 0;
        w.cost = 0;
        let retiring = w.retiring;
        let mut requeue = Vec::new();
        for (k, c) in assigned.into_iter().enumerate() {
            let start = if k == 0 { cursor } else { 0 };
            let h = held
                .filter(|h| h.chunk == c.id && h.item >= start && h.item < c.count)
                .map(|h| h.item);
            let Some(hi) = h else {
                requeue.push(if start == 0 {
                    c
                } else {
                    self.sub_chunk(&c, start, c.count, c.attempt)
                });
                continue;
            };
            if hi > start {
                requeue.push(self.sub_chunk(&c, start, hi, c.attempt));
            }
            let task = c.first + u64::from(hi);
            if killed_for == Some((c.id, hi)) {
                let timeout = self.cfg.timeout.unwrap_or_default();
                c.job.deliver([Piece::failed(
                    task,
                    TaskError::Timeout { pid, task, timeout },
                )]);
            } else if c.attempt < self.cfg.retries {
                requeue.push(self.sub_chunk(&c, hi, hi + 1, c.attempt + 1));
            } else {
                c.job.deliver([Piece::failed(
                    task,
                    TaskError::WorkerDied { pid, signal, task },
                )]);
            }
            if hi + 1 < c.count {
                requeue.push(self.sub_chunk(&c, hi + 1, c.count, c.attempt));
            }
        }
        for c in requeue.into_iter().rev() {
            self.ready.push_front(c);
        }
        self.publish_pids();
        let stopping = {
            let s = self.shared.lock();
            s.terminate || s.broken.is_some()
        };
        if !retiring && !stopping {
            if self.start_worker(slot).is_err() {
                // Retried by `restart_empty_slots`, which reports repeated failures.
                self.start_failures += 1;
                self.last_start_try = Some(Instant::now());
            } else {
                self.start_failures = 0;
            }
        }
    }

    /// A new chunk with the items `[from, to)` of `c`.
    fn sub_chunk(&self, c: &Chunk, from: u32, to: u32, attempt: u32) -> Chunk {
        let id = self.shared.chunk_id();
        let task = wire::parse_chunk(&c.msg).map_or(u32::MAX, |v| v.task);
        let items = wire::chunk_items(&c.msg);
        let mut msg = wire::chunk_from_items(id, task, &items[from as usize..to as usize]);
        if !c.fds.is_empty() {
            wire::mark_with_fds(&mut msg);
        }
        Chunk {
            id,
            job: Arc::clone(&c.job),
            first: c.first + u64::from(from),
            count: to - from,
            attempt,
            msg,
            fds: Arc::clone(&c.fds),
        }
    }

    fn check_timeouts(&mut self) {
        let Some(t) = self.cfg.timeout else { return };
        let limit = t.as_nanos() as u64;
        let now = now_ns();
        for (slot, w) in self.workers.iter_mut().enumerate() {
            if !w.live() || w.killed_for.is_some() || w.assigned.is_empty() {
                continue;
            }
            let Some(r) = self.slots.running(slot) else {
                continue;
            };
            if r.start_ns != 0 && now.saturating_sub(r.start_ns) >= limit {
                if let Some(p) = &w.process {
                    let _ = p.kill();
                }
                w.killed_for = Some((r.chunk, r.item));
            }
        }
    }

    fn kill_all(&mut self) {
        for w in &mut self.workers {
            if let Some(p) = &w.process {
                let _ = p.kill();
            }
            if let Some(q) = &w.queue {
                q.close();
            }
            w.retiring = true;
        }
    }

    fn retire_all(&mut self) {
        for w in &mut self.workers {
            if let Some(q) = &w.queue {
                q.close();
            }
            w.retiring = true;
        }
    }

    /// Waits until every worker's exit was reported (killing them after `patience`).
    fn await_exits(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        let mut killed = false;
        while self.workers.iter().any(Worker::live) {
            if Instant::now() >= deadline {
                if killed {
                    break;
                }
                for w in &self.workers {
                    if let Some(p) = &w.process {
                        let _ = p.kill();
                    }
                }
                killed = true;
            }
            match self.take_messages(Duration::from_millis(50)) {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                Err(_) => break,
            }
        }
        self.publish_pids();
    }

    fn terminate(&mut self) {
        self.kill_all();
        let err = TaskError::Terminated { task: 0 };
        for c in self.ready.drain(..) {
            c.fail(0, c.count, &err);
        }
        for w in &mut self.workers {
            let cursor = std::mem::take(&mut w.cursor);
            for (k, c) in w.assigned.drain(..).enumerate() {
                c.fail(if k == 0 { cursor } else { 0 }, c.count, &err);
            }
            w.items = 0;
            w.cost = 0;
        }
        self.await_exits(Duration::from_secs(30));
    }
}
