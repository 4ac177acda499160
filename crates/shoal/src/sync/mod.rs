//! Cross-process synchronisation primitives living in shared memory.

mod barrier;
mod bounded_semaphore;
mod condition;
mod error;
mod event;
mod lock;
mod primitive;
mod raw_lock;
mod rlock;
mod semaphore;
mod spin;

pub use barrier::{Barrier, BarrierWaitResult};
pub use bounded_semaphore::BoundedSemaphore;
pub use condition::{Condition, ConditionGuard};
pub use error::{
    BarrierError, LockResult, NoLock, NotHeld, OwnerDied, ReleaseError, SyncError, TryLockError,
};
pub use event::Event;
#[cfg(test)]
pub(crate) use lock::tests::watchdog;
pub use lock::{Lock, LockGuard};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{Semaphore, SemaphoreGuard};
