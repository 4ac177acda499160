//! Which task each worker is running, in shared memory: the pool reads it when a worker
//! dies (to blame the right task) and while tasks run (to enforce the per-task timeout).
//!
//! One 64-byte line per worker slot (a slot outlives the workers that occupy it in
//! turn), four words, written only by the worker:
//!
//! | offset | word    | meaning                                                    |
//! |--------|---------|------------------------------------------------------------|
//! | 0      | `seq`   | seqlock: odd while the three words below are being written |
//! | 8      | `chunk` | id of the chunk the task belongs to                        |
//! | 16     | `item`  | offset of the task in its chunk + 1; 0 between tasks       |
//! | 24     | `start` | when the task started, ns since the Unix epoch (timeouts)  |
//!
//! A worker killed with `seq` odd was between tasks: none is blamed. `item` is cleared
//! (one store) when a task returns, so a worker killed while idle or while flushing
//! results blames nobody either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::shm::SharedMemory;

const LINE: usize = 64;
const SEQ: usize = 0;
const CHUNK: usize = 8;
const ITEM: usize = 16;
const START: usize = 24;
const _: () = assert!(SEQ < CHUNK && CHUNK < ITEM && ITEM < START && START + 8 <= LINE);

/// The slot table (a handle; clones share the memory).
#[derive(Clone, Debug)]
pub(crate) struct Slots {
    shm: SharedMemory,
    count: usize,
}

/// What a slot says its worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Running {
    pub(crate) chunk: u64,
    pub(crate) item: u32,
    pub(crate) start_ns: u64,
}

/// Nanoseconds since the Unix epoch (the same clock in every process).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Slots {
    pub(crate) fn new(count: usize) -> Result<Slots, crate::shm::ShmError> {
        Ok(Slots {
            shm: SharedMemory::new(count.max(1) * LINE)?,
            count,
        })
    }

    pub(crate) fn from_shm(shm: SharedMemory) -> Slots {
        let count = shm.size() / LINE;
        Slots { shm, count }
    }

    pub(crate) fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    fn word(&self, slot: usize, at: usize) -> &AtomicU64 {
        assert!(slot < self.count, "slot {slot} out of {}", self.count);
        self.shm
            .atomic_u64(slot * LINE + at)
            .expect("slot words are in bounds and aligned")
    }

    /// Worker side: the words of one slot, looked up once.
    pub(crate) fn slot(&self, slot: usize) -> Slot<'_> {
        Slot {
            seq: self.word(slot, SEQ),
            chunk: self.word(slot, CHUNK),
            item: self.word(slot, ITEM),
            start: self.word(slot, START),
        }
    }

    /// Pool side: resets a slot for a new worker.
    pub(crate) fn reset(&self, slot: usize) {
        self.word(slot, ITEM).store(0, Ordering::Relaxed);
        let seq = self.word(slot, SEQ);
        let s = seq.load(Ordering::Relaxed);
        seq.store((s + 1) & !1, Ordering::Release);
    }

    /// Pool side: the task the worker in `slot` runs now, if any (a consistent
    /// snapshot, or `None` when the worker is between tasks).
    pub(crate) fn running(&self, slot: usize) -> Option<Running> {
        let seq = self.word(slot, SEQ);
        for _ in 0..64 {
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                // Being written: a live worker finishes in nanoseconds; a dead one was
                // between tasks.
                std::hint::spin_loop();
                continue;
            }
            let chunk = self.word(slot, CHUNK).load(Ordering::Relaxed);
            let item = self.word(slot, ITEM).load(Ordering::Acquire);
            let start_ns = self.word(slot, START).load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            return (item != 0).then(|| Running {
                chunk,
                item: (item - 1) as u32,
                start_ns,
            });
        }
        None
    }
}

/// The words of one slot, for the worker that writes them.
pub(crate) struct Slot<'a> {
    seq: &'a AtomicU64,
    chunk: &'a AtomicU64,
    item: &'a AtomicU64,
    start: &'a AtomicU64,
}

impl Slot<'_> {
    /// Task `item` of `chunk` starts now (`start_ns` 0 when no timeout is set).
    pub(crate) fn begin(&self, chunk: u64, item: u32, start_ns: u64) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s | 1, Ordering::Relaxed);
        // Release fences order the seqlock: the odd value is visible before the data,
        // the data before the even value.
        std::sync::atomic::fence(Ordering::Release);
        self.chunk.store(chunk, Ordering::Relaxed);
        self.item.store(u64::from(item) + 1, Ordering::Relaxed);
        self.start.store(start_ns, Ordering::Relaxed);
        self.seq.store((s | 1) + 1, Ordering::Release);
    }

    /// Task `item` of the chunk of the last [`begin`](Slot::begin) starts now (untimed:
    /// its start time is not written). One store: the seqlock guards the chunk, which
    /// does not change.
    #[inline]
    pub(crate) fn next(&self, item: u32) {
        self.item.store(u64::from(item) + 1, Ordering::Release);
    }

    /// The running task returned.
    #[inline]
    pub(crate) fn end(&self) {
        self.item.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_shows_the_running_task() {
        let s = Slots::new(2).unwrap();
        assert_eq!(s.running(1), None);
        s.slot(1).begin(42, 3, 99);
        assert_eq!(
            s.running(1),
            Some(Running {
                chunk: 42,
                item: 3,
                start_ns: 99
            })
        );
        assert_eq!(s.running(0), None);
        s.slot(1).end();
        assert_eq!(s.running(1), None);
        s.slot(1).begin(43, 0, 0);
        s.slot(1).end();
        s.slot(1).next(5);
        assert_eq!(
            s.running(1),
            Some(Running {
                chunk: 43,
                item: 5,
                start_ns: 0
            })
        );
        s.reset(1);
        assert_eq!(s.running(1), None);
        assert!(now_ns() > 0);
    }
}
