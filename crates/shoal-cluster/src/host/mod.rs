//! Worker hosts: [`serve`] turns a program into one.

pub(crate) mod handed;
mod options;
pub(crate) mod run;

pub use handed::{HandedHost, HandedTask};
pub use options::ServeOptions;

use crate::error::ClusterError;

/// Turns this program into a worker host of a cluster pool, from its command line:
///
/// ```text
/// PROGRAM --redis URL --pool NAME [--processes N] [--key-file F]
///         [--lease-ms MS] [--grace-ms MS] [--prefetch N]
/// ```
///
/// The host runs the tasks registered with [`shoal::task!`] in this program, in a local
/// [`shoal::Pool`] of `N` processes (default: the number of CPUs). The cluster key comes
/// from `--key-file`, else from `SHOAL_CLUSTER_KEY`. It returns after `SIGTERM` or
/// `SIGINT`: it stops taking tasks, lets those it holds finish for `--grace-ms`
/// (default 30 s), hands back to the pool those that did not, and leaves.
///
/// # Errors
/// A bad command line, no key, or Redis unreachable at start; once serving, a host
/// rides out Redis restarts.
///
/// # Examples
/// ```no_run
/// fn resize(path: String) -> u64 {
///     path.len() as u64 // the real work
/// }
/// shoal::task!(resize);
///
/// fn main() -> Result<(), shoal_cluster::ClusterError> {
///     shoal_cluster::serve()
/// }
/// ```
pub fn serve() -> Result<(), ClusterError> {
    serve_with(ServeOptions::from_args(std::env::args_os().skip(1))?)
}

/// Runs a worker host with these options (see [`serve`]).
///
/// # Errors
/// As [`serve`].
///
/// # Examples
/// ```no_run
/// let opts = shoal_cluster::ServeOptions::new("redis://127.0.0.1:6379", "jobs").processes(4);
/// shoal_cluster::serve_with(opts)?;
/// # Ok::<(), shoal_cluster::ClusterError>(())
/// ```
pub fn serve_with(opts: ServeOptions) -> Result<(), ClusterError> {
    run::run(opts)
}
