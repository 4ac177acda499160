//! `RawListener` / `RawNetConnection`: authenticated connections over TCP and Unix
//! sockets on `shoal::net`, wire-compatible with `multiprocessing.connection`.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyEOFError, PyException, PyOSError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use shoal::net::rustls::pki_types::pem::PemObject;
use shoal::net::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use shoal::net::rustls::{self, RootCertStore};
use shoal::net::{Address, Client, Connection, Listener, NetError};

use crate::blocking::{deadline, wait_for};
use crate::pickle::{self, gather, Message};

/// Messages from this long are sent without the GIL (a shorter one goes into the
/// socket's buffer at once).
const LARGE: usize = 64 * 1024;

/// A Python address: `(host, port)`, a Unix socket path, or `"\0name"` (abstract).
fn to_address(address: &Bound<'_, PyAny>) -> PyResult<Address> {
    if let Ok(t) = address.cast::<PyTuple>() {
        let (host, port): (String, u16) = t.extract()?;
        return Address::tcp((host.as_str(), port)).map_err(net_error_plain);
    }
    if let Ok(s) = address.cast::<PyString>() {
        let s: String = s.extract()?;
        if let Some(name) = s.strip_prefix('\0') {
            return Ok(Address::abstract_name(name));
        }
        return Ok(Address::unix(s));
    }
    Err(PyValueError::new_err(format!(
        "address type of {} unrecognized",
        address.repr()?
    )))
}

/// An address as Python writes it.
fn from_address<'py>(py: Python<'py>, address: &Address) -> PyResult<Bound<'py, PyAny>> {
    Ok(match address {
        Address::Tcp(sa) => (sa.ip().to_string(), sa.port())
            .into_pyobject(py)?
            .into_any(),
        Address::Unix(p) => p
            .to_string_lossy()
            .into_owned()
            .into_pyobject(py)?
            .into_any(),
        Address::Abstract(name) => {
            let mut s = String::from("\0");
            s.push_str(&String::from_utf8_lossy(name));
            s.into_pyobject(py)?.into_any()
        }
    })
}

fn net_error_plain(e: NetError) -> PyErr {
    PyOSError::new_err(e.to_string())
}

/// A `NetError` as the exception `multiprocessing.connection` raises.
fn net_error(py: Python<'_>, e: NetError) -> PyErr {
    match e {
        NetError::Eof => PyEOFError::new_err(""),
        NetError::Authentication(_) => {
            match py
                .import("multiprocessing")
                .and_then(|m| m.getattr("AuthenticationError"))
            {
                Ok(cls) => match cls.call1((e.to_string(),)) {
                    Ok(v) => PyErr::from_value(v),
                    Err(err) => err,
                },
                Err(err) => err,
            }
        }
        NetError::Timeout { .. } => PyTimeoutError::new_err(e.to_string()),
        other => PyOSError::new_err(other.to_string()),
    }
}

fn tls_error(what: &str, path: &str, e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("could not use {what} {path:?} for TLS: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from a PEM certificate chain and its PEM private key.
fn server_tls(cert: &str, key: &str) -> PyResult<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_error("certificate file", cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error("certificate file", cert, e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error("key file", key, e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("certificate file", cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| tls_error("certificate file", cert, e))?;
    Ok(Arc::new(config))
}

/// A client configuration trusting the PEM certificates of `ca`.
fn client_tls(ca: &str) -> PyResult<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls_error("CA file", ca, e))? {
        roots
            .add(c.map_err(|e| tls_error("CA file", ca, e))?)
            .map_err(|e| tls_error("CA file", ca, e))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("CA file", ca, e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The outcome of `request` when it is a plain manager call (see
/// `RawNetConnection::serve_manager`): `Some(Ok(value))`, `Some(Err(exception))` for an
/// `Exception` the method raised; `None` for anything else, which Python answers. A
/// `BaseException` that is not an `Exception` (`SystemExit`, `KeyboardInterrupt`) is
/// raised.
fn plain_call<'py>(
    py: Python<'py>,
    id_to_obj: &Bound<'py, PyDict>,
    request: &Bound<'py, PyAny>,
) -> PyResult<Option<Result<Bound<'py, PyAny>, Bound<'py, PyAny>>>> {
    let Ok(request) = request.cast::<PyTuple>() else {
        return Ok(None);
    };
    if request.len() != 4 {
        return Ok(None);
    }
    let ident = request.get_item(0)?;
    let method = request.get_item(1)?;
    let (Ok(args), Ok(kwds)) = (
        request.get_item(2)?.cast_into::<PyTuple>(),
        request.get_item(3)?.cast_into::<PyDict>(),
    ) else {
        return Ok(None);
    };
    let Ok(method) = method.cast_into::<PyString>() else {
        return Ok(None);
    };
    let Some(entry) = id_to_obj.get_item(&ident)? else {
        return Ok(None);
    };
    let Ok(entry) = entry.cast_into::<PyTuple>() else {
        return Ok(None);
    };
    if entry.len() != 3 {
        return Ok(None);
    }
    let obj = entry.get_item(0)?;
    let exposed = entry.get_item(1)?;
    let gettypeid = entry.get_item(2)?;
    if !exposed.contains(&method).unwrap_or(false) {
        return Ok(None);
    }
    // A method that hands out a proxy is answered by Python.
    if !gettypeid.is_none() {
        match gettypeid.cast::<PyDict>() {
            Ok(d) if !d.contains(&method)? => {}
            _ => return Ok(None),
        }
    }
    let Ok(function) = obj.getattr(&method) else {
        return Ok(None);
    };
    let kwds = if kwds.is_empty() { None } else { Some(&kwds) };
    match function.call(args, kwds) {
        Ok(value) => Ok(Some(Ok(value))),
        Err(e) if e.is_instance_of::<PyException>(py) => {
            Ok(Some(Err(e.into_value(py).into_bound(py).into_any())))
        }
        Err(e) => Err(e),
    }
}

/// Whether the calling thread is the process's main thread (where Python runs signal
/// handlers).
fn is_main_thread() -> bool {
    thread_local! {
        /// The process id and this thread's id, as last read (a forked child's thread
        /// has a new id: the pair is read again when the process id changed).
        static IDS: Cell<(u32, i32)> = const { Cell::new((0, 0)) };
    }
    let pid = std::process::id();
    IDS.with(|ids| {
        let (seen_pid, tid) = ids.get();
        let tid = if seen_pid == pid {
            tid
        } else {
            // SAFETY: `gettid` takes no arguments and cannot fail.
            let tid = unsafe { libc::gettid() };
            ids.set((pid, tid));
            tid
        };
        // The main thread's id is the process id.
        u32::try_from(tid) == Ok(pid)
    })
}

/// How long a manager call ([`RawNetConnection::call`]) looks for its reply before it
/// sleeps.
const CALL_SPIN: std::time::Duration = std::time::Duration::from_micros(60);

/// A listening socket that hands out authenticated connections.
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawListener {
    listener: Listener,
}

#[pymethods]
impl RawListener {
    /// Binds `address` (port 0 picks a free one); `authkey` asks every client to prove
    /// it knows the key before `accept` returns it. `tls_cert`/`tls_key` (PEM files)
    /// serve TLS; `compression` (a zstd level) offers compression of large frames to
    /// clients that ask for it.
    #[new]
    #[pyo3(signature = (address, authkey = None, tls_cert = None, tls_key = None, compression = None))]
    fn new(
        py: Python<'_>,
        address: &Bound<'_, PyAny>,
        authkey: Option<Vec<u8>>,
        tls_cert: Option<&str>,
        tls_key: Option<&str>,
        compression: Option<i32>,
    ) -> PyResult<RawListener> {
        let address = to_address(address)?;
        let mut b = Listener::builder();
        if let Some(k) = &authkey {
            b = b.authkey(k);
        }
        match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => b = b.tls(server_tls(cert, key)?),
            (None, None) => {}
            _ => return Err(PyValueError::new_err("TLS needs both tls_cert and tls_key")),
        }
        if let Some(level) = compression {
            b = b.compression(level);
        }
        let listener = b.bind(address).map_err(|e| net_error(py, e))?;
        Ok(RawListener { listener })
    }

    /// The next authenticated connection; None after `timeout` seconds.
    #[pyo3(signature = (timeout = None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<RawNetConnection>> {
        let deadline = deadline(timeout)?;
        let l = &self.listener;
        let got = wait_for(py, deadline, |slice| {
            match l.accept_timeout(slice.max(Duration::from_millis(1))) {
                Ok(c) => Ok(Some(Ok(c))),
                Err(NetError::Timeout { op }) if op.contains("accept") => Ok(None),
                Err(e) => Ok(Some(Err(e))),
            }
        })?;
        match got {
            None => Ok(None),
            Some(Ok(conn)) => Ok(Some(RawNetConnection::new(conn))),
            Some(Err(e)) => Err(net_error(py, e)),
        }
    }

    /// The bound address, as Python writes addresses.
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_address(py, self.listener.address())
    }

    fn fileno(&self) -> i32 {
        self.listener.as_raw_fd()
    }
}

/// Connects to `address`, answering (and asking) the HMAC challenge with `authkey`.
/// `tls_ca` (a PEM file of trusted certificates) connects with TLS, checking the
/// server's certificate against `tls_server_name` (the address's host by default);
/// `compression` (a zstd level) asks for compression of large frames.
#[pyfunction]
#[pyo3(signature = (address, authkey = None, tls_ca = None, tls_server_name = None, compression = None))]
pub(crate) fn connect(
    py: Python<'_>,
    address: &Bound<'_, PyAny>,
    authkey: Option<Vec<u8>>,
    tls_ca: Option<&str>,
    tls_server_name: Option<String>,
    compression: Option<i32>,
) -> PyResult<RawNetConnection> {
    let host = address
        .cast::<PyTuple>()
        .ok()
        .and_then(|t| t.get_item(0).ok())
        .and_then(|h| h.extract::<String>().ok());
    let address = to_address(address)?;
    let mut b = Client::builder();
    if let Some(k) = &authkey {
        b = b.authkey(k);
    }
    if let Some(ca) = tls_ca {
        let name = tls_server_name
            .or(host)
            .ok_or_else(|| PyValueError::new_err("TLS over a Unix socket needs tls_server_name"))?;
        b = b
            .tls(client_tls(ca)?, &name)
            .map_err(|e| net_error(py, e))?;
    }
    if let Some(level) = compression {
        b = b.compression(level);
    }
    let conn = py
        .detach(|| b.connect(address))
        .map_err(|e| net_error(py, e))?;
    Ok(RawNetConnection::new(conn))
}

/// A connection over a socket.
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawNetConnection {
    pub(crate) conn: ManuallyDrop<Connection>,
    /// The socket was handed to another process (`_hand_over`): dropping this handle
    /// closes its descriptor only. (Closing the connection shuts the socket down, which
    /// would end the stream for the process that has it now.)
    handed_over: AtomicBool,
    /// The process that made the connection. A child forked from it inherits the
    /// handle: there, dropping or closing it closes the child's descriptor only, and
    /// the parent's stream goes on (a shut-down socket would end it for both).
    owner: u32,
}

impl RawNetConnection {
    fn new(conn: Connection) -> RawNetConnection {
        RawNetConnection {
            conn: ManuallyDrop::new(conn),
            handed_over: AtomicBool::new(false),
            owner: std::process::id(),
        }
    }

    /// Whether the stream is this handle's to end: not handed over, not inherited.
    fn owns_stream(&self) -> bool {
        !self.handed_over.load(Ordering::Acquire) && self.owner == std::process::id()
    }

    /// Sends one pickled message.
    fn send_message(&self, py: Python<'_>, msg: &Message<'_>) -> PyResult<()> {
        let parts = msg.parts();
        let conn = &self.conn;
        let sent = if parts[1].is_empty() && parts[2].is_empty() {
            let one = parts[0];
            if one.len() >= LARGE {
                py.detach(|| conn.send_bytes(one))
            } else {
                conn.send_bytes(one)
            }
        } else {
            let mut whole = vec![0u8; msg.len()];
            gather(&parts, &mut whole);
            py.detach(|| conn.send_bytes(&whole))
        };
        sent.map_err(|e| net_error(py, e))
    }

    /// The next message's bytes, waiting without the GIL; `EOFError` at end of stream.
    /// The main thread waits in slices, so that signals (Ctrl-C) are seen; another
    /// thread, where Python runs no signal handler, blocks in the read itself (one
    /// system call and one wake-up per message instead of a poll and a read).
    fn recv_message(&self, py: Python<'_>) -> PyResult<Vec<u8>> {
        let conn = &self.conn;
        if !is_main_thread() {
            return py
                .detach(|| conn.recv_bytes())
                .map_err(|e| net_error(py, e));
        }
        let got = wait_for(py, None, |slice| match conn.poll(slice) {
            Ok(true) => Ok(Some(conn.recv_bytes())),
            Ok(false) => Ok(None),
            Err(e) => Ok(Some(Err(e))),
        })?;
        match got {
            Some(Ok(data)) => Ok(data),
            Some(Err(e)) => Err(net_error(py, e)),
            None => Err(PyOSError::new_err("a wait without deadline ended")),
        }
    }
}

impl Drop for RawNetConnection {
    fn drop(&mut self) {
        if !self.owns_stream() {
            // The connection's state is left behind (a few buffers): its drop would
            // shut the socket down. Only this process's descriptor goes.
            // SAFETY: the descriptor is the connection's own, open until now, and
            // nothing uses or closes it after this: the connection is never dropped.
            unsafe { libc::close(self.conn.as_raw_fd()) };
        } else {
            // SAFETY: `conn` is dropped exactly once, here, and not used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.conn) };
        }
    }
}

#[pymethods]
impl RawNetConnection {
    fn send_bytes(&self, py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        let bytes = data.as_bytes();
        py.detach(|| self.conn.send_bytes(bytes))
            .map_err(|e| net_error(py, e))
    }

    /// The next message; None after `timeout` seconds; `EOFError` at end of stream.
    #[pyo3(signature = (timeout = None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if !self.poll(py, timeout)? {
            return Ok(None);
        }
        let v = py
            .detach(|| self.conn.recv_bytes())
            .map_err(|e| net_error(py, e))?;
        Ok(Some(PyBytes::new(py, &v)))
    }

    /// Whether a message (or end of stream) is there within `timeout` seconds.
    #[pyo3(signature = (timeout = 0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self
            .conn
            .poll(Duration::ZERO)
            .map_err(|e| net_error(py, e))?
        {
            return Ok(true);
        }
        let deadline = deadline(timeout)?;
        let c = &self.conn;
        let r = wait_for(py, deadline, |slice| match c.poll(slice) {
            Ok(true) => Ok(Some(())),
            Ok(false) => Ok(None),
            Err(e) => Err(PyOSError::new_err(e.to_string())),
        })?;
        Ok(r.is_some())
    }

    fn close(&self) {
        if self.owns_stream() {
            self.conn.close();
        }
    }

    /// Sends `obj` pickled (protocol 5: plain data is pickled here, anything else by
    /// `pickle`); a pickling error is raised here and nothing is sent.
    fn send_obj(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let msg = Message::encode(obj)?;
        self.send_message(py, &msg)
    }

    /// The next object (unpickled), waiting for it without the GIL; `EOFError` at end
    /// of stream.
    fn recv_obj<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.recv_message(py)?;
        pickle::loads(py, &data)
    }

    /// Serves a manager's requests on this connection (the server side of a proxy
    /// connection) until it ends (returns) or `stop` is set.
    ///
    /// Each request `(ident, methodname, args, kwds)` is received and unpickled without
    /// Python code; a plain call, an exposed method of an object of `id_to_obj` that
    /// returns a value (not a proxy), runs here and is answered `('#RETURN', value)` or
    /// `('#ERROR', exception)`. Anything else, a request that does not unpickle here
    /// included, goes to `answer(message_bytes)`, which returns the answer to send.
    /// An answer that cannot be pickled goes to `send_answer(answer)`, which sends what
    /// it can (`'#UNSERIALIZABLE'`). Errors of the connection other than its end are
    /// raised.
    fn serve_manager(
        &self,
        py: Python<'_>,
        id_to_obj: &Bound<'_, PyDict>,
        stop: &Bound<'_, PyAny>,
        answer: &Bound<'_, PyAny>,
        send_answer: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let is_set = stop.getattr("is_set")?;
        let returned = PyString::intern(py, "#RETURN");
        let error = PyString::intern(py, "#ERROR");
        loop {
            if is_set.call0()?.is_truthy()? {
                return Ok(());
            }
            let data = match py.detach(|| self.conn.recv_bytes()) {
                Ok(data) => data,
                Err(NetError::Eof) => return Ok(()),
                Err(e) => return Err(net_error(py, e)),
            };
            let fast = match pickle::loads(py, &data) {
                Ok(request) => plain_call(py, id_to_obj, &request)?,
                Err(_) => None,
            };
            let msg = match fast {
                Some(Ok(value)) => PyTuple::new(py, [returned.as_any(), &value])?.into_any(),
                Some(Err(exc)) => PyTuple::new(py, [error.as_any(), &exc])?.into_any(),
                None => answer.call1((PyBytes::new(py, &data),))?,
            };
            match Message::encode(&msg) {
                Ok(encoded) => self.send_message(py, &encoded)?,
                Err(_) => {
                    send_answer.call1((msg,))?;
                }
            }
        }
    }

    /// One round trip: sends `request` pickled and returns the object that answers it
    /// (`send_obj` then `recv_obj`, without going back to Python in between).
    fn call<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let msg = Message::encode(request)?;
        self.send_message(py, &msg)?;
        drop(msg);
        // A server on another CPU answers a plain call within tens of microseconds:
        // looking for the reply that long first spares this thread a sleep and the
        // wake-up that ends it.
        let conn = &self.conn;
        let early = py.detach(|| {
            let start = std::time::Instant::now();
            while start.elapsed() < CALL_SPIN {
                match conn.poll(std::time::Duration::ZERO) {
                    Ok(true) => return Some(conn.recv_bytes()),
                    Ok(false) => std::hint::spin_loop(),
                    Err(e) => return Some(Err(e)),
                }
            }
            None
        });
        let data = match early {
            Some(got) => got.map_err(|e| net_error(py, e))?,
            None => self.recv_message(py)?,
        };
        pickle::loads(py, &data)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.conn.is_closed()
    }

    fn fileno(&self) -> i32 {
        self.conn.as_raw_fd()
    }

    /// Whether the connection is encrypted (TLS).
    #[getter]
    fn encrypted(&self) -> bool {
        self.conn.is_encrypted()
    }

    /// Whether large frames are compressed (both sides asked for it).
    #[getter]
    fn compressed(&self) -> bool {
        self.conn.is_compressed()
    }

    /// Whether the socket carries plain frames (no TLS, no compression) and nothing of
    /// the stream waits in this process's buffers: then another process can take the
    /// socket over as it is.
    #[getter]
    fn transferable(&self) -> bool {
        !self.conn.is_encrypted() && !self.conn.is_compressed() && !self.conn.has_pending_input()
    }

    /// Marks the socket as handed to another process: from now on dropping this handle
    /// (or `close`) closes the descriptor here without ending the stream.
    fn _hand_over(&self) {
        self.handed_over.store(true, Ordering::Release);
    }
}
