//! [`ProcessBuilder`]: name, daemon flag and start method of a child about to start.

use std::any::type_name;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::handoff::{self, Encoded};
use crate::process::bootstrap::{Bootstrap, Task};
use crate::process::start::{fork, forkserver, spawn, StartMethod};
use crate::process::{children, current_process, entry, Process, ProcessError};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A child about to start, made by [`Process::new`].
///
/// # Examples
/// ```
/// use shoal::process::{Process, StartMethod};
///
/// fn exit_with(code: i32) -> i32 {
///     code
/// }
/// shoal::entry!(exit_with);
///
/// let child = Process::new(exit_with, 3)
///     .name("worker-1")
///     .start_method(StartMethod::Spawn)
///     .start()?;
/// assert_eq!(child.name(), "worker-1");
/// assert_eq!(child.join()?, 3);
/// # Ok::<(), shoal::process::ProcessError>(())
/// ```
#[derive(Debug)]
#[must_use = "nothing starts before `start` is called"]
pub struct ProcessBuilder {
    entry: Result<String, ProcessError>,
    args: Result<Encoded, crate::codec::CodecError>,
    name: Option<String>,
    daemon: bool,
    method: StartMethod,
}

impl ProcessBuilder {
    pub(crate) fn new<F, M>(_entry: F, args: F::Args) -> ProcessBuilder
    where
        F: entry::EntryFn<M>,
    {
        let name = type_name::<F>();
        let entry = if std::mem::size_of::<F>() != 0 {
            Err(ProcessError::NotAFunction {
                entry: name.to_owned(),
            })
        } else if entry::find(name).is_none() {
            Err(ProcessError::NotRegistered {
                entry: name.to_owned(),
            })
        } else {
            Ok(name.to_owned())
        };
        ProcessBuilder {
            entry,
            args: handoff::encode(&args),
            name: None,
            daemon: false,
            method: StartMethod::default(),
        }
    }

    /// Names the child (default `"Process-N"`); the child sees it as
    /// [`current_process().name()`](crate::current_process).
    ///
    /// # Examples
    /// ```
    /// use shoal::{Process, SharedMemory};
    ///
    /// fn say_my_name(shm: SharedMemory) {
    ///     shm.write(0, shoal::current_process().name().as_bytes()).unwrap();
    /// }
    /// shoal::entry!(say_my_name);
    ///
    /// let shm = SharedMemory::new(16)?;
    /// Process::new(say_my_name, shm.clone()).name("alice").start()?.join()?;
    /// let mut seen = [0u8; 5];
    /// shm.read(0, &mut seen)?;
    /// assert_eq!(&seen, b"alice");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> ProcessBuilder {
        self.name = Some(name.into());
        self
    }

    /// Makes the child daemonic: it is killed when this process dies (even by
    /// `SIGKILL`), and terminated when this process exits normally.
    ///
    /// # Platform notes
    /// The kernel's parent-death signal follows the *thread* that created the child: a
    /// daemon started with [`StartMethod::Spawn`] or [`StartMethod::Fork`] from a thread
    /// that then ends is killed at that moment. Start daemons from a thread that lives
    /// as long as they should (with [`StartMethod::ForkServer`] the forkserver is their
    /// parent, which lives as long as this process).
    ///
    /// # Examples
    /// ```
    /// use shoal::{Event, Process};
    ///
    /// fn wait_for(go: Event) {
    ///     go.wait();
    /// }
    /// shoal::entry!(wait_for);
    ///
    /// let go = Event::new()?;
    /// // Should this process die before setting `go`, the child dies with it.
    /// let child = Process::new(wait_for, go.clone()).daemon(true).start()?;
    /// assert!(child.daemon());
    /// go.set();
    /// assert_eq!(child.join()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn daemon(mut self, daemon: bool) -> ProcessBuilder {
        self.daemon = daemon;
        self
    }

    /// Chooses how the child starts (default [`StartMethod::ForkServer`]).
    ///
    /// # Examples
    /// ```
    /// use shoal::process::{Process, StartMethod};
    ///
    /// fn exit_with(code: i32) -> i32 {
    ///     code
    /// }
    /// shoal::entry!(exit_with);
    ///
    /// for (method, code) in [(StartMethod::Spawn, 1), (StartMethod::Fork, 2), (StartMethod::ForkServer, 3)] {
    ///     let child = Process::new(exit_with, code).start_method(method).start()?;
    ///     assert_eq!(child.join()?, code);
    /// }
    /// # Ok::<(), shoal::process::ProcessError>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> ProcessBuilder {
        self.method = method;
        self
    }

    /// Starts the child.
    ///
    /// # Errors
    /// [`ProcessError::NotRegistered`] / [`ProcessError::NotAFunction`] for an entry
    /// that cannot run in a child, [`ProcessError::Arguments`] for arguments that cannot
    /// be encoded, [`ProcessError::Start`] when the system refuses the process,
    /// [`ProcessError::ForkServerDied`] when the forkserver died during the request.
    ///
    /// # Examples
    /// ```
    /// use shoal::process::{Process, ProcessError};
    ///
    /// fn registered(x: i32) -> i32 {
    ///     x
    /// }
    /// shoal::entry!(registered);
    /// fn forgotten(x: i32) -> i32 {
    ///     x
    /// }
    ///
    /// assert_eq!(Process::new(registered, 4).start()?.join()?, 4);
    /// let err = Process::new(forgotten, 4).start().unwrap_err();
    /// assert!(matches!(err, ProcessError::NotRegistered { .. }));
    /// # Ok::<(), ProcessError>(())
    /// ```
    pub fn start(self) -> Result<Process, ProcessError> {
        let entry = self.entry?;
        let name = self
            .name
            .unwrap_or_else(|| format!("Process-{}", COUNTER.fetch_add(1, Ordering::Relaxed) + 1));
        let args = self.args.map_err(|source| ProcessError::Arguments {
            name: name.clone(),
            source,
        })?;
        let me = current_process();
        let boot = Bootstrap {
            task: Task::Entry {
                entry,
                args: args.bytes,
            },
            name: name.clone(),
            parent_pid: me.pid(),
            parent_name: me.name().to_owned(),
            daemon: self.daemon,
            fds: Vec::new(),
        };
        let start_err = |source| ProcessError::Start {
            name: name.clone(),
            source,
        };
        let launched = match self.method {
            StartMethod::Spawn => spawn::start(boot, args.fds).map_err(start_err)?,
            StartMethod::Fork => fork::start(boot, args.fds).map_err(start_err)?,
            StartMethod::ForkServer => forkserver::start(boot, args.fds)?,
        };
        let p = Process::from_launched(name, self.daemon, self.method, launched);
        children::register(&p);
        Ok(p)
    }
}
