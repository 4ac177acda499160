//! Cross-process synchronisation primitives living in shared memory.

mod condition;
mod error;
mod lock;
mod raw_lock;
mod rlock;

pub use condition::{Condition, ConditionGuard};
pub use error::{LockResult, NoLock, NotHeld, OwnerDied, SyncError, TryLockError};
#[cfg(test)]
pub(crate) use lock::tests::watchdog;
pub use lock::{Lock, LockGuard};
pub use rlock::{RLock, RLockGuard};
