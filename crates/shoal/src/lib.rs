//! shoal: Python's `multiprocessing`, rebuilt in Rust.
//!
//! Processes that start fast, talk fast, share memory safely and keep working when one
//! of them crashes.
//!
//! # A tour
//!
//! ## Hello, processes
//!
//! A child process runs a plain function registered with [`entry!`]; its argument
//! travels through serde, and shoal objects inside it (here a [`Value`] with its lock)
//! reach the child as the same object, not a copy:
//!
//! ```
//! use shoal::{Process, Value};
//!
//! fn count_to(total: Value<u64>) {
//!     for _ in 0..1000 {
//!         // `lock()` takes the value's lock; `unwrap` would report a holder that died
//!         // while holding it (`GuardError::OwnerDied`).
//!         *total.lock().unwrap() += 1;
//!     }
//! }
//! shoal::entry!(count_to);
//!
//! let total = Value::new(0u64)?;
//! let children: Vec<Process> = (0..2)
//!     .map(|_| Process::new(count_to, total.clone()).start())
//!     .collect::<Result<_, _>>()?;
//! for child in &children {
//!     assert_eq!(child.join()?, 0); // the exit code, as in Python
//! }
//! assert_eq!(total.load(), 2000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Nothing is called in `main`: a binary that links shoal knows, before `main`, whether
//! it was started as a child.
//!
//! ## Shared memory
//!
//! [`SharedMemory`] is anonymous by default (freed with its last user: no crash can
//! leak it); named segments exist for unrelated programs.
//!
//! ```
//! use shoal::SharedMemory;
//!
//! let shm = SharedMemory::new(4096)?;
//! shm.write(0, b"hello")?;
//! let mut buf = [0u8; 5];
//! shm.read(0, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//! # Ok::<(), shoal::shm::ShmError>(())
//! ```
//!
//! ## A lock that survives its holder
//!
//! When the holder of a [`Lock`] dies (a thread that exits, a process that is
//! `SIGKILL`ed), the next acquirer is told so at once with
//! [`OwnerDied`](sync::OwnerDied), which still hands it the lock:
//!
//! ```
//! use shoal::Lock;
//!
//! let lock = Lock::new()?;
//! let held_by_thread = lock.clone();
//! std::thread::spawn(move || std::mem::forget(held_by_thread.acquire()))
//!     .join()
//!     .unwrap(); // the thread ended while holding the lock
//! match lock.acquire() {
//!     Ok(_guard) => unreachable!("the holder died"),
//!     Err(died) => {
//!         // Check or repair what the lock protects, then go on.
//!         let _guard = died.into_inner();
//!     }
//! }
//! assert!(lock.try_acquire().is_ok()); // usable as before
//! # Ok::<(), shoal::sync::SyncError>(())
//! ```
//!
//! ## Events and barriers
//!
//! An [`Event`] wakes every waiter once set; a [`Barrier`] lets a fixed number of
//! parties meet, round after round. Every blocking call has a timeout form.
//!
//! ```
//! use std::time::Duration;
//! use shoal::{Barrier, Event};
//!
//! let ready = Event::new()?;
//! let meet = Barrier::new(2)?;
//! let (r, m) = (ready.clone(), meet.clone());
//! let t = std::thread::spawn(move || {
//!     r.set();
//!     m.wait().map(|w| w.index())
//! });
//! assert!(ready.wait_timeout(Duration::from_secs(10)));
//! let mine = meet.wait()?.index();
//! assert_eq!(mine + t.join().unwrap()?, 1); // places 0 and 1, in order of arrival
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Queues and pipes
//!
//! A [`Queue`] is a bounded multi-producer multi-consumer ring in shared memory; a
//! producer or consumer killed at any instant leaves no torn message and no stuck lock.
//! [`Pipe`] gives two connected ends, each direction a single-producer ring whose
//! records are read in place.
//!
//! ```
//! use shoal::{Pipe, Queue};
//!
//! let queue: Queue<String> = Queue::new()?;
//! queue.put("hello".to_owned())?;
//! assert_eq!(queue.get()?, "hello");
//!
//! let (left, right) = Pipe::duplex()?;
//! left.send(&(1u8, "one"))?;
//! assert_eq!(right.recv::<(u8, String)>()?, (1, "one".to_owned()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## A pool that never hangs
//!
//! A [`Pool`] runs registered tasks in worker processes; a worker that dies fails (or
//! retries) only the task it held, and a new worker takes its place.
//!
//! ```
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//! shoal::task!(square);
//!
//! let pool = shoal::Pool::builder().processes(2).build()?;
//! assert_eq!(pool.map(square, 1..=4u64)?, vec![1, 4, 9, 16]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! Bottom-up: each uses only those above it in this list (the private `sys`, every OS
//! call, sits below them all).
//! - [`codec`]: the serde codecs messages travel with;
//! - [`handoff`]: shoal objects as bytes plus descriptors, for carriers of one's own;
//! - [`shm`]: shared-memory segments and [`SharedMemory`];
//! - [`sync`]: [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`],
//!   [`Condition`], [`Barrier`], with one error type for creating or receiving them
//!   ([`SyncError`](sync::SyncError));
//! - [`shared`]: [`Value`] and [`Array`], each in a segment with its lock;
//! - [`collections`]: [`SharedDict`] and [`SharedList`] in shared memory, by name;
//! - [`net`]: authenticated [`Listener`](net::Listener)/[`Client`](net::Client)
//!   connections over TCP and Unix sockets, wire-compatible with Python's
//!   `multiprocessing.connection`;
//! - [`manager`]: a manager [`Server`](manager::Server) and [`Client`](manager::Client)
//!   on the wire protocol of Python's `multiprocessing.managers` (dicts, lists, queues,
//!   locks... shared with Rust and Python processes);
//! - [`channel`]: [`Queue`], [`JoinableQueue`], [`SimpleQueue`], [`Pipe`] and
//!   [`wait`](channel::wait) over several of them (and over processes and network
//!   connections);
//! - [`process`]: [`Process`], its start methods and the entry registry;
//! - [`pool`]: [`Pool`], [`AsyncResult`], worker supervision.
//!
//! `docs/design.md` in the repository gives the architecture and the contract of each
//! piece.
#![deny(missing_docs)]
// Unsafe code is fenced: `sys` (FFI), the shared-memory layout code and the ring and
// raw-lock protocols allow it, file by file; everything else is safe Rust.
#![deny(unsafe_code)]

pub mod channel;
pub mod codec;
pub mod collections;
pub mod handoff;
pub mod manager;
pub mod net;
pub mod pool;
pub mod process;
pub mod shared;
pub mod shm;
pub mod sync;
mod sys;

pub use channel::{Connection, JoinableQueue, Pipe, PipeEnd, Queue, SimpleQueue};
pub use collections::{SharedDict, SharedList};
pub use pool::{AsyncResult, Pool};
pub use process::{active_children, current_process, inherited, parent_process, Process};
pub use shared::{Array, Value};
pub use shm::SharedMemory;
pub use sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};

#[doc(hidden)]
pub use process::__private;
