//! `PipeEnd`: one end of a shoal `Pipe`, with Python's end-of-stream rule.
//!
//! A shoal `Connection` closed with `close()` closes the pipe for every process; a
//! Python `Connection` closes only its own handle, and the peer sees end of stream once
//! *every* copy of this end (in every process) is closed or gone. Each end therefore
//! carries one socket of a `socketpair`, inherited and passed with the end like a
//! descriptor of Python's own pipes: when the kernel has closed every copy of one
//! socket, the other becomes readable with end of file, which is the peer's end of
//! stream (or broken pipe for its sends) — process deaths included.
//!
//! The core has an end-of-stream rule of its own: once every process that *sent* on a
//! ring is dead, the ring reports end of stream. A Python program often keeps the
//! sending end in a parent that never sends while children that did send come and go,
//! so here the socket's rule is the only one: a report of the core's rule while the
//! peer's socket is open means "nothing yet". The core then calls the ring ready until
//! the next sender sends, so waits look at the ring every `STALE_SLICE` meanwhile.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyBrokenPipeError, PyEOFError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shoal::channel::{wait_with_fds, GetError, PutError, ReadSlot, Waitable};
use shoal::{Connection, Pipe};

use crate::blocking::{create_failed, deadline, wait_for};
use crate::handoff::{rebuild, Exported};
use crate::queue::slot_to_bytes;

/// How long a wait sleeps at most while the core reports an end of stream that the
/// liveness socket does not confirm (see the module docs).
pub(crate) const STALE_SLICE: Duration = Duration::from_millis(2);

pub(crate) struct Inner {
    pub(crate) conn: Connection,
    /// This end's half of the liveness socketpair.
    pub(crate) token: UnixStream,
    exported: Exported,
    /// A message read by `poll` or `wait` to learn whether one was there (the core's
    /// readiness cannot tell a message from its own end-of-stream report); the next
    /// receive returns it first.
    ahead: Mutex<Option<Vec<u8>>>,
    has_ahead: AtomicBool,
}

impl Inner {
    /// Whether every copy of the peer's end is closed (its socket reached end of file).
    fn peer_gone(&self) -> bool {
        peer_gone(self.token.as_fd())
    }

    /// The next message if one is there, without waiting, as `f` makes it from the
    /// record: `None` when there is none yet, `GetError::Closed` at end of stream by
    /// Python's rule (the peer's socket is closed everywhere and what it sent was read).
    fn take_with<R>(&self, f: impl Fn(ReadSlot<'_>) -> R) -> Result<Option<R>, GetError> {
        let read = || {
            if !self.conn.poll(Duration::ZERO) {
                return Ok(None);
            }
            match self.conn.recv_in_place(&f) {
                Ok(r) => Ok(Some(r)),
                // The core's own rule; the socket decides below.
                Err(GetError::Closed) => Ok(None),
                Err(e) => Err(e),
            }
        };
        if let Some(r) = read()? {
            return Ok(Some(r));
        }
        if self.peer_gone() {
            // Sent before the peer closed: still delivered.
            return read()?.map(Some).ok_or(GetError::Closed);
        }
        Ok(None)
    }

    /// The message read ahead, if any.
    fn take_ahead(&self) -> Option<Vec<u8>> {
        if !self.has_ahead.load(Ordering::Acquire) {
            return None;
        }
        let mut slot = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        self.has_ahead.store(false, Ordering::Release);
        slot.take()
    }

    /// Whether a receive would not block (a message, end of stream or an error to
    /// report); a message found is kept for that receive. Needs no GIL.
    pub(crate) fn look(&self) -> bool {
        if self.has_ahead.load(Ordering::Acquire) {
            return true;
        }
        let mut slot = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return true;
        }
        match self.take_with(|m| {
            let mut v = vec![0; m.len()];
            m.copy_to_slice(&mut v);
            v
        }) {
            Ok(Some(v)) => {
                *slot = Some(v);
                self.has_ahead.store(true, Ordering::Release);
                true
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// Whether a message read ahead waits here.
    pub(crate) fn has_ahead(&self) -> bool {
        self.has_ahead.load(Ordering::Acquire)
    }

    /// Whether the core calls this end ready although `look` found nothing: its own
    /// end-of-stream rule, which the liveness socket does not confirm.
    pub(crate) fn stale(&self) -> bool {
        Waitable::is_ready(&self.conn)
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
        PipeEnd {
            readable: conn.readable(),
            writable: conn.writable(),
            inner: Mutex::new(Some(Arc::new(Inner {
                conn,
                token,
                exported: Exported::default(),
                ahead: Mutex::new(None),
                has_ahead: AtomicBool::new(false),
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

fn recv_now<'py>(py: Python<'py>, inner: &Inner) -> PyResult<Option<Bound<'py, PyBytes>>> {
    if let Some(v) = inner.take_ahead() {
        return Ok(Some(PyBytes::new(py, &v)));
    }
    match inner.take_with(|slot| slot_to_bytes(py, slot)) {
        Ok(Some(b)) => b.map(Some),
        Ok(None) => Ok(None),
        Err(GetError::Closed) => Err(PyEOFError::new_err("")),
        Err(e) => Err(PyOSError::new_err(format!("could not receive: {e}"))),
    }
}

/// Waits up to `slice` for `inner` to be worth looking at, without the GIL; `stale`:
/// the core calls it ready while nothing is there (see the module docs), so only the
/// liveness socket is waited on, for a short slice.
fn wait_ready(inner: &Inner, slice: Duration, stale: bool) -> io::Result<bool> {
    if stale {
        wait_with_fds(&[], &[inner.token.as_fd()], Some(slice.min(STALE_SLICE)))?;
        return Ok(true);
    }
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
        if inner.peer_gone() {
            return Err(PyBrokenPipeError::new_err(
                "the other end of the pipe is closed",
            ));
        }
        let bytes = data.as_bytes();
        let r = if bytes.len() <= 4096 {
            inner.conn.send_bytes(bytes)
        } else {
            py.detach(|| inner.conn.send_bytes(bytes))
        };
        let broken = || PyBrokenPipeError::new_err("the other end of the pipe is closed");
        match r {
            Ok(()) => Ok(()),
            // The core's own rule (every process that received is dead, and the ring is
            // full): Python's is the socket's, so while some process holds the peer's
            // end, wait for room.
            Err(PutError::Closed(())) if !inner.peer_gone() => {
                let sent = wait_for(py, None, |slice| {
                    wait_with_fds(&[], &[inner.token.as_fd()], Some(slice.min(STALE_SLICE)))
                        .map_err(|e| PyOSError::new_err(e.to_string()))?;
                    if inner.peer_gone() {
                        return Err(broken());
                    }
                    match inner.conn.send_bytes(bytes) {
                        Ok(()) => Ok(Some(())),
                        Err(PutError::Closed(())) => Ok(None),
                        Err(e) => Err(PyOSError::new_err(format!("could not send: {e}"))),
                    }
                })?;
                sent.ok_or_else(broken)
            }
            Err(PutError::Closed(())) => Err(broken()),
            Err(e) => Err(PyOSError::new_err(format!("could not send: {e}"))),
        }
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
        if let Some(b) = recv_now(py, &inner)? {
            return Ok(Some(b));
        }
        let deadline = deadline(timeout)?;
        loop {
            let stale = inner.stale();
            let woke = wait_for(py, deadline, |slice| {
                wait_ready(&inner, slice, stale)
                    .map(|r| r.then_some(()))
                    .map_err(|e| PyOSError::new_err(e.to_string()))
            })?;
            if woke.is_none() {
                return Ok(None);
            }
            if let Some(b) = recv_now(py, &inner)? {
                return Ok(Some(b));
            }
        }
    }

    /// Whether a message (or end of stream) is there, waiting up to `timeout` seconds
    /// (`None`: no limit).
    #[pyo3(signature = (timeout = 0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let inner = self.inner()?;
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        if inner.look() {
            return Ok(true);
        }
        let deadline = deadline(timeout)?;
        let woke = wait_for(py, deadline, |slice| {
            wait_ready(&inner, slice, inner.stale())
                .map(|_| inner.look().then_some(()))
                .map_err(|e| PyOSError::new_err(e.to_string()))
        })?;
        Ok(woke.is_some())
    }

    /// Closes this handle only (other copies, in this or other processes, stay open).
    fn close(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
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
    // Python's order for a one-way pipe is (receiving end, sending end).
    let (a, b) = if duplex {
        Pipe::duplex()
    } else {
        Pipe::simplex().map(|(tx, rx)| (rx, tx))
    }
    .map_err(|e| create_failed(&e))?;
    let (ta, tb) =
        UnixStream::pair().map_err(|e| create_failed(&format!("could not create a pipe: {e}")))?;
    Ok((PipeEnd::new(a, ta), PipeEnd::new(b, tb)))
}
