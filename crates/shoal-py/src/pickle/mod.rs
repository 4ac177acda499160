//! Messages of Python objects: pickled here, in Rust, with the interpreter's own
//! `pickle` (protocol 5), so that a `put` or `send` is one call from Python.
//!
//! `bytes` objects take a short cut both ways. Going out, one is not handed to `pickle`:
//! the message is the pickle `pickle.dumps` would write for it, made here (`PROTO 5`,
//! `SHORT_BINBYTES`/`BINBYTES`/`BINBYTES8` with the length, the bytes, `STOP`) and
//! written straight into the ring. Coming in, a message that is the pickle of one
//! `bytes` object (those, with or without the `FRAME` and `MEMOIZE` opcodes the standard
//! pickler adds) becomes a `bytes` copied once from the ring, without `pickle.loads`.
//! Every message is a valid pickle either way, so Python code may `pickle.loads` any.
//!
//! Plain data (`None`, `bool`, `int`, `float`, `str`, `bytes`, and tuples, lists and
//! dicts of them) is pickled and unpickled here too ([`encode`], [`decode`]): the same
//! opcodes as the standard pickler's, without its per-call set-up. Other objects go
//! through `pickle.dumps(obj, 5)`, and messages with other opcodes through
//! `pickle.loads`; when `pickle.dumps` refuses an object, the standard
//! library's `ForkingPickler` (its extra reducers: sockets, connections, methods) has a
//! go, and its error is the one raised. The pickling error is raised by the `put` or
//! `send` call itself.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyType};
use shoal::channel::ReadSlot;

mod decode;
mod encode;

pub(crate) use encode::ListWriter;

use op::{BINBYTES, BINBYTES8, FRAME, MEMOIZE, PROTO, SHORT_BINBYTES, STOP};

/// The pickle protocol of every message.
const PROTOCOL: u8 = 5;

/// The pickle opcodes read and written here (CPython's `Lib/pickle.py` names).
mod op {
    pub(super) const MARK: u8 = b'(';
    pub(super) const STOP: u8 = b'.';
    pub(super) const BININT: u8 = b'J';
    pub(super) const BININT1: u8 = b'K';
    pub(super) const BININT2: u8 = b'M';
    pub(super) const NONE: u8 = b'N';
    pub(super) const BINUNICODE: u8 = b'X';
    pub(super) const APPEND: u8 = b'a';
    pub(super) const EMPTY_DICT: u8 = b'}';
    pub(super) const APPENDS: u8 = b'e';
    pub(super) const BINGET: u8 = b'h';
    pub(super) const LONG_BINGET: u8 = b'j';
    pub(super) const EMPTY_LIST: u8 = b']';
    pub(super) const SETITEM: u8 = b's';
    pub(super) const TUPLE: u8 = b't';
    pub(super) const EMPTY_TUPLE: u8 = b')';
    pub(super) const SETITEMS: u8 = b'u';
    pub(super) const BINFLOAT: u8 = b'G';
    pub(super) const PROTO: u8 = 0x80;
    pub(super) const TUPLE1: u8 = 0x85;
    pub(super) const TUPLE2: u8 = 0x86;
    pub(super) const TUPLE3: u8 = 0x87;
    pub(super) const NEWTRUE: u8 = 0x88;
    pub(super) const NEWFALSE: u8 = 0x89;
    pub(super) const LONG1: u8 = 0x8a;
    pub(super) const BINBYTES: u8 = b'B';
    pub(super) const SHORT_BINBYTES: u8 = b'C';
    pub(super) const SHORT_BINUNICODE: u8 = 0x8c;
    pub(super) const BINUNICODE8: u8 = 0x8d;
    pub(super) const BINBYTES8: u8 = 0x8e;
    pub(super) const MEMOIZE: u8 = 0x94;
    pub(super) const FRAME: u8 = 0x95;
}

/// A list whose items are pickled already ([`ListWriter`]): the encoder writes its
/// opcodes where it meets it, so the list it stands for is what the other side loads.
/// The standard pickler pickles it as a call of `pickle.loads` that makes that list.
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct EncodedList {
    /// From `EMPTY_LIST` to `APPENDS`.
    ops: Vec<u8>,
}

impl EncodedList {
    pub(crate) fn new(list: ListWriter) -> EncodedList {
        EncodedList { ops: list.finish() }
    }

    fn ops(&self) -> &[u8] {
        &self.ops
    }

    /// The whole pickle of the list.
    fn pickle(&self) -> Vec<u8> {
        [&[PROTO, PROTOCOL][..], &self.ops, &[STOP]].concat()
    }

    /// The list it stands for.
    pub(crate) fn load<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = decode::decode(py, &self.pickle())
            .ok_or_else(|| PyValueError::new_err("a pickled list of results is corrupt"))?;
        Ok(list.cast_into::<PyList>()?)
    }
}

#[pymethods]
impl EncodedList {
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let loads = LOADS.import(py, "pickle", "loads")?.clone();
        Ok((loads, (PyBytes::new(py, &self.pickle()),)))
    }
}

/// The longest header of a `bytes` message: `PROTO 5`, a `FRAME` and its length,
/// `BINBYTES8` and its length.
const MAX_HEADER: usize = 2 + 9 + 9;

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FORKING_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static QUEUE_EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `queue.Empty`, raised by a `get` that found nothing in time.
pub(crate) fn empty(py: Python<'_>) -> PyErr {
    match QUEUE_EMPTY.import(py, "queue", "Empty") {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

/// One message to send: a `bytes` object framed here, or the pickle of anything else.
pub(crate) enum Message<'py> {
    /// The pickle of a `bytes` object: `header`'s first `header_len` bytes, the
    /// object's bytes, `STOP`.
    Bytes {
        header: [u8; MAX_HEADER],
        header_len: usize,
        data: Bound<'py, PyBytes>,
    },
    /// Plain data pickled here ([`encode`]).
    Encoded(Vec<u8>),
    /// What `pickle.dumps` made.
    Pickled(Bound<'py, PyBytes>),
}

impl<'py> Message<'py> {
    /// `obj` as a message: pickled now (a pickling error is raised here).
    pub(crate) fn encode(obj: &Bound<'py, PyAny>) -> PyResult<Message<'py>> {
        let py = obj.py();
        if let Ok(data) = obj.cast_exact::<PyBytes>() {
            let n = data.as_bytes().len();
            let mut header = [0u8; MAX_HEADER];
            header[0] = PROTO;
            header[1] = PROTOCOL;
            let header_len = if let Ok(n) = u8::try_from(n) {
                header[2] = SHORT_BINBYTES;
                header[3] = n;
                4
            } else if let Ok(n) = u32::try_from(n) {
                header[2] = BINBYTES;
                header[3..7].copy_from_slice(&n.to_le_bytes());
                7
            } else {
                header[2] = BINBYTES8;
                header[3..11].copy_from_slice(&(n as u64).to_le_bytes());
                11
            };
            return Ok(Message::Bytes {
                header,
                header_len,
                data: data.clone(),
            });
        }
        let mut out = Vec::with_capacity(128);
        if encode::encode(obj, &mut out) {
            return Ok(Message::Encoded(out));
        }
        let dumps = DUMPS.import(py, "pickle", "dumps")?;
        match dumps.call1((obj, PROTOCOL)) {
            Ok(b) => Ok(Message::Pickled(b.cast_into::<PyBytes>()?)),
            Err(plain) => {
                // The standard library's reducers cover some of what plain pickling
                // refuses; if they do not help either, their error is the one to report.
                let forking = FORKING_DUMPS
                    .get_or_try_init(py, || {
                        Ok::<_, PyErr>(
                            py.import("multiprocessing.reduction")?
                                .getattr("ForkingPickler")?
                                .getattr("dumps")?
                                .unbind(),
                        )
                    })
                    .map_err(|_| plain)?
                    .bind(py);
                let buf = forking.call1((obj, PROTOCOL))?;
                let bytes = py.get_type::<PyBytes>().call1((buf,))?;
                Ok(Message::Pickled(bytes.cast_into::<PyBytes>()?))
            }
        }
    }

    /// The message's pieces, in order.
    pub(crate) fn parts(&self) -> [&[u8]; 3] {
        match self {
            Message::Bytes {
                header,
                header_len,
                data,
            } => [&header[..*header_len], data.as_bytes(), &[STOP]],
            Message::Encoded(v) => [v, &[], &[]],
            Message::Pickled(b) => [b.as_bytes(), &[], &[]],
        }
    }

    /// The message's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    /// The message as one `bytes` (for a producer that must keep it for later).
    pub(crate) fn into_bytes(self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        match self {
            Message::Pickled(b) => Ok(b),
            bytes => {
                let parts = bytes.parts();
                PyBytes::new_with(py, bytes.len(), |out| {
                    gather(&parts, out);
                    Ok(())
                })
            }
        }
    }
}

/// Copies `parts` one after the other into `out` (exactly as long as they are).
pub(crate) fn gather(parts: &[&[u8]], out: &mut [u8]) {
    let mut at = 0;
    for p in parts {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
}

/// Where the bytes of a `bytes` message lie in it, `(start, len)`, or `None` for any
/// other pickle; from its first bytes `head` (up to [`MAX_HEADER`]), its last two bytes
/// `tail` and its length `total`.
fn bytes_payload(head: &[u8], tail: [u8; 2], total: usize) -> Option<(usize, usize)> {
    if head.len() < 4 || head[0] != PROTO || head[1] < 3 || tail[1] != STOP {
        return None;
    }
    let mut at = 2;
    if head[at] == FRAME {
        at += 9;
    }
    let width = match *head.get(at)? {
        SHORT_BINBYTES => 1,
        BINBYTES => 4,
        BINBYTES8 => 8,
        _ => return None,
    };
    at += 1;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(head.get(at..at + width)?);
    let n = usize::try_from(u64::from_le_bytes(le)).ok()?;
    at += width;
    // After the bytes: `STOP`, or `MEMOIZE` then `STOP`.
    match total.checked_sub(at.checked_add(n)?)? {
        1 => Some((at, n)),
        2 if tail[0] == MEMOIZE => Some((at, n)),
        _ => None,
    }
}

/// Where the bytes of a `bytes` message lie in `msg` (the whole message), or `None`.
pub(crate) fn payload_in(msg: &[u8]) -> Option<(usize, usize)> {
    let tail = match msg {
        [.., a, b] => [*a, *b],
        _ => return None,
    };
    bytes_payload(&msg[..msg.len().min(MAX_HEADER)], tail, msg.len())
}

/// A new `bytes` holding `len` bytes of `slot` from offset `start`, copied once from
/// the ring (a large one is not zeroed first, as `PyBytes::new_with` would).
pub(crate) fn slot_bytes<'py>(
    py: Python<'py>,
    slot: &ReadSlot<'_>,
    start: usize,
    len: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    slot_bytes_then(py, slot, start, len, &mut [])
}

/// [`slot_bytes`], also copying the bytes that follow into `after` (as many as there
/// are, up to its length).
fn slot_bytes_then<'py>(
    py: Python<'py>,
    slot: &ReadSlot<'_>,
    start: usize,
    len: usize,
    after: &mut [u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let end = start
        .checked_add(len)
        .filter(|&e| e <= slot.len())
        .ok_or_else(|| PyValueError::new_err("a message is shorter than its header says"))?;
    if let Some(all) = slot.as_slice() {
        let rest = &all[end..];
        let k = rest.len().min(after.len());
        after[..k].copy_from_slice(&rest[..k]);
        return Ok(PyBytes::new(py, &all[start..end]));
    }
    let size = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyValueError::new_err("a message too long for a bytes object"))?;
    // SAFETY: `PyBytes_FromStringAndSize(NULL, n)` returns a new, uninitialized `bytes`
    // of `n` bytes (or NULL with an exception set, turned into `Err`), which nobody
    // else sees before it is filled below.
    let b = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size),
        )?
    }
    .cast_into::<PyBytes>()?;
    // SAFETY: the buffer of a `bytes` of `len` bytes, just made and not yet shared.
    let dst = unsafe { pyo3::ffi::PyBytes_AsString(b.as_ptr()) }.cast::<u8>();
    let mut skip = start;
    let mut at = 0;
    let mut tail = 0;
    for c in slot.chunks() {
        if skip >= c.len() {
            skip -= c.len();
            continue;
        }
        let mut c = &c[skip..];
        skip = 0;
        if at < len {
            let take = c.len().min(len - at);
            // SAFETY: `at + take <= len`: within the buffer; the ring's bytes and a new
            // object's buffer cannot overlap.
            unsafe { std::ptr::copy_nonoverlapping(c.as_ptr(), dst.add(at), take) };
            at += take;
            c = &c[take..];
        }
        let k = c.len().min(after.len() - tail);
        after[tail..tail + k].copy_from_slice(&c[..k]);
        tail += k;
        if at == len && tail == after.len() {
            break;
        }
    }
    // `end <= slot.len()`, so the chunks filled it; should they not, no byte is left
    // uninitialized.
    if at < len {
        // SAFETY: `at..len` is within the buffer.
        unsafe { std::ptr::write_bytes(dst.add(at), 0, len - at) };
    }
    Ok(b)
}

/// The object pickled in the whole message `msg`: a `bytes` message or plain data
/// decoded here, anything else given to `pickle.loads`.
pub(crate) fn loads<'py>(py: Python<'py>, msg: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    if let Some((start, n)) = payload_in(msg) {
        return Ok(PyBytes::new(py, &msg[start..start + n]).into_any());
    }
    if let Some(v) = decode::decode(py, msg) {
        return Ok(v);
    }
    LOADS
        .import(py, "pickle", "loads")?
        .call1((PyBytes::new(py, msg),))
}

/// What a received message holds, decided while it lies in the ring (and movable out
/// of a wait without the GIL).
pub(crate) struct Received {
    /// The `bytes` object, or the pickle to load.
    obj: Py<PyAny>,
    /// Whether `obj` is a pickle to load once the ring's slot is given back (loading
    /// runs Python code, which must not run while a slot is held).
    pickled: bool,
}

impl Received {
    /// Reads the message in `slot`: a `bytes` message is copied out as the object, any
    /// other is copied out whole for [`Received::load`].
    pub(crate) fn read(py: Python<'_>, slot: &ReadSlot<'_>) -> PyResult<Received> {
        if let Some(all) = slot.as_slice() {
            return Ok(match payload_in(all) {
                Some((start, n)) => Received::object(PyBytes::new(py, &all[start..start + n])),
                None => Received::pickle(PyBytes::new(py, all)),
            });
        }
        // In pieces: the header tells where the bytes would be; the one or two bytes
        // after them, read in the same pass as the copy, confirm it.
        let mut head = [0u8; MAX_HEADER];
        let mut got = 0;
        for c in slot.chunks() {
            let take = c.len().min(head.len() - got);
            head[got..got + take].copy_from_slice(&c[..take]);
            got += take;
            if got == head.len() {
                break;
            }
        }
        let total = slot.len();
        if let Some((start, n)) = bytes_payload(&head[..got], [MEMOIZE, STOP], total) {
            let rest = total - start - n;
            let mut after = [0u8; 2];
            let b = slot_bytes_then(py, slot, start, n, &mut after[..rest])?;
            if after[..rest] == [STOP] || after[..rest] == [MEMOIZE, STOP] {
                return Ok(Received::object(b));
            }
        }
        Ok(Received::pickle(slot_bytes(py, slot, 0, total)?))
    }

    fn object(b: Bound<'_, PyBytes>) -> Received {
        Received {
            obj: b.into_any().unbind(),
            pickled: false,
        }
    }

    fn pickle(b: Bound<'_, PyBytes>) -> Received {
        Received {
            obj: b.into_any().unbind(),
            pickled: true,
        }
    }

    /// The object: loaded from its pickle now, if it was one.
    pub(crate) fn load(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        let obj = self.obj.into_bound(py);
        if !self.pickled {
            return Ok(obj);
        }
        let data = obj.cast::<PyBytes>()?;
        if let Some(v) = decode::decode(py, data.as_bytes()) {
            return Ok(v);
        }
        LOADS.import(py, "pickle", "loads")?.call1((obj,))
    }
}
