//! Cross-process synchronisation primitives living in shared memory.

mod barrier;
mod bounded_semaphore;
mod event;
mod semaphore;
mod signal_error;
mod signal_segment;

pub use barrier::{Barrier, BarrierWaitResult};
pub use bounded_semaphore::BoundedSemaphore;
pub use event::Event;
pub use semaphore::{Semaphore, SemaphoreGuard};
pub use signal_error::{BarrierError, PrimitiveError, ReleaseError};
