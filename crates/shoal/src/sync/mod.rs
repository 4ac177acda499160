//! Cross-process synchronisation primitives living in shared memory.
//!
//! Each primitive lives in its own anonymous segment, tagged with what it holds, and
//! reaches a child process as a descriptor when passed as a
//! [`Process`](crate::Process) argument. Creating one, or receiving one that is not what
//! was asked for, fails with [`SyncError`]; each operation has its own small error
//! ([`TryLockError`], [`NotHeld`], [`ReleaseError`], [`BarrierError`]), and a lock whose
//! holder died is reported with [`OwnerDied`], which still carries the guard.

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
    BarrierError, GuardError, GuardResult, LockResult, NoLock, NotHeld, OwnerDied, ReleaseError,
    SyncError, TryLockError,
};
pub use event::Event;
#[cfg(test)]
pub(crate) use lock::tests::watchdog;
pub use lock::{Lock, LockGuard};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{Semaphore, SemaphoreGuard};
