//! Pools of worker processes (Python's `multiprocessing.Pool`) that never hang when a
//! worker dies.
//!
//! ```
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//! shoal::task!(square);
//!
//! let pool = shoal::Pool::new(2)?;
//! let squares = pool.map(square, 0..100u64)?;
//! assert_eq!(squares[9], 81);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Tasks are plain functions registered with [`task!`](crate::task!) (the way process
//! entries are registered with [`entry!`](crate::entry!)). The surface follows Python:
//! [`Pool::apply`], [`Pool::apply_async`] (an [`AsyncResult`] that is also a `Future`),
//! [`Pool::map`], [`Pool::map_async`], [`Pool::imap`], [`Pool::imap_unordered`],
//! [`Pool::starmap`], [`Pool::close`], [`Pool::join`], [`Pool::terminate`], and
//! [`PoolBuilder::build_scoped`] for a pool that closes and joins when dropped.
//!
//! # How it works
//!
//! Each worker is a daemonic [`Process`](crate::Process) with its own task queue; all
//! workers send results over one result queue (shared-memory rings from
//! [`channel`](crate::channel)). A supervisor thread in the parent hands chunks of
//! items to the workers, at most a small window each, and so knows which items each
//! worker holds; a worker writes the item it is running into a shared-memory slot
//! before running it. A watcher thread per worker waits on its pidfd and reports its
//! death on the result queue, so the supervisor learns of it at once: the item in the
//! slot fails with [`TaskError::WorkerDied`] (or is retried), the other items the
//! worker held go back to the front of the line, and a new worker takes the slot.
//!
//! A task argument may hold descriptors: sockets, listeners and files wrapped in
//! [`handoff::Fd`](crate::handoff::Fd), and shoal objects (queues, locks, values…).
//! Such an item travels in a chunk of its own, its descriptors passed to the worker
//! over a Unix socket of that worker just before the chunk (a TCP server whose
//! connections a pool serves: `tests/fd_passing.rs`).
#![deny(unsafe_code)]

mod async_result;
mod builder;
mod chunk;
mod encoded;
mod error;
mod feed;
mod handle;
mod imap;
mod job;
mod progress;
mod shared;
mod slots;
mod supervisor;
mod task;
mod wire;
mod worker;

pub use async_result::AsyncResult;
pub use builder::PoolBuilder;
pub use encoded::{is_registered, task_name, TASK_CODEC};
pub use error::{MapError, PoolError, TaskError, TimedOut};
pub use handle::{Pool, ScopedPool};
pub use imap::IMap;

/// What [`task!`](crate::task!) expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use super::task::{name_of, run_chunk, Task, TASKS};
    pub use super::worker::Batch;
    pub use linkme;
}
