//! shoal: Python's `multiprocessing`, rebuilt in Rust.
//!
//! Processes that start fast, talk fast, share memory safely and keep working when one
//! of them crashes.
//!
//! # A tour
//!
//! Shared memory that no crash can leak, guarded by a lock that survives the death of
//! its holder:
//!
//! ```
//! use shoal::SharedMemory;
//!
//! let shm = SharedMemory::new(4096)?; // anonymous: freed with its last user
//! shm.write(0, b"hello")?;
//! # Ok::<(), shoal::shm::ShmError>(())
//! ```
//!
//! The modules, bottom-up: [`shm`] (segments, [`Value`], [`Array`]), [`sync`] (locks,
//! semaphores, events, conditions, barriers), [`process`] (starting processes).
#![deny(missing_docs)]

pub mod codec;
mod handoff;
pub mod net;
pub mod process;
pub mod shm;
pub mod sync;
mod sys;

pub use process::{active_children, current_process, parent_process, Process};
pub use shm::{Array, SharedMemory, Value};
pub use sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};

#[doc(hidden)]
pub use process::__private;
