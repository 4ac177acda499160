//! Who this process is: [`current_process`] and [`parent_process`].

use std::sync::RwLock;

/// The name and pid of a process, as seen from inside it.
///
/// # Examples
/// ```
/// use shoal::{Process, SharedMemory};
///
/// fn who_am_i(shm: SharedMemory) {
///     let me = shoal::current_process();
///     shm.write(0, me.name().as_bytes()).unwrap();
/// }
/// shoal::entry!(who_am_i);
///
/// let shm = SharedMemory::new(16)?;
/// Process::new(who_am_i, shm.clone()).name("bob").start()?.join()?;
/// let mut name = [0u8; 3];
/// shm.read(0, &mut name)?;
/// assert_eq!(&name, b"bob");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    name: String,
    pid: u32,
}

impl ProcessInfo {
    /// The process name: `"MainProcess"` in a process shoal did not start, otherwise
    /// the name given to [`ProcessBuilder::name`](crate::process::ProcessBuilder::name)
    /// (or the default `"Process-N"`).
    ///
    /// # Examples
    /// ```
    /// // In a process shoal did not start:
    /// assert_eq!(shoal::current_process().name(), "MainProcess");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::current_process().pid(), std::process::id());
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

struct Identity {
    name: String,
    parent: ProcessInfo,
}

/// Set once in a child, before its entry runs (or re-set in a forked child).
static IDENTITY: RwLock<Option<Identity>> = RwLock::new(None);

/// Records that this process is the child `name` of `parent`.
pub(crate) fn set(name: String, parent: ProcessInfo) {
    let mut id = IDENTITY.write().unwrap_or_else(|e| e.into_inner());
    *id = Some(Identity { name, parent });
}

/// The identity of a parent, for the bootstrap of a child.
pub(crate) fn info(name: String, pid: u32) -> ProcessInfo {
    ProcessInfo { name, pid }
}

/// This process: its name and pid (Python's `multiprocessing.current_process()`).
///
/// # Examples
/// ```
/// let me = shoal::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
/// ```
pub fn current_process() -> ProcessInfo {
    let id = IDENTITY.read().unwrap_or_else(|e| e.into_inner());
    ProcessInfo {
        name: id
            .as_ref()
            .map_or_else(|| "MainProcess".to_owned(), |i| i.name.clone()),
        pid: std::process::id(),
    }
}

/// The process that started this one, `None` in a process shoal did not start (Python's
/// `multiprocessing.parent_process()`).
///
/// # Examples
/// ```
/// assert!(shoal::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ProcessInfo> {
    let id = IDENTITY.read().unwrap_or_else(|e| e.into_inner());
    id.as_ref().map(|i| i.parent.clone())
}
