//! The worker process: takes chunks from its own task queue, runs each task under
//! `catch_unwind`, and sends the results back in batches over the shared result queue.
//!
//! Before each task it writes which task it runs in its slot (see `slots.rs`), so that
//! if it dies the pool blames that task and no other.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::Queue;
use crate::handoff::{self, Fd};
use crate::pool::slots::{now_ns, Slot, Slots};
use crate::pool::{task, wire};
use crate::shm::SharedMemory;
use crate::sys;

/// How long a worker waits for the descriptors of a chunk marked `WITH_FDS` (sent just
/// before the chunk, so they are there unless the pool is gone).
const FDS_WAIT: Duration = Duration::from_secs(60);

/// Results are sent at least this often while tasks keep coming.
const FLUSH_AFTER: Duration = Duration::from_micros(500);
/// …or when this many are waiting…
const FLUSH_COUNT: usize = 4096;
/// …or when they take this many bytes.
const FLUSH_BYTES: usize = 128 * 1024;
/// Chunks taken from the task queue at once.
const TAKE: usize = 64;

/// The initializer of every worker: a registered entry and its encoded argument.
#[derive(Debug, Clone)]
pub(crate) struct InitSpec {
    pub(crate) entry: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Arc<Vec<OwnedFd>>,
}

#[derive(Serialize, Deserialize)]
struct InitWire {
    entry: String,
    bytes: Vec<u8>,
    fds: Vec<u32>,
}

impl Serialize for InitSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use std::os::fd::AsFd;
        let fds = self
            .fds
            .iter()
            .map(|fd| handoff::export_fd(fd.as_fd(), "initializer argument"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(serde::ser::Error::custom)?;
        InitWire {
            entry: self.entry.clone(),
            bytes: self.bytes.clone(),
            fds,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for InitSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<InitSpec, D::Error> {
        let w = InitWire::deserialize(d)?;
        let fds = w
            .fds
            .into_iter()
            .map(handoff::import_fd)
            .collect::<Result<Vec<_>, _>>()
            .map_err(serde::de::Error::custom)?;
        Ok(InitSpec {
            entry: w.entry,
            bytes: w.bytes,
            fds: Arc::new(fds),
        })
    }
}

/// Everything a worker is started with.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    /// Where the descriptors of chunks marked `WITH_FDS` arrive, in chunk order.
    pub(crate) fd_sock: Fd<UnixStream>,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) tasks: Queue<()>,
    pub(crate) results: Queue<()>,
    pub(crate) slots: SharedMemory,
    /// Write start times in the slot (a per-task timeout is set).
    pub(crate) timed: bool,
    /// Exit after this many tasks (0: never), at the end of a chunk.
    pub(crate) max_tasks: u64,
    pub(crate) init: Option<InitSpec>,
}

/// The panic message of a payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs the initializer; `Err` says why it failed.
fn initialize(init: InitSpec) -> Result<(), String> {
    let entry = crate::process::__private::ENTRIES
        .iter()
        .find(|e| (e.name)() == init.entry)
        .ok_or_else(|| format!("initializer `{}` is not registered", init.entry))?;
    let fds = Arc::try_unwrap(init.fds).unwrap_or_default();
    match catch_unwind(AssertUnwindSafe(|| (entry.run)(&init.bytes, fds))) {
        Ok(0) => Ok(()),
        Ok(code) => Err(format!(
            "initializer `{}` failed with exit code {code}",
            init.entry
        )),
        Err(p) => Err(format!(
            "initializer `{}` panicked: {}",
            init.entry,
            panic_message(p.as_ref())
        )),
    }
}

/// Results waiting to be sent, as one [`wire::RESULTS`] message: closed segments in
/// `msg`, and the open run of successful results in `lens`/`data`.
struct Outbox {
    msg: Vec<u8>,
    header: usize,
    count: usize,
    /// The count at which to look at the clock next.
    look_at: usize,
    /// When the first waiting result was counted (seen at the first look).
    since: Option<Instant>,
    run_chunk: u64,
    run_first: u32,
    /// The lengths of the open run's results, as they go on the wire (`u32` each,
    /// little-endian), so that closing the run copies them at once.
    lens: Vec<u8>,
    data: Vec<u8>,
}

impl Outbox {
    fn new(slot: u32, generation: u32) -> Outbox {
        let mut msg = Vec::with_capacity(64 * 1024);
        wire::header(&mut msg, wire::RESULTS, slot, generation);
        Outbox {
            header: msg.len(),
            msg,
            count: 0,
            look_at: 1,
            since: None,
            run_chunk: 0,
            run_first: 0,
            lens: Vec::with_capacity(4 * FLUSH_COUNT),
            data: Vec::with_capacity(64 * 1024),
        }
    }

    fn segment(&mut self, chunk: u64, first: u32, n: u32, status: u8) {
        self.msg.extend_from_slice(&chunk.to_le_bytes());
        self.msg.extend_from_slice(&first.to_le_bytes());
        self.msg.extend_from_slice(&n.to_le_bytes());
        self.msg.push(status);
    }

    /// Results in the open run.
    #[inline]
    fn run_len(&self) -> u32 {
        (self.lens.len() / 4) as u32
    }

    /// Moves the open run into `msg`.
    fn close_run(&mut self) {
        if self.lens.is_empty() {
            return;
        }
        self.segment(self.run_chunk, self.run_first, self.run_len(), wire::OK);
        self.msg.extend_from_slice(&self.lens);
        self.msg.extend_from_slice(&self.data);
        self.lens.clear();
        self.data.clear();
    }

    /// Prepares the open run to take the result of `item` of `chunk`.
    #[inline]
    fn open(&mut self, chunk: u64, item: u32) {
        if !self.lens.is_empty()
            && (self.run_chunk != chunk || self.run_first + self.run_len() != item)
        {
            self.close_run();
        }
        if self.lens.is_empty() {
            self.run_chunk = chunk;
            self.run_first = item;
        }
    }

    /// Records a failed item.
    fn failed(&mut self, chunk: u64, item: u32, status: u8, message: &str) {
        self.close_run();
        self.segment(chunk, item, 1, status);
        self.msg
            .extend_from_slice(&(message.len() as u32).to_le_bytes());
        self.msg.extend_from_slice(message.as_bytes());
    }

    #[inline]
    fn counted(&mut self) {
        self.count += 1;
    }

    /// Whether the waiting results should be sent now.
    #[inline]
    fn due(&mut self) -> bool {
        (self.count >= self.look_at && self.look())
            || self.msg.len() + self.data.len() >= FLUSH_BYTES
    }

    /// Looks at the count and the clock. Reading the clock after every trivial task
    /// would cost more than the task: it is read after 1, 2, 4, … 64 results, then
    /// every 64. A slow task is seen after the first result; a stream of fast ones
    /// rarely.
    #[cold]
    fn look(&mut self) -> bool {
        let c = self.count;
        self.look_at = if c < 64 { 2 * c } else { c + 64 }.min(FLUSH_COUNT);
        if c >= FLUSH_COUNT {
            return true;
        }
        match self.since {
            Some(t) => t.elapsed() >= FLUSH_AFTER,
            None => {
                self.since = Some(Instant::now());
                false
            }
        }
    }

    /// Sends the waiting results; `false` when the pool closed the queue.
    fn flush(&mut self, results: &Queue<()>) -> bool {
        if self.count == 0 {
            return true;
        }
        self.close_run();
        let ok = results.put_bytes(&self.msg).is_ok();
        self.msg.truncate(self.header);
        self.count = 0;
        self.look_at = 1;
        self.since = None;
        ok
    }
}

/// The descriptors of the next chunk marked `WITH_FDS`, from the pool's socket.
fn receive_fds(sock: &UnixStream) -> Result<Vec<OwnedFd>, String> {
    let fail =
        |e: &dyn std::fmt::Display| format!("could not receive the argument's descriptors: {e}");
    sock.set_read_timeout(Some(FDS_WAIT))
        .map_err(|e| fail(&e))?;
    let mut byte = [0u8; 1];
    match sys::recv_with_fds(sock.as_fd(), &mut byte) {
        Ok((1, fds)) => Ok(fds),
        Ok(_) => Err(fail(&"the pool closed the socket")),
        Err(e) => Err(fail(&e)),
    }
}

/// The worker's entry function.
pub(crate) fn worker_main(mut args: WorkerArgs) -> i32 {
    // Task panics are reported with the task; do not print them too.
    std::panic::set_hook(Box::new(|_| {}));
    let slots = Slots::from_shm(args.slots.clone());
    let me = slots.slot(args.slot as usize);
    if let Some(init) = args.init.take() {
        if let Err(message) = initialize(init) {
            let mut m = Vec::new();
            wire::header(&mut m, wire::INIT_FAILED, args.slot, args.generation);
            m.extend_from_slice(message.as_bytes());
            let _ = args.results.put_bytes(&m);
            return 3;
        }
    }
    let mut out = Outbox::new(args.slot, args.generation);
    let mut done: u64 = 0;
    let mut go_on = true;
    // Chunks are read where they lie in the ring (no copy, no allocation per chunk).
    // Ends when the pool closes the queue (shutting down).
    while go_on {
        let taken = args.tasks.get_bytes_with(TAKE, None, |msg| {
            go_on = go_on && run_chunk(&args, &me, &mut out, &mut done, msg);
        });
        if taken.is_err() || !go_on || !out.flush(&args.results) {
            break;
        }
    }
    out.flush(&args.results);
    0
}

/// Runs the tasks of the chunk message `msg`; `false` when the worker must stop (the
/// pool closed the result queue, or `max_tasks` were run).
fn run_chunk(
    args: &WorkerArgs,
    me: &Slot<'_>,
    out: &mut Outbox,
    done: &mut u64,
    msg: &[u8],
) -> bool {
    let Some(mut view) = wire::parse_chunk(msg) else {
        return true;
    };
    let fds = if view.with_fds {
        match receive_fds(&args.fd_sock) {
            Ok(fds) => Some(fds),
            Err(m) => {
                for item in 0..view.count {
                    out.failed(view.chunk, item, wire::CODEC_FAILED, &m);
                    out.counted();
                }
                return true;
            }
        }
    } else {
        None
    };
    let Some(t) = task::get(view.task) else {
        let m = format!("no task number {} in this executable", view.task);
        for item in 0..view.count {
            if view.items.item_in_place().is_none() {
                break;
            }
            out.failed(view.chunk, item, wire::CODEC_FAILED, &m);
            out.counted();
        }
        return true;
    };
    let mut batch = Batch {
        items: view.items,
        chunk: view.chunk,
        count: view.count,
        next: 0,
        running: false,
        before: 0,
        slot: me,
        out,
        results: &args.results,
        timed: args.timed,
        stopped: false,
        done,
    };
    match fds {
        // The argument's shoal objects and `Fd`s take these by index (such a chunk has
        // one item).
        Some(fds) => handoff::importing(fds, || (t.run)(&mut batch)),
        None => (t.run)(&mut batch),
    }
    if batch.stopped {
        return false;
    }
    if args.max_tasks != 0 && *done >= args.max_tasks {
        out.flush(&args.results);
        return false;
    }
    true
}

/// The tasks of one chunk as the worker runs them: what a registered task's
/// [`Task::run`](crate::pool::__private::Task) loops over (see `task::run_chunk`), so
/// that the loop over the items is compiled with the task, and the worker's own
/// bookkeeping (the slot, the results, the flushes) is inlined into it.
///
/// Not part of the API; built only by the worker.
#[doc(hidden)]
pub struct Batch<'a> {
    items: wire::Reader<'a>,
    chunk: u64,
    count: u32,
    /// The next item to hand out.
    next: u32,
    /// An item was handed out and has not finished (a panic is its failure).
    running: bool,
    /// Bytes of results before the running item's.
    before: usize,
    slot: &'a Slot<'a>,
    out: &'a mut Outbox,
    results: &'a Queue<()>,
    timed: bool,
    /// The pool closed the result queue: no item is handed out any more.
    stopped: bool,
    done: &'a mut u64,
}

impl<'a> Batch<'a> {
    /// The next item's argument (the rest of the chunk from its bytes on, and its
    /// length), now recorded in the slot as running; `None` at the end of the chunk.
    #[inline]
    pub fn start(&mut self) -> Option<(&'a [u8], usize)> {
        if self.stopped || self.next >= self.count {
            return None;
        }
        let (arg, len) = self.items.item_in_place()?;
        let item = self.next;
        if self.timed {
            self.slot.begin(self.chunk, item, now_ns());
        } else if item == 0 {
            self.slot.begin(self.chunk, 0, 0);
        } else {
            self.slot.next(item);
        }
        // After a result of this chunk, the open run goes on (a failure or a flush
        // closed it otherwise).
        if item == 0 || self.out.lens.is_empty() {
            self.out.open(self.chunk, item);
        }
        self.before = self.out.data.len();
        self.running = true;
        Some((arg, len))
    }

    /// Where the running item's encoded result goes.
    #[inline]
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out.data
    }

    /// The running item returned: its result was appended to [`output`](Batch::output),
    /// or `Err` says why it could not be decoded or encoded.
    #[inline]
    pub fn finish(&mut self, r: Result<(), String>) {
        self.slot.end();
        self.running = false;
        match r {
            Ok(()) => {
                let len = self.out.data.len() - self.before;
                self.out.lens.extend_from_slice(&(len as u32).to_le_bytes());
            }
            Err(m) => {
                self.out.data.truncate(self.before);
                self.out
                    .failed(self.chunk, self.next, wire::CODEC_FAILED, &m);
            }
        }
        self.finished();
    }

    /// The running item panicked with `payload`. A panic outside any item (in the
    /// worker's own code) goes on unwinding.
    pub fn panicked(&mut self, payload: Box<dyn std::any::Any + Send>) {
        if !self.running {
            std::panic::resume_unwind(payload);
        }
        self.slot.end();
        self.running = false;
        self.out.data.truncate(self.before);
        let m = panic_message(payload.as_ref());
        self.out.failed(self.chunk, self.next, wire::PANICKED, &m);
        self.finished();
    }

    /// Counts the item that finished, and sends the results when they are due.
    #[inline]
    fn finished(&mut self) {
        self.out.counted();
        *self.done += 1;
        self.next += 1;
        if self.out.due() && !self.out.flush(self.results) {
            self.stopped = true;
        }
    }
}
crate::entry!(worker_main);
