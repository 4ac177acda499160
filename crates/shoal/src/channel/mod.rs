//! Channels between processes: queues and pipes over shared-memory rings.
//!
//! * [`Queue`] — bounded multi-producer multi-consumer (Python's `multiprocessing.Queue`),
//!   with [`JoinableQueue`] and [`SimpleQueue`] beside it;
//! * [`Pipe`] — two ends ([`Connection`]s) over a pair of single-producer rings: one
//!   sender and one receiver at a time per direction (clones of an end take turns), no
//!   per-message atomic read-modify-write on the shared cache lines, records read in
//!   place; a receiver killed while reading leaves the message for the next one.
//!
//! Every channel lives in a shared-memory ring (see `docs/ring-format.md`): a message is
//! visible only once written whole, waiting spins briefly then sleeps on a futex, and a
//! process killed at any instant leaves no torn message and no lock held.
#![deny(unsafe_code)]

#[cfg(feature = "tokio")]
mod asynchronous;
mod endpoint;
mod error;
mod joinable;
mod pipe;
mod queue;
mod read_slot;
pub(crate) mod ring;
mod simple;
mod waitable;
mod write_slot;

pub use error::{CreateError, GetError, PutError};
pub use joinable::{JoinableQueue, TaskDoneError};
pub use pipe::{Connection, Pipe, PipeBuilder};

/// The end of a [`Pipe`], by a name that cannot be mistaken for
/// [`net::Connection`](crate::net::Connection), the socket connection, in code that uses
/// both (`shoal::Connection` and `shoal::channel::Connection` are this same type,
/// Python's name).
///
/// # Examples
/// ```
/// use shoal::{Pipe, PipeEnd};
///
/// let (tx, rx): (PipeEnd, PipeEnd) = Pipe::simplex()?; // (sender, receiver)
/// tx.send(&"to the receiver")?;
/// assert_eq!(rx.recv::<String>()?, "to the receiver");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type PipeEnd = Connection;
pub use queue::{Queue, QueueBuilder, Readiness};
pub use read_slot::ReadSlot;
pub use simple::SimpleQueue;
pub use waitable::{wait, wait_with_fds, Waitable};
pub use write_slot::WriteSlot;

/// Segment tag of a [`Queue`] ring ("QU" + 1).
pub(crate) const TAG_QUEUE: u32 = 0x5155_0001;
/// Segment tag of a [`JoinableQueue`] ring.
pub(crate) const TAG_JOINABLE: u32 = 0x5155_0002;
/// Segment tag of a [`SimpleQueue`] ring.
pub(crate) const TAG_SIMPLE: u32 = 0x5155_0003;
/// Segment tag of one direction of a [`Pipe`]: a single-producer ring ("PI" + 2; 1 was
/// a pipe over the multi-producer ring, which this build refuses to map).
pub(crate) const TAG_PIPE: u32 = 0x5049_0002;
