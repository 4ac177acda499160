//! shoal-cluster: shoal's [`Pool`](shoal::Pool) across machines, on Redis Streams.
//!
//! # A tour
//!
//! ## Hello, cluster
//!
//! Tasks are plain functions registered with [`shoal::task!`], as for a local pool.
//! A worker host is any program that links them and calls [`serve`]; it runs the tasks
//! it takes in a local `shoal::Pool`:
//!
//! ```no_run
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//! shoal::task!(square);
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if std::env::args().any(|a| a == "--redis") {
//!         // A worker host: `app --redis redis://10.0.0.5 --pool squares --processes 8`
//!         return Ok(shoal_cluster::serve()?);
//!     }
//!     // A submitter, anywhere. Both sides take the key from SHOAL_CLUSTER_KEY.
//!     let pool = shoal_cluster::Pool::connect("redis://10.0.0.5", "squares")?;
//!     let squares = pool.map(square, 0..10_000u64)?;
//!     assert_eq!(squares[100], 10_000);
//!     Ok(())
//! }
//! ```
//!
//! ## What travels where
//!
//! Pool `P` keeps its keys under `shoal:{P}:` (one Redis Cluster slot):
//! - `tasks:0`, `tasks:1`, `tasks:2`: one task stream per [`Priority`], read by the
//!   consumer group `hosts`, highest priority first;
//! - `results:<submitter>`: each submitter's result stream, read by a blocking `XREAD`
//!   on a connection of its own;
//! - `dead`: the dead-letter stream;
//! - `hosts`: the worker hosts' heartbeats.
//!
//! Tasks travel in chunks: one stream entry carries up to
//! [`PoolBuilder::chunk_size`] tasks of one call (a `map`), each with its own id, and is
//! delivered, leased, reclaimed and dead-lettered whole. A host stores results and
//! acknowledges their entries in one Lua script per batch, the results before any
//! acknowledgement.
//! While a task runs its host renews the lease on it; the tasks of a host that stops
//! renewing (it died) are taken over by the others with `XAUTOCLAIM`. A task delivered
//! more than its maximum number of times goes to the dead-letter stream, and its
//! caller gets [`TaskError::DeadLettered`]. The submitter keeps a bounded number of
//! tasks in flight.
//!
//! ## Signed messages
//!
//! Every task and result is signed with HMAC-SHA256 over a [`ClusterKey`] (from
//! `--key-file` or `SHOAL_CLUSTER_KEY`). A host checks the signature before it decodes
//! anything: an unsigned or mis-signed task goes to the dead-letter stream and runs
//! nowhere, so write access to Redis is not code execution on the hosts. Redis
//! passwords and TLS go in the URL: `rediss://user:password@host:6380`.
//!
//! ## Failure semantics
//!
//! Delivery is at least once: a task whose host died runs again elsewhere, and may
//! have run (partly or wholly) before. The submitter drops duplicate results by task
//! id, so a call sees each result once; tasks with side effects should be idempotent.
//! `docs/cluster.md` in the repository says more.
//!
//! ## Watching a pool
//!
//! ```no_run
//! let s = shoal_cluster::status("redis://127.0.0.1:6379", "squares")?;
//! println!("{} hosts, {} in flight, {} pending", s.hosts.len(), s.in_flight, s.pending);
//! # Ok::<(), shoal_cluster::ClusterError>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod connect;
mod error;
mod host;
mod key;
mod names;
mod pool;
mod status;
mod wire;

pub use error::{ClusterError, TaskError};
pub use host::{serve, serve_with, HandedHost, HandedTask, ServeOptions};
pub use key::{ClusterKey, KEY_ENV};
pub use names::Priority;
pub use pool::{AsyncResult, EncodedOutcome, Pool, PoolBuilder, PoolStats};
pub use status::{status, HostStatus, Status};
