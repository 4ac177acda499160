//! The registry of functions a child process can run, filled at link time.
//!
//! A child is a fresh copy of the current executable (or a fork of the forkserver): it
//! cannot receive a function pointer from its parent, only a name. [`entry!`] records
//! each function under its type name (`my_crate::worker`) in a `linkme` distributed
//! slice, so the table is complete before any code runs — the child looks it up before
//! `main`.

use std::any::type_name;
use std::fmt::Display;
use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;

use crate::handoff;

/// One registered entry function. Built only by [`entry!`].
#[doc(hidden)]
pub struct Entry {
    /// The entry's type name (computed at run time: `type_name` is not `const`).
    pub name: fn() -> &'static str,
    /// Decodes the arguments from the handoff and runs the function; returns the exit
    /// code.
    pub run: fn(&[u8], Vec<OwnedFd>) -> i32,
}

/// Every function registered with [`entry!`] in the final binary.
///
/// `unsafe_code` flags every `#[link_section]` static; linkme's are sound by
/// construction (it checks each element's type against the slice's and owns the
/// section), so the registry is allowed here rather than moved away from its type.
#[doc(hidden)]
#[allow(unsafe_code)]
#[linkme::distributed_slice]
pub static ENTRIES: [Entry];

/// Registers a function as a process entry, so that [`Process::new`](crate::Process::new)
/// can start a child that runs it.
///
/// Put it next to the function's definition. The function takes no argument or one
/// (use a tuple for several) that is `Serialize + DeserializeOwned`, and returns `()`,
/// an `i32` exit code, or `Result<(), E>` with `E: Display` (see [`EntryReturn`]). A
/// zero-argument entry is started with `()` as its arguments.
///
/// A method taking `self` by value is an entry too (`shoal::entry!(Worker::run)`):
/// the struct is the child's state, as the subclass of Python's `Process` that
/// overrides `run`.
///
/// # Examples
/// ```
/// use serde::{Deserialize, Serialize};
/// use shoal::{Process, Queue};
///
/// fn worker((n, text): (u32, String)) -> i32 {
///     println!("{text}");
///     n as i32
/// }
/// shoal::entry!(worker);
///
/// fn daemon() {} // no argument: started with `()`
/// shoal::entry!(daemon);
///
/// // Python's `class Worker(Process): def run(self): ...`
/// #[derive(Serialize, Deserialize)]
/// struct Greeter {
///     name: String,
///     out: Queue<String>,
/// }
/// impl Greeter {
///     fn run(self) {
///         self.out.put(format!("hello, {}", self.name)).unwrap();
///     }
/// }
/// shoal::entry!(Greeter::run);
///
/// assert_eq!(Process::new(worker, (3, "three".to_owned())).start()?.join()?, 3);
/// assert_eq!(Process::new(daemon, ()).daemon(true).start()?.join()?, 0);
/// let out = Queue::new()?;
/// let greeter = Greeter { name: "Ada".to_owned(), out: out.clone() };
/// Process::new(Greeter::run, greeter).start()?.join()?;
/// assert_eq!(out.get()?, "hello, Ada");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! entry {
    ($f:path) => {
        // linkme places the entry with `#[link_section]`, which `unsafe_code` flags even
        // though linkme checks the element type; allow it for crates that deny it.
        #[allow(unsafe_code)]
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::ENTRIES)]
            #[linkme(crate = $crate::__private::linkme)]
            static SHOAL_ENTRY: $crate::__private::Entry = $crate::__private::Entry {
                name: || $crate::__private::name_of($f),
                run: |bytes, fds| $crate::__private::run_entry($f, bytes, fds),
            };
        };
    };
}

/// A function a child process can run: one of no argument or of one argument. `M` only
/// tells the two shapes apart (it is inferred, never written).
///
/// # Examples
/// ```
/// use shoal::process::EntryFn;
///
/// fn takes(n: u8) -> i32 {
///     i32::from(n)
/// }
/// fn none() -> i32 {
///     5
/// }
/// fn run<M, F: EntryFn<M>>(f: F, args: F::Args) -> i32 {
///     use shoal::process::EntryReturn;
///     f.call(args).exit_code()
/// }
/// assert_eq!(run(takes, 4), 4);
/// assert_eq!(run(none, ()), 5);
/// ```
pub trait EntryFn<M>: Copy + 'static {
    /// What the child receives: the argument, or `()` for a function of none.
    type Args: serde::Serialize + DeserializeOwned;
    /// What the function returns.
    type Ret: EntryReturn;
    /// Calls the function.
    fn call(self, args: Self::Args) -> Self::Ret;
}

impl<F, A, R> EntryFn<(A,)> for F
where
    F: Fn(A) -> R + Copy + 'static,
    A: serde::Serialize + DeserializeOwned,
    R: EntryReturn,
{
    type Args = A;
    type Ret = R;
    fn call(self, args: A) -> R {
        self(args)
    }
}

impl<F, R> EntryFn<()> for F
where
    F: Fn() -> R + Copy + 'static,
    R: EntryReturn,
{
    type Args = ();
    type Ret = R;
    fn call(self, (): ()) -> R {
        self()
    }
}

/// What an entry function may return, and how it becomes the process exit code.
///
/// `()` is 0; an `i32` is the exit code itself (of which, as for every process, the
/// parent sees the low 8 bits); `Ok(())` is 0 and `Err(e)` prints `e` on standard error
/// and gives 1. A panic gives 1 too, after the panic hook has printed the message.
///
/// # Examples
/// ```
/// use shoal::Process;
///
/// fn check(n: i64) -> Result<(), String> {
///     if n < 0 {
///         return Err(format!("{n} is negative"));
///     }
///     Ok(())
/// }
/// shoal::entry!(check);
///
/// assert_eq!(Process::new(check, 5).start()?.join()?, 0);
/// assert_eq!(Process::new(check, -5).start()?.join()?, 1);
/// # Ok::<(), shoal::process::ProcessError>(())
/// ```
pub trait EntryReturn {
    /// The exit code of the child process.
    ///
    /// # Examples
    /// ```
    /// use shoal::process::EntryReturn;
    ///
    /// assert_eq!(().exit_code(), 0);
    /// assert_eq!(3i32.exit_code(), 3);
    /// assert_eq!(Ok::<(), String>(()).exit_code(), 0);
    /// assert_eq!(Err::<(), _>("bad input").exit_code(), 1); // and prints the error
    /// ```
    fn exit_code(self) -> i32;
}

impl EntryReturn for () {
    fn exit_code(self) -> i32 {
        0
    }
}

impl EntryReturn for i32 {
    fn exit_code(self) -> i32 {
        self
    }
}

impl<E: Display> EntryReturn for Result<(), E> {
    fn exit_code(self) -> i32 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    }
}

/// The registry name of the function item `F`.
#[doc(hidden)]
pub fn name_of<F>(_: F) -> &'static str {
    type_name::<F>()
}

/// Decodes the arguments of `f` and calls it (the body of every registered entry).
#[doc(hidden)]
pub fn run_entry<F, M>(f: F, bytes: &[u8], fds: Vec<OwnedFd>) -> i32
where
    F: EntryFn<M>,
{
    match handoff::decode::<F::Args>(bytes, fds) {
        Ok(args) => f.call(args).exit_code(),
        Err(e) => {
            eprintln!(
                "shoal: could not decode the arguments of `{}`: {e}",
                type_name::<F>()
            );
            1
        }
    }
}

/// The entry registered under `name`.
pub(crate) fn find(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| (e.name)() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(n: u8) -> i32 {
        i32::from(n)
    }
    crate::entry!(registered);

    #[test]
    fn registered_functions_are_found_by_type_name() {
        let name = name_of(registered);
        assert!(name.ends_with("::registered"), "{name}");
        let entry = find(name).unwrap();
        let enc = handoff::encode(&9u8).unwrap();
        assert_eq!((entry.run)(&enc.bytes, enc.fds), 9);
        assert!(find("no::such::entry").is_none());
    }

    #[test]
    fn return_types_map_to_exit_codes() {
        assert_eq!(().exit_code(), 0);
        assert_eq!(3.exit_code(), 3);
        assert_eq!(Ok::<(), String>(()).exit_code(), 0);
        assert_eq!(Err::<(), _>("bad").exit_code(), 1);
    }
}
