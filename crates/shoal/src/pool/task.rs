//! The registry of functions a pool worker can run, filled at link time.
//!
//! A worker is another process: it cannot receive a function pointer, only a name.
//! [`task!`](crate::task!) records each function under its type name in a `linkme`
//! distributed slice, as [`entry!`](crate::entry!) does for process entries; a task
//! differs from an entry in what it gives back: an encoded result, not an exit code.

use std::any::type_name;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, Codec};
use crate::pool::worker::Batch;

/// One registered task function. Built only by [`task!`](crate::task!).
#[doc(hidden)]
pub struct Task {
    /// The task's type name (computed at run time: `type_name` is not `const`).
    pub name: fn() -> &'static str,
    /// Runs the function on each item of a chunk ([`run_chunk`]).
    pub run: RunChunk,
}

/// What [`Task::run`] is.
#[doc(hidden)]
pub type RunChunk = fn(&mut Batch<'_>);

/// Every function registered with [`task!`](crate::task!) in the final binary.
///
/// `unsafe_code` flags every `#[link_section]` static; linkme's are sound by
/// construction (it checks each element's type against the slice's and owns the
/// section).
#[doc(hidden)]
#[allow(unsafe_code)]
#[linkme::distributed_slice]
pub static TASKS: [Task];

/// Registers a function as a pool task, so that [`Pool`](crate::Pool) can run it in its
/// workers.
///
/// Put it next to the function's definition. The function takes one argument (a tuple
/// for several) and returns one value, both `Serialize + DeserializeOwned`.
///
/// # Examples
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// shoal::task!(square);
///
/// let pool = shoal::Pool::builder().processes(2).build()?;
/// assert_eq!(pool.map(square, 1..=4u64)?, vec![1, 4, 9, 16]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! task {
    ($f:path) => {
        // linkme places the task with `#[link_section]`, which `unsafe_code` flags even
        // though linkme checks the element type; allow it for crates that deny it.
        #[allow(unsafe_code)]
        const _: () = {
            #[$crate::pool::__private::linkme::distributed_slice($crate::pool::__private::TASKS)]
            #[linkme(crate = $crate::pool::__private::linkme)]
            static SHOAL_TASK: $crate::pool::__private::Task = $crate::pool::__private::Task {
                name: || $crate::pool::__private::name_of($f),
                run: |batch| $crate::pool::__private::run_chunk($f, batch),
            };
        };
    };
}

/// The codec of task arguments and results (the pool's hot paths call its bincode
/// functions directly: `codec::bincode_append`, `codec::bincode_decode_prefix`).
pub(crate) const CODEC: Codec = Codec::Bincode;

/// The registry name of the function item `F`.
#[doc(hidden)]
pub fn name_of<F>(_: F) -> &'static str {
    type_name::<F>()
}

/// Decodes the argument of `f` from the first `len` bytes of `input`, calls it, and
/// appends its encoded result to `out` (the body of every registered task).
#[doc(hidden)]
#[inline]
pub(crate) fn run_task<F, A, R>(
    f: F,
    input: &[u8],
    len: usize,
    out: &mut Vec<u8>,
) -> Result<(), String>
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let arg: A = codec::bincode_decode_prefix(input, len)
        .map_err(|e| format!("could not decode the argument: {e}"))?;
    let r = f(arg);
    codec::bincode_append(&r, out).map_err(|e| format!("could not encode the result: {e}"))
}

/// Runs `f` on each item of `batch` in turn (the body of every registered task's
/// [`Task::run`]): one loop compiled with the task, under one `catch_unwind` until an
/// item panics (the panic fails that item alone, and the loop goes on with the next).
#[doc(hidden)]
#[inline]
pub fn run_chunk<F, A, R>(f: F, batch: &mut Batch<'_>)
where
    F: Fn(A) -> R + Copy,
    A: DeserializeOwned,
    R: Serialize,
{
    loop {
        let r = catch_unwind(AssertUnwindSafe(|| {
            while let Some((arg, len)) = batch.start() {
                let r = run_task(f, arg, len, batch.output());
                batch.finish(r);
            }
        }));
        match r {
            Ok(()) => return,
            Err(payload) => batch.panicked(payload),
        }
    }
}

/// The index in [`TASKS`] of the task registered under `name`.
pub(crate) fn find(name: &str) -> Option<u32> {
    TASKS
        .iter()
        .position(|t| (t.name)() == name)
        .map(|i| i as u32)
}

/// The task at `index` (the same in every process of one executable).
pub(crate) fn get(index: u32) -> Option<&'static Task> {
    TASKS.get(index as usize)
}

/// Checks that `F` is a registered plain function; gives its index.
pub(crate) fn resolve<F>() -> Result<u32, crate::pool::TaskError> {
    let name = type_name::<F>();
    if std::mem::size_of::<F>() != 0 {
        return Err(crate::pool::TaskError::NotAFunction {
            task: name.to_owned(),
        });
    }
    find(name).ok_or_else(|| crate::pool::TaskError::NotRegistered {
        task: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twice(x: u32) -> u32 {
        x * 2
    }
    crate::task!(twice);

    #[test]
    fn tasks_run_on_encoded_arguments() {
        assert!(get(find(name_of(twice)).unwrap()).is_some());
        let mut out = Vec::new();
        let arg = CODEC.encode(&21u32).unwrap();
        let mut input = arg.clone();
        input.extend_from_slice(&[9; 12]); // the rest of a chunk
        run_task(twice, &input, arg.len(), &mut out).unwrap();
        assert_eq!(CODEC.decode::<u32>(&out).unwrap(), 42);
        assert!(run_task(twice, &[0xff, 0xff], 2, &mut out).is_err());
        assert!(run_task(twice, &input, arg.len() + 1, &mut out).is_err());
        assert!(find("no::such::task").is_none());
    }
}
