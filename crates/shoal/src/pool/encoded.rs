//! Running a registered task by name on an argument already encoded: the hook for
//! programs that receive tasks from elsewhere (the worker hosts of `shoal-cluster`
//! read them from Redis) and run them in a local [`Pool`].

use std::sync::Arc;

use crate::codec::Codec;
use crate::pool::async_result::AsyncResult;
use crate::pool::chunk::Chunk;
use crate::pool::handle::Pool;
use crate::pool::job::{Job, Piece};
use crate::pool::{task, wire, TaskError};

/// The codec of task arguments and results: what [`Pool::apply_encoded`] expects and
/// gives back.
///
/// # Examples
/// ```
/// use shoal::pool::TASK_CODEC;
///
/// let arg = TASK_CODEC.encode(&7u64)?;
/// assert_eq!(TASK_CODEC.decode::<u64>(&arg)?, 7);
/// # Ok::<(), shoal::codec::CodecError>(())
/// ```
pub const TASK_CODEC: Codec = task::CODEC;

/// The name under which [`task!`](crate::task!) registers `f` (its type name), the
/// same in every program built from the same source.
///
/// # Examples
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// shoal::task!(square);
///
/// let name = shoal::pool::task_name(square);
/// assert!(name.ends_with("square"));
/// assert!(shoal::pool::is_registered(name));
/// ```
pub fn task_name<F, A, R>(f: F) -> &'static str
where
    F: Fn(A) -> R + Copy + 'static,
{
    task::name_of(f)
}

/// Whether a task is registered under `name` in this program.
///
/// # Examples
/// ```
/// assert!(!shoal::pool::is_registered("no::such::task"));
/// ```
pub fn is_registered(name: &str) -> bool {
    task::find(name).is_some()
}

impl Pool {
    /// Runs the task registered under `name` on `arg`, an argument already encoded with
    /// [`TASK_CODEC`]; the result comes back encoded the same way.
    ///
    /// For programs that receive tasks as bytes (a worker host of a cluster); typed
    /// callers use [`apply_async`](Pool::apply_async).
    ///
    /// # Errors
    /// The result fails with [`TaskError::NotRegistered`] when no task has that name,
    /// and otherwise as [`apply_async`](Pool::apply_async)'s.
    ///
    /// # Examples
    /// ```
    /// use shoal::pool::{task_name, TASK_CODEC};
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// shoal::task!(square);
    ///
    /// let pool = shoal::Pool::new(1)?;
    /// let out = pool.apply_encoded(task_name(square), &TASK_CODEC.encode(&9u64)?).get()?;
    /// assert_eq!(TASK_CODEC.decode::<u64>(&out)?, 81);
    /// assert!(pool.apply_encoded("no::such::task", &[]).get().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_encoded(&self, name: &str, arg: &[u8]) -> AsyncResult<Vec<u8>> {
        let job = Arc::new(Job::default());
        {
            let mut st = job.lock();
            st.submitted = 1;
            st.input_done = true;
        }
        match task::find(name) {
            Some(t) => {
                let id = self.shared.chunk_id();
                let mut msg = Vec::with_capacity(wire::CHUNK_HEADER + 4 + arg.len());
                wire::chunk_header(&mut msg, id, t);
                let _ = wire::push_item(&mut msg, |out| {
                    out.extend_from_slice(arg);
                    Ok::<(), ()>(())
                });
                wire::set_count(&mut msg, 1);
                // A refused submission fails the item itself.
                let _ = self.shared.submit(vec![Chunk {
                    id,
                    job: Arc::clone(&job),
                    first: 0,
                    count: 1,
                    attempt: 0,
                    msg,
                    fds: Arc::default(),
                }]);
            }
            None => job.deliver([Piece::failed(
                0,
                TaskError::NotRegistered {
                    task: name.to_owned(),
                },
            )]),
        }
        AsyncResult::new(job, Arc::clone(&self.shared), finish_encoded)
    }
}

/// The encoded outcome of the one item of an [`Pool::apply_encoded`] job.
fn finish_encoded(mut v: Vec<Piece>, _total: u64) -> Result<Vec<u8>, TaskError> {
    match v.pop() {
        Some(p) if p.len() == 1 => p.outcome(0).map(<[u8]>::to_vec),
        _ => Err(TaskError::Terminated { task: 0 }),
    }
}
