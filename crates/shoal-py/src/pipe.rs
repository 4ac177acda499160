//! `PipeEnd`: one end of a shoal `Pipe`, with Python's end-of-stream rule.
//!
//! A shoal `Connection` closed with `close()` closes the pipe for every process; a
//! Python `Connection` closes only its own handle, and the peer sees end of stream once
//! *every* copy of this end (in every process) is closed or gone. Each end therefore
//! carries one socket of a `socketpair`, inherited and passed with the end like a
//! descriptor of Python's own pipes: when the kernel has closed every copy of one
//! socket, the other becomes readable with end of file, which is the peer's end of
//! stream (or broken pipe for its sends) — process deaths included.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyBrokenPipeError, PyEOFError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shoal::channel::{wait_with_fds, GetError, PutError, Waitable};
use shoal::{Connection, Pipe};

use crate::blocking::{create_failed, deadline, wait_for};
use crate::handoff::{rebuild, Exported};
use crate::queue::slot_to_bytes;

pub(crate) struct Inner {
    pub(crate) conn: Connection,
    /// This end's half of the liveness socketpair.
    pub(crate) token: UnixStream,
    exported: Exported,
}

impl Inner {
    /// Whether every copy of the peer's end is closed (its socket reached end of file).
    fn peer_gone(&self) -> bool {
        peer_gone(self.token.as_fd())
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

fn recv_now<'py>(py: Python<'py>, inner: &Inner) -> PyResult<Option<Bound<'py, PyBytes>>> {
    if inner.conn.poll(Duration::ZERO) {
        match inner.conn.recv_in_place(|slot| slot_to_bytes(py, slot)) {
            Ok(b) => return b.map(Some),
            Err(GetError::Closed) => return Err(PyEOFError::new_err("")),
            Err(e) => return Err(PyOSError::new_err(format!("could not receive: {e}"))),
        }
    }
    if inner.peer_gone() {
        // Sent before the peer closed: still delivered.
        if inner.conn.poll(Duration::ZERO) {
            return recv_now(py, inner);
        }
        return Err(PyEOFError::new_err(""));
    }
    Ok(None)
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
        match r {
            Ok(()) => Ok(()),
            Err(PutError::Closed(())) => Err(PyBrokenPipeError::new_err(
                "the other end of the pipe is closed",
            )),
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
            let woke = wait_for(py, deadline, |slice| {
                wait_ready(&inner, slice)
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
