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

impl Pool {
    /// Runs the task registered as `name` on each of `args` (each encoded with
    /// [`TASK_CODEC`]) as one chunk: the items travel to one worker in one message and
    /// their results come back together, so a batch costs one round trip to a worker
    /// instead of one per item. Each item has its own outcome, in the order of `args`.
    ///
    /// For programs that receive tasks as bytes in batches (the worker hosts of
    /// `shoal-cluster` read many per Redis call). A worker that dies fails the items of
    /// the chunk it had not answered yet.
    ///
    /// # Errors
    /// The call itself fails only when the pool was terminated; each item fails as
    /// [`apply_encoded`](Pool::apply_encoded)'s does.
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
    /// let args = vec![TASK_CODEC.encode(&3u64)?, TASK_CODEC.encode(&4u64)?];
    /// let out = pool.apply_encoded_many(task_name(square), &args).get()?;
    /// assert_eq!(TASK_CODEC.decode::<u64>(out[1].as_ref().unwrap())?, 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_encoded_many(
        &self,
        name: &str,
        args: &[Vec<u8>],
    ) -> AsyncResult<Vec<Result<Vec<u8>, TaskError>>> {
        let job = Arc::new(Job::default());
        {
            let mut st = job.lock();
            st.submitted = args.len() as u64;
            st.input_done = true;
        }
        if args.is_empty() {
            return AsyncResult::new(job, Arc::clone(&self.shared), finish_many);
        }
        match task::find(name) {
            Some(t) => {
                let id = self.shared.chunk_id();
                let size: usize = args.iter().map(|a| a.len() + 4).sum();
                let mut msg = Vec::with_capacity(wire::CHUNK_HEADER + size);
                wire::chunk_header(&mut msg, id, t);
                for arg in args {
                    let _ = wire::push_item(&mut msg, |out| {
                        out.extend_from_slice(arg);
                        Ok::<(), ()>(())
                    });
                }
                wire::set_count(&mut msg, args.len() as u32);
                // A refused submission fails the items themselves.
                let _ = self.shared.submit(vec![Chunk {
                    id,
                    job: Arc::clone(&job),
                    first: 0,
                    count: args.len() as u32,
                    attempt: 0,
                    msg,
                    fds: Arc::default(),
                }]);
            }
            None => job.deliver((0..args.len() as u64).map(|i| {
                Piece::failed(
                    i,
                    TaskError::NotRegistered {
                        task: name.to_owned(),
                    },
                )
            })),
        }
        AsyncResult::new(job, Arc::clone(&self.shared), finish_many)
    }
}

/// The encoded outcome of each item of an [`Pool::apply_encoded_many`] job, in order.
fn finish_many(v: Vec<Piece>, total: u64) -> Result<Vec<Result<Vec<u8>, TaskError>>, TaskError> {
    let mut out: Vec<Option<Result<Vec<u8>, TaskError>>> = (0..total).map(|_| None).collect();
    for p in &v {
        for k in 0..p.len() {
            if let Some(slot) = out.get_mut((p.first + k) as usize) {
                *slot = Some(p.outcome(k as usize).map(<[u8]>::to_vec));
            }
        }
    }
    Ok(out
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.unwrap_or(Err(TaskError::Terminated { task: i as u64 })))
        .collect())
}

/// The encoded outcome of the one item of an [`Pool::apply_encoded`] job.
fn finish_encoded(mut v: Vec<Piece>, _total: u64) -> Result<Vec<u8>, TaskError> {
    match v.pop() {
        Some(p) if p.len() == 1 => p.outcome(0).map(<[u8]>::to_vec),
        _ => Err(TaskError::Terminated { task: 0 }),
    }
}
