//! A pickler for the plain data most messages are: `None`, `bool`, `int` (64-bit),
//! `float`, `str`, `bytes`, and `tuple`, `list` and `dict` of them, of those exact
//! types. It writes the opcodes `pickle.dumps(obj, 5)` would (without its `FRAME` and
//! `MEMOIZE`, which loading does not need), in a fraction of the time: no pickler
//! object, no memo table, no lookups of `__reduce_ex__`.
//!
//! An [`EncodedList`] (a list whose items were pickled already) is written as the
//! list it stands for.
//!
//! Anything else, and a list or dict met twice (shared or cyclic: the memo would have
//! kept it one object), makes [`encode`] give up, and the standard pickler pickles the
//! whole message. Nothing here runs Python code.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::{op, EncodedList};

/// Nesting deeper than this is left to the standard pickler.
const MAX_DEPTH: usize = 32;
/// Lists and dicts past this many are left to the standard pickler (each is checked
/// against those seen before).
const MAX_CONTAINERS: usize = 64;

/// The pickle of `obj` in `out` (from `PROTO 5` to `STOP`); false (with `out` in any
/// state) when `obj` is not plain data.
pub(crate) fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.extend_from_slice(&[op::PROTO, 5]);
    let mut seen = Vec::new();
    if value(obj, out, &mut seen, 0).is_none() {
        return false;
    }
    out.push(op::STOP);
    true
}

/// A list pickled one item at a time, as its items are made (the results of a chunk
/// of pool tasks, each dropped once written): `EMPTY_LIST MARK` items `APPENDS`.
pub(crate) struct ListWriter {
    out: Vec<u8>,
    seen: Vec<usize>,
}

impl ListWriter {
    pub(crate) fn new() -> ListWriter {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&[op::EMPTY_LIST, op::MARK]);
        ListWriter {
            out,
            seen: Vec::new(),
        }
    }

    /// Appends `obj` as the next item; false, with the list unchanged, when `obj` is
    /// not plain data.
    pub(crate) fn push(&mut self, obj: &Bound<'_, PyAny>) -> bool {
        let mark = self.out.len();
        if value(obj, &mut self.out, &mut self.seen, 1).is_some() {
            return true;
        }
        self.out.truncate(mark);
        false
    }

    /// The list's opcodes, from `EMPTY_LIST` to `APPENDS`.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out.push(op::APPENDS);
        self.out
    }
}

/// Appends `obj`'s opcodes; `None` to give up.
fn value(
    obj: &Bound<'_, PyAny>,
    out: &mut Vec<u8>,
    seen: &mut Vec<usize>,
    depth: usize,
) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    if obj.is_exact_instance_of::<PyInt>() {
        int(out, obj.extract::<i64>().ok()?);
    } else if obj.is_none() {
        out.push(op::NONE);
    } else if let Ok(s) = obj.cast_exact::<PyString>() {
        let b = s.encode_utf8().ok()?;
        sized(
            out,
            b.as_bytes(),
            op::SHORT_BINUNICODE,
            op::BINUNICODE,
            op::BINUNICODE8,
        );
    } else if let Ok(b) = obj.cast_exact::<PyBool>() {
        out.push(if b.is_true() {
            op::NEWTRUE
        } else {
            op::NEWFALSE
        });
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        out.push(op::BINFLOAT);
        out.extend_from_slice(&f.value().to_be_bytes());
    } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
        let n = t.len();
        if n == 0 {
            out.push(op::EMPTY_TUPLE);
            return Some(());
        }
        if n > 3 {
            out.push(op::MARK);
        }
        for item in t.iter() {
            value(&item, out, seen, depth + 1)?;
        }
        out.push(match n {
            1 => op::TUPLE1,
            2 => op::TUPLE2,
            3 => op::TUPLE3,
            _ => op::TUPLE,
        });
    } else if let Ok(l) = obj.cast_exact::<PyList>() {
        container(obj, seen)?;
        out.push(op::EMPTY_LIST);
        match l.len() {
            0 => {}
            1 => {
                value(&l.get_item(0).ok()?, out, seen, depth + 1)?;
                out.push(op::APPEND);
            }
            _ => {
                out.push(op::MARK);
                for item in l.iter() {
                    value(&item, out, seen, depth + 1)?;
                }
                out.push(op::APPENDS);
            }
        }
    } else if let Ok(d) = obj.cast_exact::<PyDict>() {
        container(obj, seen)?;
        out.push(op::EMPTY_DICT);
        let n = d.len();
        if n > 1 {
            out.push(op::MARK);
        }
        for (k, v) in d.iter() {
            value(&k, out, seen, depth + 1)?;
            value(&v, out, seen, depth + 1)?;
        }
        match n {
            0 => {}
            1 => out.push(op::SETITEM),
            _ => out.push(op::SETITEMS),
        }
    } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
        sized(
            out,
            b.as_bytes(),
            op::SHORT_BINBYTES,
            op::BINBYTES,
            op::BINBYTES8,
        );
    } else if let Ok(list) = obj.cast_exact::<EncodedList>() {
        out.extend_from_slice(list.get().ops());
    } else {
        return None;
    }
    Some(())
}

/// Notes a list or dict; `None` when it was met before (shared, or a cycle) or there
/// are too many to check.
fn container(obj: &Bound<'_, PyAny>, seen: &mut Vec<usize>) -> Option<()> {
    let id = obj.as_ptr() as usize;
    if seen.len() >= MAX_CONTAINERS || seen.contains(&id) {
        return None;
    }
    seen.push(id);
    Some(())
}

/// A length-prefixed string of bytes with the opcode for its length's width.
fn sized(out: &mut Vec<u8>, data: &[u8], short: u8, long: u8, long8: u8) {
    let n = data.len();
    if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[short, n]);
    } else if let Ok(n) = u32::try_from(n) {
        out.push(long);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(long8);
        out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    out.extend_from_slice(data);
}

/// An integer as the standard pickler writes it.
fn int(out: &mut Vec<u8>, v: i64) {
    if let Ok(b) = u8::try_from(v) {
        out.extend_from_slice(&[op::BININT1, b]);
    } else if let Ok(h) = u16::try_from(v) {
        out.push(op::BININT2);
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(op::BININT);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        // LONG1: the shortest little-endian two's complement.
        let bytes = v.to_le_bytes();
        let mut n = 8;
        while n > 1 {
            let top = bytes[n - 1];
            let next_sign = bytes[n - 2] & 0x80;
            if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
                n -= 1;
            } else {
                break;
            }
        }
        out.extend_from_slice(&[op::LONG1, n as u8]);
        out.extend_from_slice(&bytes[..n]);
    }
}
