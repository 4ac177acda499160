//! What the pool handle, its callers and the supervisor thread share: the build
//! options, the submitted chunks under a lock, the result queue, and the pool's state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::channel::Queue;
use crate::pool::chunk::Chunk;
use crate::pool::worker::InitSpec;
use crate::pool::{wire, TaskError};
use crate::process::StartMethod;

/// Ring of the shared result queue.
const RESULT_RING: usize = 4 << 20;

/// What the pool was built with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) method: StartMethod,
    pub(crate) max_tasks: u64,
    pub(crate) retries: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) init: Option<InitSpec>,
}

/// What callers and the supervisor share under a lock.
#[derive(Debug, Default)]
pub(crate) struct Sched {
    /// Chunks submitted and not yet taken by the supervisor.
    pub(crate) pending: VecDeque<Chunk>,
    /// No new work accepted.
    pub(crate) closed: bool,
    /// Kill the workers and fail what is left.
    pub(crate) terminate: bool,
    /// Why the pool can no longer run anything.
    pub(crate) broken: Option<String>,
}

/// The state shared by the pool handle, its callers and the supervisor thread.
#[derive(Debug)]
pub(crate) struct Shared {
    sched: Mutex<Sched>,
    pub(crate) results: Queue<()>,
    pub(crate) wake_sent: AtomicBool,
    next_chunk: AtomicU64,
    pub(crate) stopped: AtomicBool,
    /// The time per item of the last worker that returned results, ns (0: not known
    /// yet): what automatic chunking sizes its chunks by.
    pace_ns: AtomicU64,
    pub(crate) pids: Mutex<Vec<u32>>,
}

impl Shared {
    pub(crate) fn new() -> Result<Shared, crate::channel::CreateError> {
        let results = Queue::builder().capacity_bytes(RESULT_RING).build()?;
        Ok(Shared {
            sched: Mutex::new(Sched::default()),
            results,
            wake_sent: AtomicBool::new(false),
            next_chunk: AtomicU64::new(1),
            stopped: AtomicBool::new(false),
            pace_ns: AtomicU64::new(0),
            pids: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Sched> {
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh chunk id.
    pub(crate) fn chunk_id(&self) -> u64 {
        self.next_chunk.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the workers' latest time per item (see `pace_ns`).
    pub(crate) fn set_pace(&self, ns: u64) {
        self.pace_ns.store(ns, Ordering::Relaxed);
    }

    /// The workers' latest time per item in ns, 0 while not known.
    pub(crate) fn pace(&self) -> u64 {
        self.pace_ns.load(Ordering::Relaxed)
    }

    /// Whether the supervisor has ended (every outcome it knew of was delivered).
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The pids of the current workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Hands chunks to the supervisor. When the pool accepts no more work, their items
    /// fail with the reason, which is also returned.
    pub(crate) fn submit(&self, chunks: Vec<Chunk>) -> Result<(), TaskError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let refused = {
            let mut s = self.lock();
            if let Some(m) = &s.broken {
                Some(TaskError::Broken { message: m.clone() })
            } else if s.closed || s.terminate || self.stopped() {
                Some(TaskError::Closed)
            } else {
                s.pending.extend(chunks);
                return {
                    drop(s);
                    self.wake();
                    Ok(())
                };
            }
        };
        let err = refused.expect("refused");
        for c in &chunks {
            c.fail(0, c.count, &err);
        }
        Err(err)
    }

    /// Wakes the supervisor (at most one wake message in flight).
    pub(crate) fn wake(&self) {
        if !self.wake_sent.swap(true, Ordering::SeqCst) {
            let _ = self.results.put_bytes(&[wire::WAKE]);
        }
    }
}
