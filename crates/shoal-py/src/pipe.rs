//! `PipeEnd`: one end of a shoal `Pipe`, with Python's end-of-stream rule.
//!
//! A shoal `Connection` closed with `close()` closes the pipe for every process; a
//! Python `Connection` closes only its own handle, and the peer sees end of stream once
//! *every* copy of this end (in every process) is closed or gone. Each end therefore
//! carries one socket of a `socketpair`, inherited and passed with the end like a
//! descriptor of Python's own pipes: when the kernel has closed every copy of one
//! socket, the other becomes readable with end of file, which is the peer's end of
//! stream (or broken pipe for its sends) — process deaths included. The core's own
//! rule (the stream ends once every process that sent on it died) is turned off: a
//! Python program often keeps the sending end in a parent that never sends while
//! children that did send come and go.
//!
//! Looking at that socket is a system call, which would cost more than the rest of a
//! small send: a send looks when a handle of this process was closed since its last
//! look, when the ring is full, and otherwise at most once a millisecond. A send to a
//! peer closed in another process may therefore succeed (the message is dropped, as
//! one written to an OS pipe just before its reader closed) for up to a millisecond
//! before `BrokenPipeError`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyBrokenPipeError, PyEOFError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shoal::channel::{wait_with_fds, GetError, PutError, ReadSlot, Waitable};
use shoal::{Connection, Pipe};

use crate::blocking::{create_failed, deadline, wait_for};
use crate::handoff::{rebuild, Exported};
use crate::pickle::{Message, Received};
use crate::queue::{slot_to_bytes, DEFAULT_CAPACITY, LARGE};

/// How long a send may go without looking whether the peer is gone.
const LOOK_EVERY: Duration = Duration::from_millis(1);

/// How long a receive that found nothing waits on the ring before it first looks
/// whether the peer is gone (a system call): about the longest spin of the ring's
/// wait, which an answer that comes within microseconds meets.
const SOON: Duration = Duration::from_micros(50);

/// How long a blocked receive then waits on the ring alone before it also watches the
/// liveness socket (each watch is a few system calls; a busy sender answers sooner).
const RING_WAIT: Duration = Duration::from_millis(2);

/// Handles closed in this process so far: a send looks at the peer after any close.
static CLOSES: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds since the first use (a clock that fits an atomic word).
fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) struct Inner {
    pub(crate) conn: Connection,
    /// This end's half of the liveness socketpair.
    pub(crate) token: UnixStream,
    exported: Exported,
    /// When a send last found the peer there ([`now_ns`]; 0: never).
    looked_ns: AtomicU64,
    /// [`CLOSES`] at that look.
    looked_closes: AtomicU64,
}

impl Inner {
    /// Whether every copy of the peer's end is closed (its socket reached end of file).
    fn peer_gone(&self) -> bool {
        peer_gone(self.token.as_fd())
    }

    /// [`peer_gone`](Inner::peer_gone) for a send that found room: looked up only when
    /// a handle of this process was closed since the last look, or a millisecond
    /// passed.
    fn peer_gone_lately(&self) -> bool {
        let closes = CLOSES.load(Ordering::Relaxed);
        let now = now_ns();
        let last = self.looked_ns.load(Ordering::Relaxed);
        if last != 0
            && closes == self.looked_closes.load(Ordering::Relaxed)
            && now.saturating_sub(last) < LOOK_EVERY.as_nanos() as u64
        {
            return false;
        }
        if self.peer_gone() {
            return true;
        }
        self.looked_closes.store(closes, Ordering::Relaxed);
        self.looked_ns.store(now.max(1), Ordering::Relaxed);
        false
    }

    /// Sends one message given in pieces: in one piece when it is, else gathered.
    fn send_parts(&self, parts: [&[u8]; 3], wait: Option<Duration>) -> Result<(), PutError<()>> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == parts[0].len() {
            return self.send_once(parts[0], wait);
        }
        if total <= 1024 {
            let mut buf = [0u8; 1024];
            crate::pickle::gather(&parts, &mut buf[..total]);
            return self.send_once(&buf[..total], wait);
        }
        let mut buf = vec![0u8; total];
        crate::pickle::gather(&parts, &mut buf);
        self.send_once(&buf, wait)
    }

    fn send_once(&self, data: &[u8], wait: Option<Duration>) -> Result<(), PutError<()>> {
        match wait {
            None => self.conn.try_send_bytes(data),
            Some(t) => self.conn.send_bytes_timeout(data, t),
        }
    }
}

fn broken_pipe() -> PyErr {
    PyBrokenPipeError::new_err("the other end of the pipe is closed")
}

/// Sends `parts` on `inner`: at once when the ring has room (without the GIL for a
/// large message), else waiting without the GIL in slices, as long as the peer lives.
fn send(py: Python<'_>, inner: &Inner, parts: [&[u8]; 3]) -> PyResult<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if inner.peer_gone_lately() {
        return Err(broken_pipe());
    }
    let first = if total >= LARGE {
        py.detach(|| inner.send_parts(parts, None))
    } else {
        inner.send_parts(parts, None)
    };
    match first {
        Ok(()) => return Ok(()),
        Err(PutError::Full(())) => {}
        Err(e) => return Err(send_failed(e)),
    }
    let done = wait_for(py, None, |slice| {
        if inner.peer_gone() {
            return Err(broken_pipe());
        }
        match inner.send_parts(parts, Some(slice)) {
            Ok(()) => Ok(Some(())),
            Err(PutError::Timeout(())) | Err(PutError::Full(())) => Ok(None),
            Err(e) => Err(send_failed(e)),
        }
    })?;
    done.ok_or_else(broken_pipe)
}

fn send_failed(e: PutError<()>) -> PyErr {
    match e {
        PutError::Closed(()) => broken_pipe(),
        e => PyOSError::new_err(format!("could not send: {e}")),
    }
}

/// Receives one message as `read` makes it: what is there now, else waits (without
/// the GIL, taking it back only to read the message where it lies) up to `timeout`
/// seconds (`None`: no limit); `Ok(None)` after the timeout; `EOFError` at end of
/// stream.
pub(crate) fn receive<T: Send>(
    py: Python<'_>,
    inner: &Inner,
    timeout: Option<f64>,
    read: impl Fn(Python<'_>, ReadSlot<'_>) -> PyResult<T> + Sync,
) -> PyResult<Option<T>> {
    let now = |py: Python<'_>| match inner
        .conn
        .recv_in_place_timeout(Duration::ZERO, |slot| read(py, slot))
    {
        Ok(v) => v.map(Some),
        Err(GetError::Timeout) | Err(GetError::Empty) => Ok(None),
        Err(GetError::Closed) => Err(PyEOFError::new_err("")),
        Err(e) => Err(PyOSError::new_err(format!("could not receive: {e}"))),
    };
    if let Some(v) = now(py)? {
        return Ok(Some(v));
    }
    let deadline = deadline(timeout)?;
    // On the ring alone first: the answer of a busy peer comes within microseconds,
    // before it is worth a system call to look at the liveness socket.
    let on_ring = |py: Python<'_>, wait: Duration| {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(wait),
            None => wait,
        };
        py.detach(|| {
            match inner
                .conn
                .recv_in_place_timeout(wait, |slot| Python::attach(|py| read(py, slot)))
            {
                Ok(v) => v.map(Some),
                Err(GetError::Timeout) | Err(GetError::Empty) => Ok(None),
                Err(GetError::Closed) => Err(PyEOFError::new_err("")),
                Err(e) => Err(PyOSError::new_err(format!("could not receive: {e}"))),
            }
        })
    };
    if let Some(v) = on_ring(py, SOON)? {
        return Ok(Some(v));
    }
    if inner.peer_gone() {
        // Sent before the peer closed: still delivered.
        return now(py)?.map(Some).ok_or_else(|| PyEOFError::new_err(""));
    }
    // Then longer: a sender busy for a while sends soon enough.
    if let Some(v) = on_ring(py, RING_WAIT)? {
        return Ok(Some(v));
    }
    loop {
        if let Some(v) = now(py)? {
            return Ok(Some(v));
        }
        if inner.peer_gone() {
            return now(py)?.map(Some).ok_or_else(|| PyEOFError::new_err(""));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        let woke = wait_for(py, deadline, |slice| {
            wait_ready(inner, slice)
                .map(|r| r.then_some(()))
                .map_err(|e| PyOSError::new_err(e.to_string()))
        })?;
        if woke.is_none() {
            return Ok(None);
        }
    }
}

/// Whether the peer's half of a liveness socketpair is closed everywhere: a peek that
/// does not wait finds end of file. (Nothing is ever written on these sockets.)
pub(crate) fn peer_gone(fd: BorrowedFd<'_>) -> bool {
    let mut byte = 0u8;
    // SAFETY: `fd` is an open socket for the duration of the call, and `byte` is one
    // writable byte.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
}

/// One end of a pipe (the core of `shoal.connection.Connection` for pipes).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct PipeEnd {
    inner: Mutex<Option<Arc<Inner>>>,
    readable: bool,
    writable: bool,
}

fn closed_handle() -> PyErr {
    PyOSError::new_err("handle is closed")
}

impl PipeEnd {
    fn new(conn: Connection, token: UnixStream) -> PipeEnd {
        conn.set_peer_death_ends_stream(false);
        PipeEnd {
            readable: conn.readable(),
            writable: conn.writable(),
            inner: Mutex::new(Some(Arc::new(Inner {
                conn,
                token,
                exported: Exported::default(),
                looked_ns: AtomicU64::new(0),
                looked_closes: AtomicU64::new(0),
            }))),
        }
    }

    pub(crate) fn inner(&self) -> PyResult<Arc<Inner>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(closed_handle)
    }
}

/// Whether `inner` can be read without blocking: a message, or end of stream.
fn ready(inner: &Inner) -> bool {
    inner.conn.is_ready() || inner.peer_gone()
}

/// Waits up to `slice` for `inner` to be ready, without the GIL.
fn wait_ready(inner: &Inner, slice: Duration) -> io::Result<bool> {
    let (objects, fds) = wait_with_fds(
        &[&inner.conn as &dyn Waitable],
        &[inner.token.as_fd()],
        Some(slice),
    )?;
    Ok(!objects.is_empty() || !fds.is_empty())
}

#[pymethods]
impl PipeEnd {
    /// Whether this end receives.
    #[getter]
    fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end sends.
    #[getter]
    fn writable(&self) -> bool {
        self.writable
    }

    /// Whether `close()` was called on this handle.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Sends `data` (bytes) as one message; blocks while the pipe is full.
    fn send_bytes(&self, py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        let inner = self.inner()?;
        if !self.writable {
            return Err(PyOSError::new_err("connection is read-only"));
        }
        send(py, &inner, [data.as_bytes(), &[], &[]])
    }

    /// Pickles `obj` and sends it as one message (a pickling error is raised here);
    /// blocks while the pipe is full.
    fn send_obj(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let inner = self.inner()?;
        if !self.writable {
            return Err(PyOSError::new_err("connection is read-only"));
        }
        let msg = Message::encode(obj)?;
        send(py, &inner, msg.parts())
    }

    /// The next message; None after `timeout` seconds (`None`: no limit); `EOFError`
    /// at end of stream.
    #[pyo3(signature = (timeout = None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let inner = self.inner()?;
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        let got = receive(py, &inner, timeout, |py, slot| {
            slot_to_bytes(py, slot).map(Bound::unbind)
        })?;
        Ok(got.map(|b| b.into_bound(py)))
    }

    /// The next object (unpickled), waiting for it; `EOFError` at end of stream.
    fn recv_obj<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner()?;
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        let got = receive(py, &inner, None, |py, slot| Received::read(py, &slot))?;
        got.ok_or_else(|| PyEOFError::new_err(""))?.load(py)
    }

    /// Whether a message (or end of stream) is there, waiting up to `timeout` seconds
    /// (`None`: no limit).
    #[pyo3(signature = (timeout = 0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let inner = self.inner()?;
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        if ready(&inner) {
            return Ok(true);
        }
        let deadline = deadline(timeout)?;
        let woke = wait_for(py, deadline, |slice| {
            wait_ready(&inner, slice)
                .map(|_| ready(&inner).then_some(()))
                .map_err(|e| PyOSError::new_err(e.to_string()))
        })?;
        Ok(woke.is_some())
    }

    /// Closes this handle only (other copies, in this or other processes, stay open).
    fn close(&self) {
        if self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
        {
            CLOSES.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The receiving ring's readiness descriptor (see `RawReadiness`) and the liveness
    /// socket's descriptor (readable at end of stream), for event loops.
    fn readiness(&self) -> PyResult<(crate::queue::RawReadiness, i32)> {
        let inner = self.inner()?;
        let ready = inner
            .conn
            .readiness()
            .ok_or_else(|| PyOSError::new_err("connection is write-only"))?;
        Ok((
            crate::queue::RawReadiness { inner: ready },
            inner.token.as_raw_fd(),
        ))
    }

    /// The liveness socket's descriptor: readable once the peer is closed everywhere.
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.inner()?.token.as_raw_fd())
    }

    /// `(bytes, [fd, …])` for pickling; the last descriptor is the liveness socket.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        let inner = self.inner()?;
        let (b, mut fds) = inner.exported.parts(py, &inner.conn)?;
        fds.push(inner.token.as_raw_fd());
        Ok((b, fds))
    }

    /// The end again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], mut fds: Vec<i32>) -> PyResult<PipeEnd> {
        let token = fds
            .pop()
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| PyValueError::new_err("a pipe end needs its liveness descriptor"))?;
        // SAFETY: the caller hands over the descriptors it owns (from `DupFd.detach()`).
        let token = UnixStream::from(unsafe { OwnedFd::from_raw_fd(token) });
        let conn: Connection = rebuild(data, fds)?;
        Ok(PipeEnd::new(conn, token))
    }
}

/// `Pipe(duplex)`: two connected ends.
#[pyfunction]
#[pyo3(signature = (duplex = true))]
pub(crate) fn pipe(duplex: bool) -> PyResult<(PipeEnd, PipeEnd)> {
    // As `multiprocessing.Pipe(duplex=False)`: the receiving end first.
    // Rings as large as a queue's, so that a message of up to half of one goes in one
    // piece (larger ones are streamed in parts); memory is touched only as messages
    // pass.
    let builder = Pipe::builder().capacity(DEFAULT_CAPACITY);
    let (a, b) = if duplex {
        builder.duplex()
    } else {
        builder.simplex().map(|(tx, rx)| (rx, tx))
    }
    .map_err(|e| create_failed(&e))?;
    let (ta, tb) =
        UnixStream::pair().map_err(|e| create_failed(&format!("could not create a pipe: {e}")))?;
    Ok((PipeEnd::new(a, ta), PipeEnd::new(b, tb)))
}
