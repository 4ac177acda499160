//! [`Process`]: a started child, its exit code, and signals.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::process::start::{forkserver, Exit, Launched, StartMethod};
use crate::process::{ProcessBuilder, ProcessError};
use crate::sys;

/// A child process started with [`Process::new`] … [`start`](ProcessBuilder::start)
/// (Python's `multiprocessing.Process`).
///
/// Clones are handles to the same child. Exit codes follow Python: 0 after a normal
/// return, the code an entry returned, `-N` after death by signal `N`. Dropping the last
/// handle does not stop the child; [`active_children`](crate::active_children) reaps
/// the ones that ended.
///
/// # Examples
/// ```
/// use shoal::{Process, SharedMemory};
///
/// fn double((shm, n): (SharedMemory, u8)) -> i32 {
///     shm.write(0, &[n * 2]).unwrap();
///     7
/// }
/// shoal::entry!(double);
///
/// let shm = SharedMemory::new(1)?;
/// let child = Process::new(double, (shm.clone(), 21)).name("doubler").start()?;
/// assert_eq!(child.join()?, 7);
/// let mut out = [0u8];
/// shm.read(0, &mut out)?;
/// assert_eq!(out[0], 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    pid: u32,
    daemon: bool,
    method: StartMethod,
    pidfd: OwnedFd,
    exit: Exit,
    code: Mutex<Option<i32>>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.inner.name)
            .field("pid", &self.inner.pid)
            .field("daemon", &self.inner.daemon)
            .field("start_method", &self.inner.method)
            .field("exitcode", &self.exitcode())
            .finish()
    }
}

impl Process {
    /// Prepares a child that will run `entry(args)`; nothing starts before
    /// [`ProcessBuilder::start`].
    ///
    /// `entry` must be a plain function registered with [`crate::entry!`]; `args`
    /// travels to the child through serde, and shoal objects inside it
    /// ([`SharedMemory`](crate::SharedMemory)…) travel as inherited descriptors.
    /// Problems (an unregistered entry, arguments that cannot be encoded) are reported
    /// by `start`.
    ///
    /// # Examples
    /// ```
    /// use shoal::Process;
    ///
    /// fn check_sum((xs, expected): (Vec<u32>, u32)) -> i32 {
    ///     if xs.iter().sum::<u32>() == expected { 0 } else { 1 }
    /// }
    /// shoal::entry!(check_sum);
    ///
    /// let child = Process::new(check_sum, (vec![1, 2, 3], 6)).start()?;
    /// assert_eq!(child.join()?, 0);
    /// # Ok::<(), shoal::process::ProcessError>(())
    /// ```
    #[allow(clippy::new_ret_no_self)] // Python's shape: Process(target, args).start()
    pub fn new<F, M>(entry: F, args: F::Args) -> ProcessBuilder
    where
        F: crate::process::EntryFn<M>,
    {
        ProcessBuilder::new(entry, args)
    }

    pub(crate) fn from_launched(
        name: String,
        daemon: bool,
        method: StartMethod,
        l: Launched,
    ) -> Process {
        Process {
            inner: Arc::new(Inner {
                name,
                pid: l.pid,
                daemon,
                method,
                pidfd: l.pidfd,
                exit: l.exit,
                code: Mutex::new(None),
            }),
        }
    }

    /// The process name.
    ///
    /// # Examples
    /// ```
    /// use shoal::Process;
    ///
    /// fn nothing(_: ()) {}
    /// shoal::entry!(nothing);
    ///
    /// let named = Process::new(nothing, ()).name("indexer").start()?;
    /// assert_eq!(named.name(), "indexer");
    /// let unnamed = Process::new(nothing, ()).start()?;
    /// assert!(unnamed.name().starts_with("Process-"));
    /// named.join()?;
    /// unnamed.join()?;
    /// # Ok::<(), shoal::process::ProcessError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The process id.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use shoal::{Process, SharedMemory};
    ///
    /// fn report_pid(shm: SharedMemory) {
    ///     shm.atomic_u32(0).unwrap().store(std::process::id(), Ordering::SeqCst);
    /// }
    /// shoal::entry!(report_pid);
    ///
    /// let shm = SharedMemory::new(4)?;
    /// let child = Process::new(report_pid, shm.clone()).start()?;
    /// child.join()?;
    /// assert_eq!(shm.atomic_u32(0)?.load(Ordering::SeqCst), child.pid());
    /// assert_ne!(child.pid(), std::process::id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Whether the child is daemonic (dies with this process).
    ///
    /// # Examples
    /// ```
    /// use shoal::Process;
    ///
    /// fn nothing(_: ()) {}
    /// shoal::entry!(nothing);
    ///
    /// let child = Process::new(nothing, ()).daemon(true).start()?;
    /// assert!(child.daemon());
    /// child.join()?;
    /// # Ok::<(), shoal::process::ProcessError>(())
    /// ```
    pub fn daemon(&self) -> bool {
        self.inner.daemon
    }

    /// How the child was started.
    ///
    /// # Examples
    /// ```
    /// use shoal::process::{Process, StartMethod};
    ///
    /// fn nothing(_: ()) {}
    /// shoal::entry!(nothing);
    ///
    /// let child = Process::new(nothing, ()).start_method(StartMethod::Spawn).start()?;
    /// assert_eq!(child.start_method(), StartMethod::Spawn);
    /// child.join()?;
    /// # Ok::<(), shoal::process::ProcessError>(())
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.inner.method
    }

    /// A descriptor that becomes readable when the child has ended and its exit code is
    /// known, for `poll`/`epoll` over several objects: the child's pidfd, or for a
    /// forkserver child the socket on which the forkserver relays its exit code (as
    /// Python's forkserver sentinel).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::channel::{wait, Waitable};
    /// use shoal::{Event, Process};
    ///
    /// fn wait_for(go: Event) {
    ///     go.wait();
    /// }
    /// shoal::entry!(wait_for);
    ///
    /// let go = Event::new()?;
    /// let child = Process::new(wait_for, go.clone()).daemon(true).start()?;
    /// // `wait` polls the sentinel, along with queues and connections.
    /// assert!(wait(&[&child as &dyn Waitable], Some(Duration::ZERO))?.is_empty());
    /// go.set();
    /// assert_eq!(wait(&[&child as &dyn Waitable], Some(Duration::from_secs(60)))?, [0]);
    /// // Once the sentinel is ready, the exit code is known.
    /// assert!(!child.is_alive());
    /// assert_eq!(child.exitcode(), Some(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        // A forkserver child's exit code comes over the status socket after the child
        // ended: readiness of that socket, not of the pidfd, is what makes `exitcode`
        // and `is_alive` agree with the sentinel.
        match &self.inner.exit {
            Exit::Reap => self.inner.pidfd.as_fd(),
            Exit::Relayed { status, .. } => status.as_fd(),
        }
    }

    fn supervise_err(&self, source: io::Error) -> ProcessError {
        ProcessError::Supervise {
            name: self.inner.name.clone(),
            pid: self.inner.pid,
            source,
        }
    }

    /// Waits up to `timeout` (`None`: forever) for the exit code.
    fn wait(&self, timeout: Option<Duration>) -> Result<Option<i32>, ProcessError> {
        if let Some(code) = *self.lock_code() {
            return Ok(Some(code));
        }
        // Wait without the lock, so that `is_alive` from another thread never blocks.
        let watched = match &self.inner.exit {
            Exit::Reap => self.inner.pidfd.as_fd(),
            Exit::Relayed { status, .. } => status.as_fd(),
        };
        let ready = sys::poll_readable(&[watched], timeout).map_err(|e| self.supervise_err(e))?;
        if !ready[0] {
            return Ok(None);
        }
        let mut code = self.lock_code();
        if code.is_none() {
            // Ready: the child has ended (or the forkserver wrote its code or died), so
            // the calls below return at once.
            *code = Some(match &self.inner.exit {
                Exit::Reap => sys::pidfd_wait(self.inner.pidfd.as_fd(), true)
                    .map_err(|e| self.supervise_err(e))?
                    .ok_or_else(|| self.supervise_err(io::ErrorKind::WouldBlock.into()))?,
                Exit::Relayed { status, server } => {
                    let mut status: &std::os::unix::net::UnixStream = status;
                    let mut buf = [0u8; 4];
                    match status.read_exact(&mut buf) {
                        Ok(()) => i32::from_le_bytes(buf),
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            drop(code);
                            forkserver::note_death(*server);
                            return Err(ProcessError::ForkServerDied);
                        }
                        Err(e) => return Err(self.supervise_err(e)),
                    }
                }
            });
        }
        Ok(*code)
    }

    fn lock_code(&self) -> std::sync::MutexGuard<'_, Option<i32>> {
        self.inner.code.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the child to end and returns its exit code.
    ///
    /// # Errors
    /// [`ProcessError::ForkServerDied`] when the forkserver that relays the exit code
    /// died first; [`ProcessError::Supervise`] when the system refuses the wait.
    ///
    /// # Examples
    /// ```
    /// use shoal::Process;
    ///
    /// fn fail(message: String) -> Result<(), String> {
    ///     Err(message)
    /// }
    /// shoal::entry!(fail);
    ///
    /// let child = Process::new(fail, "no input".to_owned()).start()?;
    /// assert_eq!(child.join()?, 1); // an entry's error exits with code 1
    /// assert_eq!(child.join()?, 1); // joining again gives the same code
    /// # Ok::<(), shoal::process::ProcessError>(())
    /// ```
    pub fn join(&self) -> Result<i32, ProcessError> {
        self.wait(None)
            .map(|c| c.expect("an unbounded wait returns a code"))
    }

    /// Waits up to `timeout` for the child to end: `Ok(None)` if it is still running.
    ///
    /// # Errors
    /// As [`join`](Process::join).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::{Event, Process};
    ///
    /// fn wait_for(go: Event) -> i32 {
    ///     go.wait();
    ///     5
    /// }
    /// shoal::entry!(wait_for);
    ///
    /// let go = Event::new()?;
    /// let child = Process::new(wait_for, go.clone()).daemon(true).start()?;
    /// assert_eq!(child.join_timeout(Duration::from_millis(10))?, None); // still waiting
    /// go.set();
    /// assert_eq!(child.join_timeout(Duration::from_secs(60))?, Some(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>, ProcessError> {
        self.wait(Some(timeout))
    }

    /// The exit code if the child has ended (reaping it), `None` while it runs.
    ///
    /// # Examples
    /// ```
    /// use shoal::{Event, Process};
    ///
    /// fn wait_for(go: Event) -> i32 {
    ///     go.wait();
    ///     3
    /// }
    /// shoal::entry!(wait_for);
    ///
    /// let go = Event::new()?;
    /// let child = Process::new(wait_for, go.clone()).daemon(true).start()?;
    /// assert_eq!(child.exitcode(), None); // running
    /// go.set();
    /// child.join()?;
    /// assert_eq!(child.exitcode(), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        self.wait(Some(Duration::ZERO)).ok().flatten()
    }

    /// Whether the child is still running.
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
    /// let child = Process::new(wait_for, go.clone()).daemon(true).start()?;
    /// assert!(child.is_alive());
    /// go.set();
    /// child.join()?;
    /// assert!(!child.is_alive());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        match self.wait(Some(Duration::ZERO)) {
            Ok(code) => code.is_none(),
            Err(_) => !matches!(
                sys::poll_readable(&[self.inner.pidfd.as_fd()], Some(Duration::ZERO)).as_deref(),
                Ok([true])
            ),
        }
    }

    fn signal(&self, signal: i32) -> Result<(), ProcessError> {
        // Already ended (`Ok(false)`): nothing to do, as in Python.
        sys::pidfd_signal(self.inner.pidfd.as_fd(), signal)
            .map(drop)
            .map_err(|e| self.supervise_err(e))
    }

    /// Asks the child to stop (`SIGTERM`); its exit code becomes -15 unless it handles
    /// the signal. The signal goes through the pidfd, so it can never reach another
    /// process that reused the pid.
    ///
    /// # Errors
    /// [`ProcessError::Supervise`] when the system refuses the signal.
    ///
    /// # Examples
    /// ```
    /// use shoal::{Event, Process};
    ///
    /// fn wait_forever(never: Event) {
    ///     never.wait();
    /// }
    /// shoal::entry!(wait_forever);
    ///
    /// let never = Event::new()?;
    /// let child = Process::new(wait_forever, never.clone()).daemon(true).start()?;
    /// child.terminate()?;
    /// assert_eq!(child.join()?, -15); // died from SIGTERM
    /// child.terminate()?; // an ended child: nothing to do
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.signal(sys::SIGTERM)
    }

    /// Kills the child (`SIGKILL`); its exit code becomes -9.
    ///
    /// # Errors
    /// [`ProcessError::Supervise`] when the system refuses the signal.
    ///
    /// # Examples
    /// ```
    /// use shoal::{Event, Process};
    ///
    /// fn wait_forever(never: Event) {
    ///     never.wait();
    /// }
    /// shoal::entry!(wait_forever);
    ///
    /// let never = Event::new()?;
    /// let child = Process::new(wait_forever, never.clone()).daemon(true).start()?;
    /// child.kill()?;
    /// assert_eq!(child.join()?, -9); // died from SIGKILL
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.signal(sys::SIGKILL)
    }
}
