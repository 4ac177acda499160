//! An unpickler for the opcodes plain data is made of (those [`encode`](super::encode)
//! writes, and those the standard pickler writes for the same values: `FRAME`,
//! `MEMOIZE`, `BINGET`). It builds the objects directly, without an unpickler object.
//! Any other opcode, or anything unexpected, makes [`decode`] give up, and
//! `pickle.loads` reads the whole message (and raises its own error for a bad one).
//! Nothing here runs Python code but the allocation of the objects.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyNone, PyString, PyTuple};

use super::op;

/// Strings up to this long are looked up in [`STRINGS`] first.
const SHORT_STR: usize = 32;
/// Entries of [`STRINGS`] (a power of two).
const STRING_SLOTS: usize = 64;

/// One remembered string: its UTF-8 bytes and the object.
struct Remembered {
    len: u8,
    bytes: [u8; SHORT_STR],
    obj: Py<PyString>,
}

thread_local! {
    /// Short strings decoded lately, by a hash of their bytes: the keys of dicts come
    /// back message after message, and a string taken from here costs no allocation,
    /// no decoding, and has its hash for the dict computed already. (Strings are
    /// immutable: sharing one between messages changes nothing a program can rely on.)
    static STRINGS: RefCell<Vec<Option<Remembered>>> = const { RefCell::new(Vec::new()) };
}

/// The `str` of the UTF-8 bytes `b`, from [`STRINGS`] when it was seen lately.
fn string<'py>(py: Python<'py>, b: &[u8]) -> Option<Bound<'py, PyAny>> {
    if b.len() > SHORT_STR {
        return Some(PyString::new(py, std::str::from_utf8(b).ok()?).into_any());
    }
    // FNV-1a.
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h = (h ^ u32::from(x)).wrapping_mul(0x0100_0193);
    }
    let i = h as usize & (STRING_SLOTS - 1);
    STRINGS
        .try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.is_empty() {
                cache.resize_with(STRING_SLOTS, || None);
            }
            if let Some(r) = &cache[i] {
                if &r.bytes[..usize::from(r.len)] == b {
                    return Some(r.obj.bind(py).clone().into_any());
                }
            }
            let s = PyString::new(py, std::str::from_utf8(b).ok()?);
            let mut bytes = [0u8; SHORT_STR];
            bytes[..b.len()].copy_from_slice(b);
            cache[i] = Some(Remembered {
                len: b.len() as u8,
                bytes,
                obj: s.clone().unbind(),
            });
            Some(s.into_any())
        })
        .ok()
        .flatten()
}

/// Reads `n` bytes at `*at`.
fn take<'a>(data: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = data.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

fn le(data: &[u8], at: &mut usize, width: usize) -> Option<usize> {
    let mut b = [0u8; 8];
    b[..width].copy_from_slice(take(data, at, width)?);
    usize::try_from(u64::from_le_bytes(b)).ok()
}

/// The object pickled in `data`, or `None` to leave it to `pickle.loads`.
pub(crate) fn decode<'py>(py: Python<'py>, data: &[u8]) -> Option<Bound<'py, PyAny>> {
    let mut stack: Vec<Bound<'py, PyAny>> = Vec::with_capacity(16);
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: Vec<Bound<'py, PyAny>> = Vec::new();
    let mut at = 0;
    loop {
        let code = *data.get(at)?;
        at += 1;
        match code {
            op::PROTO => at += 1,
            op::FRAME => at += 8,
            op::NONE => stack.push(PyNone::get(py).to_owned().into_any()),
            op::NEWTRUE => stack.push(PyBool::new(py, true).to_owned().into_any()),
            op::NEWFALSE => stack.push(PyBool::new(py, false).to_owned().into_any()),
            op::BININT1 => {
                let v = i64::from(take(data, &mut at, 1)?[0]);
                stack.push(v.into_pyobject(py).ok()?.into_any());
            }
            op::BININT2 => {
                let b = take(data, &mut at, 2)?;
                let v = i64::from(u16::from_le_bytes([b[0], b[1]]));
                stack.push(v.into_pyobject(py).ok()?.into_any());
            }
            op::BININT => {
                let b = take(data, &mut at, 4)?;
                let v = i64::from(i32::from_le_bytes(b.try_into().ok()?));
                stack.push(v.into_pyobject(py).ok()?.into_any());
            }
            op::LONG1 => {
                let n = usize::from(take(data, &mut at, 1)?[0]);
                if n == 0 || n > 8 {
                    return None;
                }
                let b = take(data, &mut at, n)?;
                let fill = if b[n - 1] & 0x80 != 0 { 0xff } else { 0 };
                let mut w = [fill; 8];
                w[..n].copy_from_slice(b);
                stack.push(i64::from_le_bytes(w).into_pyobject(py).ok()?.into_any());
            }
            op::BINFLOAT => {
                let b = take(data, &mut at, 8)?;
                let v = f64::from_be_bytes(b.try_into().ok()?);
                stack.push(PyFloat::new(py, v).into_any());
            }
            op::SHORT_BINUNICODE | op::BINUNICODE | op::BINUNICODE8 => {
                let width = match code {
                    op::SHORT_BINUNICODE => 1,
                    op::BINUNICODE => 4,
                    _ => 8,
                };
                let n = le(data, &mut at, width)?;
                stack.push(string(py, take(data, &mut at, n)?)?);
            }
            op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 => {
                let width = match code {
                    op::SHORT_BINBYTES => 1,
                    op::BINBYTES => 4,
                    _ => 8,
                };
                let n = le(data, &mut at, width)?;
                stack.push(PyBytes::new(py, take(data, &mut at, n)?).into_any());
            }
            op::EMPTY_TUPLE => stack.push(PyTuple::empty(py).into_any()),
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(code - op::TUPLE1 + 1);
                let from = stack.len().checked_sub(n)?;
                let t = PyTuple::new(py, stack.drain(from..)).ok()?;
                stack.push(t.into_any());
            }
            op::MARK => marks.push(stack.len()),
            op::TUPLE => {
                let from = marks.pop().filter(|&m| m <= stack.len())?;
                let t = PyTuple::new(py, stack.drain(from..)).ok()?;
                stack.push(t.into_any());
            }
            op::EMPTY_LIST => stack.push(PyList::empty(py).into_any()),
            op::APPEND => {
                let item = stack.pop()?;
                stack
                    .last()?
                    .cast_exact::<PyList>()
                    .ok()?
                    .append(item)
                    .ok()?;
            }
            op::APPENDS => {
                let from = marks.pop().filter(|&m| m <= stack.len())?;
                let at = from.checked_sub(1)?;
                let list = stack.get(at)?.cast_exact::<PyList>().ok()?.clone();
                // A list only the stack holds (not memoized, not filled yet) is made
                // anew at its final size, without growing it item by item.
                // SAFETY: `list` is a live object (held by the stack and by `list`).
                let holders = unsafe { pyo3::ffi::Py_REFCNT(list.as_ptr()) };
                if list.is_empty() && holders == 2 {
                    let made = PyList::new(py, stack.drain(from..)).ok()?;
                    stack[at] = made.into_any();
                } else {
                    for item in stack.drain(from..) {
                        list.append(item).ok()?;
                    }
                }
            }
            op::EMPTY_DICT => stack.push(PyDict::new(py).into_any()),
            op::SETITEM => {
                let v = stack.pop()?;
                let k = stack.pop()?;
                stack
                    .last()?
                    .cast_exact::<PyDict>()
                    .ok()?
                    .set_item(k, v)
                    .ok()?;
            }
            op::SETITEMS => {
                let from = marks.pop().filter(|&m| m <= stack.len())?;
                let dict = stack
                    .get(from.checked_sub(1)?)?
                    .cast_exact::<PyDict>()
                    .ok()?
                    .clone();
                if !stack.len().checked_sub(from)?.is_multiple_of(2) {
                    return None;
                }
                let mut items = stack.drain(from..);
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    dict.set_item(k, v).ok()?;
                }
            }
            op::MEMOIZE => memo.push(stack.last()?.clone()),
            op::BINGET => {
                let i = usize::from(take(data, &mut at, 1)?[0]);
                stack.push(memo.get(i)?.clone());
            }
            op::LONG_BINGET => {
                let i = le(data, &mut at, 4)?;
                stack.push(memo.get(i)?.clone());
            }
            op::STOP => {
                return match (stack.len(), marks.is_empty(), at == data.len()) {
                    (1, true, true) => stack.pop(),
                    _ => None,
                };
            }
            _ => return None,
        }
    }
}
