//! `RawQueue`: a shoal `Queue` or `JoinableQueue` of raw byte messages.

use std::io::Write;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::os::fd::AsRawFd;

use shoal::channel::{GetError, PutError, QueueBuilder, ReadSlot, Readiness, Waitable};
use shoal::codec::Codec;
use shoal::process::{Named, NamedError};
use shoal::{JoinableQueue, Queue};

use crate::blocking::{create_failed, deadline, wait_for};
use crate::handoff::{rebuild, Exported};
use crate::pickle::{self, gather, Message, Received};

/// Messages up to this long are gathered on the stack and put in one piece.
const SMALL: usize = 1024;

/// Messages from this long on are copied without the GIL.
pub(crate) const LARGE: usize = 64 * 1024;

/// Ring bytes of a Python queue unless told otherwise: room for messages of up to half
/// of it in one piece (larger ones are streamed in parts). Memory is touched only as
/// messages pass.
pub(crate) const DEFAULT_CAPACITY: usize = 4 << 20;

enum Flavor {
    Plain(Queue<()>),
    Joinable(JoinableQueue<()>),
}

impl Flavor {
    fn queue(&self) -> &Queue<()> {
        match self {
            Flavor::Plain(q) => q,
            Flavor::Joinable(j) => j,
        }
    }
}

/// What keeps a queue served under a name (`create_named`) while the queue lives.
enum Served {
    Plain(Named<Queue<()>>),
    Joinable(Named<JoinableQueue<()>>),
}

/// A queue of byte strings in shared memory (the core of `shoal.Queue`,
/// `shoal.SimpleQueue` and `shoal.JoinableQueue`).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawQueue {
    flavor: Flavor,
    exported: Exported,
    /// Set for a queue this process serves by name: dropped (the name no longer
    /// served) with the queue.
    served: Option<Served>,
}

/// The codec of a Python codec name (`"pickle"`, `"msgpack"`, `"bytes"`).
fn codec_of(codec: &str) -> PyResult<Codec> {
    Ok(match codec {
        "pickle" => Codec::Pickle,
        "msgpack" => Codec::MessagePack,
        "bytes" => Codec::Raw,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown codec {other:?}: a queue carries \"pickle\" (the default), \"msgpack\" \
                 (None, bool, int, float, str, bytes, list, tuple and dict; what a Rust \
                 program's Codec::MessagePack reads) or \"bytes\" (raw bytes, Codec::Raw)"
            )))
        }
    })
}

/// The exception `multiprocessing` users catch for each failure of a named queue:
/// as `shared_memory.SharedMemory(name)` does for a missing or taken name.
pub(crate) fn named_failed(e: NamedError) -> PyErr {
    use pyo3::exceptions::{PyFileExistsError, PyFileNotFoundError, PyOSError, PyPermissionError};
    let msg = e.to_string();
    match e {
        NamedError::NotServed { .. } => PyFileNotFoundError::new_err((2, msg)),
        NamedError::Taken { .. } => PyFileExistsError::new_err((17, msg)),
        NamedError::Refused { .. } | NamedError::ForeignOwner { .. } => {
            PyPermissionError::new_err((1, msg))
        }
        NamedError::Io { .. } => PyOSError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

fn closed() -> PyErr {
    PyValueError::new_err("the queue is closed")
}

fn put_failed(e: PutError<()>) -> PyResult<bool> {
    match e {
        PutError::Full(()) | PutError::Timeout(()) => Ok(false),
        PutError::Closed(()) => Err(closed()),
        other => Err(PyValueError::new_err(format!(
            "could not put the message: {other}"
        ))),
    }
}

fn get_failed<T>(e: GetError) -> PyResult<Option<T>> {
    match e {
        GetError::Empty | GetError::Timeout => Ok(None),
        GetError::Closed => Err(closed()),
        other => Err(PyValueError::new_err(format!(
            "could not get a message: {other}"
        ))),
    }
}

/// A message as a new `bytes`, copied once from where it lies in the ring.
pub(crate) fn slot_to_bytes<'py>(
    py: Python<'py>,
    slot: ReadSlot<'_>,
) -> PyResult<Bound<'py, PyBytes>> {
    crate::pickle::slot_bytes(py, &slot, 0, slot.len())
}

impl RawQueue {
    pub(crate) fn waitable(&self) -> &(dyn Waitable + Sync) {
        match &self.flavor {
            Flavor::Plain(q) => q,
            Flavor::Joinable(j) => j,
        }
    }

    fn put_once(&self, data: &[u8], wait: Option<Duration>) -> Result<(), PutError<()>> {
        match (&self.flavor, wait) {
            (Flavor::Plain(q), None) => q.try_put_bytes(data),
            (Flavor::Plain(q), Some(t)) => q.put_bytes_timeout(data, t),
            (Flavor::Joinable(j), None) => j.try_put_bytes(data),
            (Flavor::Joinable(j), Some(t)) => j.put_bytes_timeout(data, t),
        }
    }

    /// Puts one message given in pieces (see [`Message::parts`]), without waiting
    /// (`wait` `None`) or waiting at most `wait`.
    fn put_parts(&self, parts: [&[u8]; 3], wait: Option<Duration>) -> Result<(), PutError<()>> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == parts[0].len() {
            return self.put_once(parts[0], wait);
        }
        if total <= SMALL {
            let mut buf = [0u8; SMALL];
            gather(&parts, &mut buf[..total]);
            return self.put_once(&buf[..total], wait);
        }
        match &self.flavor {
            // Written in place: no copy but the one into the ring. (A joinable queue
            // counts its tasks in its own puts.)
            Flavor::Plain(q) if total <= q.max_reserve() => {
                let mut slot = match wait {
                    None => q.try_reserve(total)?,
                    Some(t) => q.reserve_timeout(total, t)?,
                };
                for p in parts {
                    slot.write_all(p)
                        .expect("a slot holds what it was reserved for");
                }
                slot.commit();
                Ok(())
            }
            _ => {
                let mut buf = vec![0u8; total];
                gather(&parts, &mut buf);
                self.put_once(&buf, wait)
            }
        }
    }

    fn joinable(&self) -> PyResult<&JoinableQueue<()>> {
        match &self.flavor {
            Flavor::Joinable(j) => Ok(j),
            Flavor::Plain(_) => Err(PyValueError::new_err("not a joinable queue")),
        }
    }
}

#[pymethods]
impl RawQueue {
    /// A new queue: at most `maxsize` messages (0: no count limit) in a ring of
    /// `capacity` bytes; `joinable` counts unfinished tasks.
    ///
    /// `codec` marks what its messages are (`"pickle"`, `"msgpack"` or `"bytes"`), for
    /// a Rust program that attaches it; `name`, when given, serves the queue under
    /// that name on this machine (for `open_named` in any process of this user) while
    /// this object lives.
    #[new]
    #[pyo3(signature = (maxsize = 0, capacity = DEFAULT_CAPACITY, joinable = false, codec = "pickle", name = None))]
    fn new(
        maxsize: usize,
        capacity: usize,
        joinable: bool,
        codec: &str,
        name: Option<&str>,
    ) -> PyResult<RawQueue> {
        // Marked as pickles by default, so that a Rust program attaching the queue is
        // told to use raw bytes rather than fail to decode.
        let mut builder: QueueBuilder = Queue::<()>::builder()
            .capacity_bytes(capacity)
            .codec(codec_of(codec)?);
        if maxsize > 0 {
            builder = builder.maxsize(maxsize);
        }
        let err = |e: shoal::channel::CreateError| create_failed(&e);
        let flavor = if joinable {
            Flavor::Joinable(JoinableQueue::with_builder(&builder).map_err(err)?)
        } else {
            Flavor::Plain(builder.build().map_err(err)?)
        };
        let served = match (name, &flavor) {
            (None, _) => None,
            (Some(name), Flavor::Plain(q)) => Some(Served::Plain(
                Named::serve(name, q.clone()).map_err(named_failed)?,
            )),
            (Some(name), Flavor::Joinable(j)) => Some(Served::Joinable(
                Named::serve(name, j.clone()).map_err(named_failed)?,
            )),
        };
        Ok(RawQueue {
            flavor,
            exported: Exported::default(),
            served,
        })
    }

    /// The queue a process of this user serves under `name` (a joinable one when
    /// `joinable`), as `(queue, maxsize)`; `FileNotFoundError` when none is served,
    /// `ValueError` when it is of the other kind, `PermissionError` when another user
    /// holds the name.
    #[staticmethod]
    fn open_named(py: Python<'_>, name: &str, joinable: bool) -> PyResult<(RawQueue, usize)> {
        let opened = py.detach(|| {
            if joinable {
                shoal::process::open_named::<JoinableQueue<()>>(name).map(Flavor::Joinable)
            } else {
                shoal::process::open_named::<Queue<()>>(name).map(Flavor::Plain)
            }
        });
        let flavor = opened.map_err(named_failed)?;
        let maxsize = flavor.queue().maxsize();
        Ok((
            RawQueue {
                flavor,
                exported: Exported::default(),
                served: None,
            },
            maxsize,
        ))
    }

    /// The name this process serves the queue under (`None`: not served).
    #[getter]
    fn served_name(&self) -> Option<&str> {
        match &self.served {
            None => None,
            Some(Served::Plain(n)) => Some(n.name()),
            Some(Served::Joinable(n)) => Some(n.name()),
        }
    }

    /// Puts `data`; returns False when the queue stayed full (not blocking: at once;
    /// else after `timeout` seconds, `None` for no limit).
    #[pyo3(signature = (data, block = true, timeout = None))]
    fn put(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyBytes>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let bytes = data.as_bytes();
        match self.put_once(bytes, None) {
            Ok(()) => return Ok(true),
            Err(PutError::Full(())) if block => {}
            Err(e) => return put_failed(e),
        }
        let deadline = deadline(timeout)?;
        let done = wait_for(py, deadline, |slice| {
            match self.put_once(bytes, Some(slice)) {
                Ok(()) => Ok(Some(())),
                Err(PutError::Timeout(())) | Err(PutError::Full(())) => Ok(None),
                Err(e) => put_failed(e).map(|_| None),
            }
        })?;
        Ok(done.is_some())
    }

    /// Pickles `obj` and puts it; `None` once put, else (the queue stayed full: not
    /// blocking, at once; else after `timeout` seconds, `None` for no limit) the
    /// message as `bytes`, for the caller to keep or drop. A pickling error is raised
    /// here.
    #[pyo3(signature = (obj, block = true, timeout = None))]
    fn put_obj<'py>(
        &self,
        py: Python<'py>,
        obj: &Bound<'py, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let msg = Message::encode(obj)?;
        let parts = msg.parts();
        let first = if msg.len() >= LARGE {
            py.detach(|| self.put_parts(parts, None))
        } else {
            self.put_parts(parts, None)
        };
        match first {
            Ok(()) => return Ok(None),
            Err(PutError::Full(())) if block => {}
            Err(PutError::Full(())) => return msg.into_bytes(py).map(Some),
            Err(e) => return put_failed(e).map(|_| None),
        }
        let deadline = deadline(timeout)?;
        let done = wait_for(py, deadline, |slice| {
            match self.put_parts(parts, Some(slice)) {
                Ok(()) => Ok(Some(())),
                Err(PutError::Timeout(())) | Err(PutError::Full(())) => Ok(None),
                Err(e) => put_failed(e).map(|_| None),
            }
        })?;
        match done {
            Some(()) => Ok(None),
            None => msg.into_bytes(py).map(Some),
        }
    }

    /// The next object (unpickled); `queue.Empty` when the queue stayed empty (not
    /// blocking: at once; else after `timeout` seconds, `None` for no limit).
    #[pyo3(signature = (block = true, timeout = None))]
    fn get_obj<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = self.flavor.queue();
        let received = match q.get_in_place(Some(Duration::ZERO), |slot| Received::read(py, &slot))
        {
            Ok(r) => r?,
            Err(GetError::Empty) | Err(GetError::Timeout) if block => {
                let deadline = deadline(timeout)?;
                // The message is read where it lies, taking the GIL back for the copy
                // only once one is there.
                let got = wait_for(py, deadline, |slice| {
                    match q.get_in_place(Some(slice), |slot| {
                        Python::attach(|py| Received::read(py, &slot))
                    }) {
                        Ok(r) => r.map(Some),
                        Err(e) => get_failed(e),
                    }
                })?;
                got.ok_or_else(|| pickle::empty(py))?
            }
            Err(e) => {
                get_failed::<()>(e)?;
                return Err(pickle::empty(py));
            }
        };
        received.load(py)
    }

    /// The next message, or None when the queue stayed empty (not blocking: at once;
    /// else after `timeout` seconds, `None` for no limit).
    #[pyo3(signature = (block = true, timeout = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let q = self.flavor.queue();
        match q.get_in_place(Some(Duration::ZERO), |slot| slot_to_bytes(py, slot)) {
            Ok(b) => return b.map(Some),
            Err(GetError::Empty) | Err(GetError::Timeout) if block => {}
            Err(e) => return get_failed(e),
        }
        let deadline = deadline(timeout)?;
        let got = wait_for(py, deadline, |slice| match q.get_bytes_timeout(slice) {
            Ok(v) => Ok(Some(v)),
            Err(e) => get_failed(e),
        })?;
        Ok(got.map(|v| PyBytes::new(py, &v)))
    }

    /// Up to `max` messages already there (none waited for).
    fn get_many<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let mut out = Vec::new();
        let mut failed = None;
        let r = self
            .flavor
            .queue()
            .get_many_in_place(max, Some(Duration::ZERO), |slot| {
                match slot_to_bytes(py, slot) {
                    Ok(b) => out.push(b),
                    Err(e) => failed = Some(e),
                }
            });
        if let Some(e) = failed {
            return Err(e);
        }
        match r {
            Ok(_) => Ok(out),
            Err(e) => get_failed::<()>(e).map(|_| out),
        }
    }

    /// The codec of the queue's typed messages: `"pickle"` for queues made here,
    /// another name (`"bincode"`, `"MessagePack"`, `"JSON"`) for a Rust program's.
    #[getter]
    fn codec(&self) -> &'static str {
        self.flavor.queue().codec().name()
    }

    /// How many messages are in the queue (a snapshot).
    fn qsize(&self) -> usize {
        self.flavor.queue().len()
    }

    /// Whether the queue is empty (a snapshot).
    fn empty(&self) -> bool {
        self.flavor.queue().is_empty()
    }

    /// Whether the queue is full (a snapshot).
    fn full(&self) -> bool {
        self.flavor.queue().is_full()
    }

    /// The message bound given at creation (0: none).
    #[getter]
    fn maxsize(&self) -> usize {
        self.flavor.queue().maxsize()
    }

    /// The longest message the ring holds in one piece.
    #[getter]
    fn max_inline(&self) -> usize {
        self.flavor.queue().max_reserve()
    }

    /// Marks one task done (joinable queues).
    fn task_done(&self) -> PyResult<()> {
        self.joinable()?
            .task_done()
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Waits until every task is done; False after `timeout` seconds.
    #[pyo3(signature = (timeout = None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let j = self.joinable()?;
        let deadline = deadline(timeout)?;
        Ok(wait_for(py, deadline, |slice| {
            Ok(j.join_timeout(slice).then_some(()))
        })?
        .is_some())
    }

    /// Tasks put and not yet marked done (joinable queues).
    fn unfinished(&self) -> PyResult<u64> {
        Ok(self.joinable()?.unfinished())
    }

    /// Whether the queue counts tasks.
    #[getter]
    fn joinable_flag(&self) -> bool {
        matches!(self.flavor, Flavor::Joinable(_))
    }

    /// A readiness descriptor, readable after a put while the returned object lives.
    fn readiness(&self) -> RawReadiness {
        RawReadiness {
            inner: self.flavor.queue().readiness(),
        }
    }

    /// `(bytes, [fd, …])`: the queue as a picklable description and its descriptors.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        match &self.flavor {
            Flavor::Plain(q) => self.exported.parts(py, q),
            Flavor::Joinable(j) => self.exported.parts(py, j),
        }
    }

    /// The queue again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], fds: Vec<i32>, joinable: bool) -> PyResult<RawQueue> {
        let flavor = if joinable {
            Flavor::Joinable(rebuild(data, fds)?)
        } else {
            Flavor::Plain(rebuild(data, fds)?)
        };
        Ok(RawQueue {
            flavor,
            exported: Exported::default(),
            served: None,
        })
    }
}

/// A channel's readiness descriptor (an eventfd) for event loops: readable after a
/// message arrives while this object lives. Clear it, read until nothing is left, then
/// wait for readability again.
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawReadiness {
    pub(crate) inner: Readiness,
}

#[pymethods]
impl RawReadiness {
    fn fileno(&self) -> i32 {
        self.inner.as_raw_fd()
    }

    /// Resets the descriptor to not readable.
    fn clear(&self) {
        self.inner.clear();
    }
}
