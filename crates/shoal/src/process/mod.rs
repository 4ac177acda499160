//! Starting and supervising processes (Python's `multiprocessing.Process`).
//!
//! A child runs a plain function registered with [`entry!`](crate::entry!); its
//! argument travels through serde, and shoal objects inside it (shared memory, locks,
//! queues) travel as inherited descriptors.
//!
//! ```
//! use shoal::Process;
//!
//! fn greet(name: String) {
//!     println!("hello, {name}");
//! }
//! shoal::entry!(greet);
//!
//! let child = Process::new(greet, "world".to_owned()).start()?;
//! assert_eq!(child.join()?, 0);
//! # Ok::<(), shoal::process::ProcessError>(())
//! ```
//!
//! Nothing needs to be called in `main`: every binary that links shoal checks, before
//! `main`, whether it was started as a shoal child, and if so runs the entry and exits.
//! This also works in test binaries, whose `main` belongs to the test harness.
//!
//! Three [`StartMethod`]s: `ForkServer` (the default: a clean single-threaded helper
//! forks the children, fast and safe with threads), `Spawn` (a fresh copy of the
//! executable), `Fork` (opt-in; see its caveats). Children are supervised through
//! pidfds, so signals never reach a process that reused a pid.
#![deny(unsafe_code)]

mod affinity;
mod bootstrap;
mod builder;
mod child;
mod children;
mod command;
mod entry;
mod error;
mod identity;
mod named;
mod start;

pub use affinity::{available_cpus, set_cpu_affinity};
pub use builder::ProcessBuilder;
pub use child::Process;
pub use children::active_children;
pub use command::{inherited, Command, InheritError, Inheritable, INHERITED_ENV};
pub use entry::{EntryFn, EntryReturn};
pub use error::ProcessError;
pub use identity::{current_process, parent_process, ProcessInfo};
pub use named::{find_named, open_named, Named, NamedError, NamedObject};
pub use start::StartMethod;

/// What [`entry!`](crate::entry!) expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use super::entry::{name_of, run_entry, Entry, ENTRIES};
    pub use linkme;
}
