//! Starting any program with shoal objects: [`Command`] and [`inherited`].
//!
//! A [`Command`] is `std::process::Command` (it dereferences to one, so `arg`, `env`,
//! `current_dir`, `stdout`… are there) plus [`pass`](Command::pass): each passed
//! object's descriptors are inherited by the new program under their own numbers, and
//! one environment variable, [`INHERITED_ENV`], describes them all by name (JSON: the
//! object's kind, its handoff bytes and its descriptor numbers). The program attaches
//! an object with [`inherited`] in Rust, or `shoal.inherited(name)` in Python, whatever
//! started it.
//!
//! ```
//! use shoal::process::Command;
//! use shoal::Queue;
//!
//! let q: Queue<String> = Queue::new()?;
//! let mut cmd = Command::new("/bin/sh");
//! cmd.args(["-c", "test -n \"$SHOAL_INHERITED\""]);
//! cmd.pass("jobs", &q)?;
//! assert!(cmd.status()?.success());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, ExitStatus, Output};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::channel::{Connection, JoinableQueue, Queue, SimpleQueue};
use crate::codec::CodecError;
use crate::handoff;
use crate::shared::{Array, Value};
use crate::shm::SharedMemory;
use crate::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use crate::sys;

/// The environment variable that describes the objects a program inherited.
pub const INHERITED_ENV: &str = "SHOAL_INHERITED";

/// The version of [`INHERITED_ENV`]'s layout.
const LAYOUT: u32 = 1;

/// A shoal object that [`Command::pass`] can hand to another program, and what it is
/// called there: the program attaching it (a Rust one with [`inherited`], a Python one
/// with `shoal.inherited`) checks the kind before it rebuilds the object.
pub trait Inheritable: Serialize {
    /// The kind's name in [`INHERITED_ENV`] (`"queue"`, `"pipe"`, `"lock"`…).
    const KIND: &'static str;

    /// The queue's bound, for kinds that have one (0: none).
    fn maxsize(&self) -> usize {
        0
    }

    /// The codec of the object's typed messages, for channels (`None` otherwise).
    fn codec_name(&self) -> Option<&'static str> {
        None
    }
}

impl<T> Inheritable for Queue<T> {
    const KIND: &'static str = "queue";
    fn maxsize(&self) -> usize {
        Queue::maxsize(self)
    }
    fn codec_name(&self) -> Option<&'static str> {
        Some(self.codec().name())
    }
}

impl<T> Inheritable for JoinableQueue<T> {
    const KIND: &'static str = "joinable-queue";
    fn maxsize(&self) -> usize {
        Queue::maxsize(self)
    }
    fn codec_name(&self) -> Option<&'static str> {
        Some(self.codec().name())
    }
}

impl<T> Inheritable for SimpleQueue<T> {
    const KIND: &'static str = "simple-queue";
}

impl Inheritable for Connection {
    const KIND: &'static str = "pipe";
}

macro_rules! inheritable {
    ($($ty:ty => $kind:literal),* $(,)?) => {
        $(impl Inheritable for $ty {
            const KIND: &'static str = $kind;
        })*
    };
}

inheritable! {
    Lock => "lock",
    RLock => "rlock",
    Semaphore => "semaphore",
    BoundedSemaphore => "bounded-semaphore",
    Event => "event",
    Condition => "condition",
    Barrier => "barrier",
    SharedMemory => "shared-memory",
}

impl<T: bytemuck::Pod> Inheritable for Value<T> {
    const KIND: &'static str = "value";
}

impl<T: bytemuck::Pod> Inheritable for Array<T> {
    const KIND: &'static str = "array";
}

/// One object in [`INHERITED_ENV`].
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    kind: String,
    /// The handoff bytes ([`handoff::encode`]).
    data: Vec<u8>,
    /// The descriptors the bytes refer to, by index; inherited under these numbers.
    fds: Vec<RawFd>,
    #[serde(default)]
    maxsize: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    codec: Option<String>,
    /// Descriptors that must stay open in the program beside the object's own (the
    /// Python package's pipe ends carry a liveness socket).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    keep: Vec<RawFd>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    version: u32,
    objects: BTreeMap<String, Entry>,
}

/// `std::process::Command` that can also pass shoal objects to the program it starts.
///
/// Everything of `std::process::Command` is reached through `Deref`; [`pass`] adds an
/// object, and [`spawn`](Command::spawn), [`status`](Command::status) and
/// [`output`](Command::output) start the program with the passed objects' descriptors
/// inherited (and no other descriptor of this process).
///
/// [`pass`]: Command::pass
pub struct Command {
    cmd: std::process::Command,
    table: Table,
    fds: Vec<OwnedFd>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("cmd", &self.cmd)
            .field("passed", &self.table.objects.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Deref for Command {
    type Target = std::process::Command;
    fn deref(&self) -> &std::process::Command {
        &self.cmd
    }
}

impl DerefMut for Command {
    fn deref_mut(&mut self) -> &mut std::process::Command {
        &mut self.cmd
    }
}

impl From<std::process::Command> for Command {
    fn from(cmd: std::process::Command) -> Command {
        Command {
            cmd,
            table: Table {
                version: LAYOUT,
                objects: BTreeMap::new(),
            },
            fds: Vec::new(),
        }
    }
}

impl Command {
    /// A command for `program`, as `std::process::Command::new`; the builder methods
    /// of `std::process::Command` (`arg`, `env`, `current_dir`…) are reached through
    /// `Deref`.
    ///
    /// # Examples
    /// ```
    /// let mut cmd = shoal::process::Command::new("/bin/echo");
    /// cmd.arg("hello");
    /// let out = cmd.output()?;
    /// assert_eq!(out.stdout, b"hello\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(program: impl AsRef<std::ffi::OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Passes `object` to the program under `name`: its descriptors are inherited and
    /// [`INHERITED_ENV`] describes it. Passing another object under the same name
    /// replaces it.
    ///
    /// # Errors
    /// When the object cannot be encoded or its descriptors cannot be duplicated.
    ///
    /// # Examples
    /// ```
    /// use shoal::process::Command;
    ///
    /// let (ours, theirs) = shoal::Pipe::duplex()?;
    /// let mut cmd = Command::new("/bin/true");
    /// cmd.pass("control", &theirs)?.pass("done", &shoal::Event::new()?)?;
    /// assert!(cmd.status()?.success());
    /// # drop(ours);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pass<T: Inheritable>(
        &mut self,
        name: &str,
        object: &T,
    ) -> Result<&mut Command, CodecError> {
        let parts = handoff::encode(object)?;
        let entry = Entry {
            kind: T::KIND.to_owned(),
            data: parts.bytes,
            fds: parts.fds.iter().map(AsRawFd::as_raw_fd).collect(),
            maxsize: object.maxsize(),
            codec: object.codec_name().map(str::to_owned),
            keep: Vec::new(),
        };
        self.fds.extend(parts.fds);
        self.table.objects.insert(name.to_owned(), entry);
        Ok(self)
    }

    /// Starts the program, as `std::process::Command::spawn`, with the passed
    /// objects' descriptors inherited.
    ///
    /// # Errors
    /// As `std::process::Command::spawn`.
    ///
    /// # Examples
    /// ```
    /// use shoal::process::Command;
    ///
    /// let q: shoal::Queue<u32> = shoal::Queue::new()?;
    /// let mut child = Command::new("/bin/true").pass("jobs", &q)?.spawn()?;
    /// assert!(child.wait()?.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.prepare()?;
        let keep = self.fds.iter().map(AsRawFd::as_raw_fd).collect();
        sys::spawn_command_keeping(&mut self.cmd, keep)
    }

    /// Starts the program and waits for it, as `std::process::Command::status`.
    ///
    /// # Errors
    /// As `std::process::Command::status`.
    ///
    /// # Examples
    /// ```
    /// let status = shoal::process::Command::new("/bin/false").status()?;
    /// assert_eq!(status.code(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }

    /// Starts the program and collects its output, as
    /// `std::process::Command::output`: stdout and stderr are piped (replacing any
    /// `stdout`/`stderr` set before).
    ///
    /// # Errors
    /// As `std::process::Command::output`.
    ///
    /// # Examples
    /// ```
    /// let mut cmd = shoal::process::Command::new("/bin/sh");
    /// cmd.args(["-c", "echo out; echo err >&2"]);
    /// let out = cmd.output()?;
    /// assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn output(&mut self) -> io::Result<Output> {
        self.cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        self.spawn()?.wait_with_output()
    }

    fn prepare(&mut self) -> io::Result<()> {
        if self.table.objects.is_empty() {
            self.cmd.env_remove(INHERITED_ENV);
            return Ok(());
        }
        let json = serde_json::to_string(&self.table).map_err(io::Error::other)?;
        self.cmd.env(INHERITED_ENV, json);
        Ok(())
    }
}

/// Why [`inherited`] could not attach an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InheritError {
    /// This process inherited no object of that name (or none at all).
    Missing(String),
    /// The object is of another kind than the one asked for.
    Kind {
        /// The name it was passed under.
        name: String,
        /// The kind asked for.
        wanted: &'static str,
        /// The kind it is.
        found: String,
    },
    /// The object was attached already: its descriptors belong to that handle.
    Taken(String),
    /// [`INHERITED_ENV`] or the object's bytes are not what shoal writes.
    Invalid(String),
}

impl fmt::Display for InheritError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InheritError::Missing(name) => write!(
                f,
                "this process inherited no shoal object named {name:?} (the program that \
                 started it passes objects with shoal::process::Command::pass or \
                 shoal.subprocess.Popen(pass_objects=...))"
            ),
            InheritError::Kind {
                name,
                wanted,
                found,
            } => write!(
                f,
                "the inherited object {name:?} is a {found}, not a {wanted}"
            ),
            InheritError::Taken(name) => write!(
                f,
                "the inherited object {name:?} was attached already in this process; \
                 clone that handle instead"
            ),
            InheritError::Invalid(why) => write!(f, "invalid {INHERITED_ENV}: {why}"),
        }
    }
}

impl std::error::Error for InheritError {}

/// What this process inherited, read from the environment once; entries leave the
/// table as they are attached.
static TABLE: Mutex<Option<Result<Table, String>>> = Mutex::new(None);

/// Attaches the object the program that started this one passed under `name`.
///
/// Each object can be attached once (its inherited descriptors then belong to the
/// handle returned); clone the handle for more.
///
/// # Errors
/// [`InheritError`]: no such object, another kind, attached already, or a table shoal
/// did not write.
///
/// # Examples
/// ```
/// let err = shoal::process::inherited::<shoal::Queue<u32>>("nothing-here").unwrap_err();
/// assert!(err.to_string().contains("no shoal object named \"nothing-here\""));
/// ```
pub fn inherited<T: Inheritable + DeserializeOwned>(name: &str) -> Result<T, InheritError> {
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let table = table.get_or_insert_with(read_table);
    let table = table
        .as_mut()
        .map_err(|e| InheritError::Invalid(e.clone()))?;
    let entry = match table.objects.get(name) {
        Some(e) if e.kind == T::KIND => table.objects.remove(name).expect("present"),
        Some(e) if e.kind == TAKEN => return Err(InheritError::Taken(name.to_owned())),
        Some(e) => {
            return Err(InheritError::Kind {
                name: name.to_owned(),
                wanted: T::KIND,
                found: e.kind.clone(),
            })
        }
        None => return Err(InheritError::Missing(name.to_owned())),
    };
    table.objects.insert(
        name.to_owned(),
        Entry {
            kind: TAKEN.to_owned(),
            data: Vec::new(),
            fds: Vec::new(),
            maxsize: 0,
            codec: None,
            keep: Vec::new(),
        },
    );
    let fds = entry
        .fds
        .iter()
        .map(|&fd| sys::take_inherited_fd(fd))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| InheritError::Invalid(format!("a descriptor of {name:?} is not open: {e}")))?;
    handoff::decode(&entry.data, fds)
        .map_err(|e| InheritError::Invalid(format!("{name:?} could not be rebuilt: {e}")))
}

/// The kind recorded for an entry once attached.
const TAKEN: &str = "\0taken";

fn read_table() -> Result<Table, String> {
    let Some(value) = std::env::var_os(INHERITED_ENV) else {
        return Ok(Table::default());
    };
    let text = value
        .into_string()
        .map_err(|_| "the variable is not UTF-8".to_owned())?;
    let table: Table = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if table.version != LAYOUT {
        return Err(format!(
            "layout version {} (this shoal reads version {LAYOUT})",
            table.version
        ));
    }
    Ok(table)
}
