//! The pickles of the manager protocol: a decoder for plain data (serde-pickle's, set to
//! keep what it cannot resolve as data), a small encoder that also writes the few
//! Python objects a reply needs (exceptions, tokens, namespaces), and Python's `repr`,
//! `==` and `<` over plain values.

use std::cmp::Ordering;

use num_bigint::BigInt;
use serde_pickle::{DeOptions, HashableValue, Value};

/// What a reply is made of: plain values, tuples of parts, and Python objects rebuilt
/// by the receiving interpreter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Wire {
    /// Plain data.
    Value(Value),
    /// A tuple of parts.
    Tuple(Vec<Wire>),
    /// A dict with its keys in this order (a [`Value::Dict`] is in key order).
    Dict(Vec<(HashableValue, Value)>),
    /// `module.name(*args)`: an exception instance (`GLOBAL`, the arguments, `REDUCE`).
    Call {
        module: String,
        name: String,
        args: Vec<Value>,
    },
    /// An instance of `module.name` restored from `state` (`NEWOBJ`, then `BUILD`):
    /// a `Token` (state: its tuple) or a `Namespace` (state: its `__dict__`).
    Object {
        module: &'static str,
        name: &'static str,
        state: Value,
    },
}

/// Encodes `wire` as a protocol-3 pickle (which every Python 3 reads).
pub(crate) fn encode(wire: &Wire) -> Vec<u8> {
    let mut out = vec![0x80, 3];
    write_wire(&mut out, wire);
    out.push(b'.');
    out
}

fn write_wire(out: &mut Vec<u8>, wire: &Wire) {
    match wire {
        Wire::Value(v) => write_value(out, v),
        Wire::Tuple(parts) => {
            out.push(b'(');
            for p in parts {
                write_wire(out, p);
            }
            out.push(b't');
        }
        Wire::Dict(pairs) => write_dict(out, pairs.iter().map(|(k, v)| (k, v))),
        Wire::Call { module, name, args } => {
            write_global(out, module, name);
            write_tuple(out, args);
            out.push(b'R');
        }
        Wire::Object {
            module,
            name,
            state,
        } => {
            write_global(out, module, name);
            out.push(b')');
            out.push(0x81); // NEWOBJ
            write_value(out, state);
            out.push(b'b'); // BUILD
        }
    }
}

fn write_global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn write_tuple(out: &mut Vec<u8>, items: &[Value]) {
    out.push(b'(');
    for v in items {
        write_value(out, v);
    }
    out.push(b't');
}

fn write_long(out: &mut Vec<u8>, i: &BigInt) {
    let bytes = i.to_signed_bytes_le();
    if let Ok(n) = u8::try_from(bytes.len()) {
        out.extend_from_slice(&[0x8a, n]); // LONG1
    } else {
        out.push(0x8b); // LONG4
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&bytes);
}

/// A dict of `pairs`, in their order: `EMPTY_DICT`, then (unless there are none)
/// `MARK`, the keys and values, `SETITEMS`.
fn write_dict<'a>(
    out: &mut Vec<u8>,
    pairs: impl ExactSizeIterator<Item = (&'a HashableValue, &'a Value)>,
) {
    out.push(b'}');
    if pairs.len() > 0 {
        out.push(b'(');
        for (k, v) in pairs {
            write_hashable(out, k);
            write_value(out, v);
        }
        out.push(b'u');
    }
}

fn write_hashable(out: &mut Vec<u8>, v: &HashableValue) {
    write_value(out, &v.clone().into_value());
}

/// Writes one plain value.
pub(crate) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::None => out.push(b'N'),
        Value::Bool(true) => out.push(0x88),
        Value::Bool(false) => out.push(0x89),
        Value::I64(i) => {
            if let Ok(b) = u8::try_from(*i) {
                out.extend_from_slice(&[b'K', b]);
            } else if let Ok(h) = u16::try_from(*i) {
                out.push(b'M');
                out.extend_from_slice(&h.to_le_bytes());
            } else if let Ok(w) = i32::try_from(*i) {
                out.push(b'J');
                out.extend_from_slice(&w.to_le_bytes());
            } else {
                write_long(out, &BigInt::from(*i));
            }
        }
        Value::Int(i) => write_long(out, i),
        Value::F64(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Bytes(b) => {
            if let Ok(n) = u8::try_from(b.len()) {
                out.extend_from_slice(&[b'C', n]);
            } else {
                out.push(b'B');
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            }
            out.extend_from_slice(b);
        }
        Value::String(s) => {
            out.push(b'X');
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                for v in items {
                    write_value(out, v);
                }
                out.push(b'e');
            }
        }
        Value::Tuple(items) => {
            if items.is_empty() {
                out.push(b')');
            } else {
                write_tuple(out, items);
            }
        }
        Value::Dict(map) => write_dict(out, map.iter()),
        Value::Set(items) | Value::FrozenSet(items) => {
            let name = if matches!(v, Value::Set(_)) {
                "set"
            } else {
                "frozenset"
            };
            write_global(out, "builtins", name);
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                for k in items {
                    write_hashable(out, k);
                }
                out.push(b'e');
            }
            out.push(0x85); // TUPLE1
            out.push(b'R');
        }
    }
}

/// Decodes a pickle of plain data. Instances of other classes become their restore
/// state (a `Token` becomes its `(typeid, address, id)` tuple, a `slice` its
/// `(start, stop, step)`), and references to other globals become `None`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, serde_pickle::Error> {
    serde_pickle::value_from_slice(
        bytes,
        DeOptions::new()
            .keep_restore_state()
            .replace_unresolved_globals()
            .replace_recursive_structures(),
    )
}

/// The first global a pickle names (`module`, `name`): in a `('#ERROR', exception)`
/// reply, the exception's class. `None` when the stream names none or is malformed.
pub(crate) fn first_global(bytes: &[u8]) -> Option<(String, String)> {
    globals(bytes)?.into_iter().next()
}

/// Every global a pickle names (`module`, `name`), in order; `None` when the stream is
/// malformed.
pub(crate) fn globals(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut pos = 0;
    let mut strings: Vec<Option<String>> = Vec::new(); // recent pushes, strings or not
    let mut memo: std::collections::HashMap<u64, Option<String>> = Default::default();
    let take = |pos: &mut usize, n: usize| -> Option<&[u8]> {
        let s = bytes.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(s)
    };
    let line = |pos: &mut usize| -> Option<String> {
        let rest = bytes.get(*pos..)?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        *pos += end + 1;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    fn le(b: &[u8]) -> u64 {
        b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x))
    }
    loop {
        let op = *bytes.get(pos)?;
        pos += 1;
        match op {
            b'.' => return Some(found),
            b'c' => {
                let module = line(&mut pos)?;
                let name = line(&mut pos)?;
                found.push((module, name));
                strings.push(None);
            }
            0x93 => {
                // STACK_GLOBAL: module and name are the last two strings pushed.
                let name = strings.pop()??;
                let module = strings.pop()??;
                found.push((module, name));
                strings.push(None);
            }
            0x8c => {
                let n = *take(&mut pos, 1)?.first()? as usize;
                let s = take(&mut pos, n)?;
                strings.push(Some(String::from_utf8_lossy(s).into_owned()));
            }
            b'X' => {
                let n = le(take(&mut pos, 4)?) as usize;
                let s = take(&mut pos, n)?;
                strings.push(Some(String::from_utf8_lossy(s).into_owned()));
            }
            0x8d => {
                let n = usize::try_from(le(take(&mut pos, 8)?)).ok()?;
                let s = take(&mut pos, n)?;
                strings.push(Some(String::from_utf8_lossy(s).into_owned()));
            }
            0x94 => {
                // MEMOIZE: the top of the stack under the next index.
                let idx = memo.len() as u64;
                memo.insert(idx, strings.last().cloned().flatten());
            }
            b'q' | b'r' => {
                let n = if op == b'q' { 1 } else { 4 };
                let idx = le(take(&mut pos, n)?);
                memo.insert(idx, strings.last().cloned().flatten());
            }
            b'h' | b'j' => {
                let n = if op == b'h' { 1 } else { 4 };
                let idx = le(take(&mut pos, n)?);
                strings.push(memo.get(&idx).cloned().flatten());
            }
            // No argument.
            b'(' | b'0' | b'1' | b'2' | b'N' | b'R' | b'b' | b'a' | b'e' | b'd' | b'}' | b']'
            | b')' | b'l' | b't' | b's' | b'u' | b'o' | b'Q' | 0x81 | 0x85 | 0x86 | 0x87 | 0x88
            | 0x89 | 0x8f | 0x90 | 0x91 | 0x92 | 0x97 | 0x98 => {
                strings.push(None);
            }
            0x80 | b'K' | 0x82 => {
                take(&mut pos, 1)?;
                strings.push(None);
            }
            b'M' | 0x83 => {
                take(&mut pos, 2)?;
                strings.push(None);
            }
            b'J' | 0x84 => {
                take(&mut pos, 4)?;
                strings.push(None);
            }
            b'G' | 0x95 => {
                take(&mut pos, 8)?;
            }
            b'U' | b'C' | 0x8a => {
                let n = *take(&mut pos, 1)?.first()? as usize;
                take(&mut pos, n)?;
                strings.push(None);
            }
            b'T' | b'B' | 0x8b => {
                let n = le(take(&mut pos, 4)?) as usize;
                take(&mut pos, n)?;
                strings.push(None);
            }
            0x8e | 0x96 => {
                let n = usize::try_from(le(take(&mut pos, 8)?)).ok()?;
                take(&mut pos, n)?;
                strings.push(None);
            }
            b'I' | b'L' | b'F' | b'S' | b'V' | b'p' | b'g' | b'P' => {
                line(&mut pos)?;
                strings.push(None);
            }
            b'i' => {
                let module = line(&mut pos)?;
                let name = line(&mut pos)?;
                found.push((module, name));
                strings.push(None);
            }
            _ => return None,
        }
    }
}

/// The name of a value's Python type (`'int'`, `'str'`...), for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::None => "NoneType",
        Value::Bool(_) => "bool",
        Value::I64(_) | Value::Int(_) => "int",
        Value::F64(_) => "float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "str",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Set(_) => "set",
        Value::FrozenSet(_) => "frozenset",
        Value::Dict(_) => "dict",
    }
}

fn repr_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn repr_bytes(out: &mut String, b: &[u8]) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push('b');
    out.push(quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote as char);
}

fn repr_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let s = format!("{f:?}");
    // Rust writes `1e-7` and `1e20`; Python `1e-07` and `1e+20`.
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("+", e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Python's `repr` of a plain value.
pub(crate) fn repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v);
    out
}

fn join<T>(out: &mut String, items: impl Iterator<Item = T>, mut each: impl FnMut(&mut String, T)) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        each(out, item);
    }
}

fn write_repr(out: &mut String, v: &Value) {
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::I64(i) => out.push_str(&i.to_string()),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::F64(f) => out.push_str(&repr_float(*f)),
        Value::Bytes(b) => repr_bytes(out, b),
        Value::String(s) => repr_str(out, s),
        Value::List(items) => {
            out.push('[');
            join(out, items.iter(), write_repr);
            out.push(']');
        }
        Value::Tuple(items) => {
            out.push('(');
            join(out, items.iter(), write_repr);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Value::Set(items) | Value::FrozenSet(items) => {
            let frozen = matches!(v, Value::FrozenSet(_));
            if items.is_empty() {
                out.push_str(if frozen { "frozenset()" } else { "set()" });
                return;
            }
            if frozen {
                out.push_str("frozenset(");
            }
            out.push('{');
            join(out, items.iter(), |o, k| {
                write_repr(o, &k.clone().into_value())
            });
            out.push('}');
            if frozen {
                out.push(')');
            }
        }
        Value::Dict(map) => {
            out.push('{');
            join(out, map.iter(), |o, (k, v)| {
                write_repr(o, &k.clone().into_value());
                o.push_str(": ");
                write_repr(o, v);
            });
            out.push('}');
        }
    }
}

/// The scalar values that compare as Python's do through [`HashableValue`]'s order
/// (numbers across `bool`, `int` and `float`; strings; bytes; `None`).
fn scalar(v: &Value) -> Option<HashableValue> {
    match v {
        Value::None
        | Value::Bool(_)
        | Value::I64(_)
        | Value::Int(_)
        | Value::F64(_)
        | Value::String(_)
        | Value::Bytes(_) => v.clone().into_hashable().ok(),
        _ => None,
    }
}

fn is_number(v: &Value) -> bool {
    matches!(
        v,
        Value::Bool(_) | Value::I64(_) | Value::Int(_) | Value::F64(_)
    )
}

/// Python's `a == b` over plain values.
pub(crate) fn eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| eq(v, w)))
        }
        (Value::Set(x) | Value::FrozenSet(x), Value::Set(y) | Value::FrozenSet(y)) => x == y,
        _ => {
            let same_kind = std::mem::discriminant(a) == std::mem::discriminant(b)
                || (is_number(a) && is_number(b));
            same_kind
                && match (scalar(a), scalar(b)) {
                    (Some(x), Some(y)) => x == y,
                    _ => false,
                }
        }
    }
}

/// Python's ordering of `a` and `b` (`a < b`), or the `TypeError` text Python gives
/// when they do not compare.
pub(crate) fn cmp(a: &Value, b: &Value) -> Result<Ordering, String> {
    let unorderable = || {
        format!(
            "'<' not supported between instances of '{}' and '{}'",
            type_name(a),
            type_name(b)
        )
    };
    match (a, b) {
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !eq(p, q) {
                    return cmp(p, q);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        (Value::String(_), Value::String(_)) | (Value::Bytes(_), Value::Bytes(_)) => {
            Ok(scalar(a).cmp(&scalar(b)))
        }
        _ if is_number(a) && is_number(b) => match (a, b) {
            (Value::F64(x), _) if x.is_nan() => Ok(Ordering::Equal),
            (_, Value::F64(y)) if y.is_nan() => Ok(Ordering::Equal),
            _ => Ok(scalar(a).cmp(&scalar(b))),
        },
        _ => Err(unorderable()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn roundtrip(v: Value) {
        let bytes = encode(&Wire::Value(v.clone()));
        assert_eq!(decode(&bytes).unwrap(), v, "{}", repr(&v));
    }

    #[test]
    fn plain_values_survive_the_encoder_and_the_decoder() {
        for i in [
            0i64,
            255,
            256,
            65535,
            65536,
            -1,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            roundtrip(Value::I64(i));
        }
        roundtrip(Value::Int(BigInt::from(i64::MAX) * 1000));
        roundtrip(Value::F64(-2.5));
        roundtrip(Value::Bytes(vec![7; 300]));
        roundtrip(Value::String("héllo".repeat(100)));
        roundtrip(Value::List(vec![Value::None, Value::Bool(true)]));
        roundtrip(Value::Tuple(vec![]));
        roundtrip(Value::Tuple(vec![Value::I64(1)]));
        let mut d = BTreeMap::new();
        d.insert(HashableValue::String("k".into()), Value::List(vec![]));
        roundtrip(Value::Dict(d));
        let set: std::collections::BTreeSet<_> = [HashableValue::I64(3)].into();
        roundtrip(Value::Set(set.clone()));
        roundtrip(Value::FrozenSet(set));
    }

    #[test]
    fn an_exception_is_a_global_called_with_its_arguments() {
        let wire = Wire::Tuple(vec![
            Wire::Value(Value::String("#ERROR".into())),
            Wire::Call {
                module: "builtins".into(),
                name: "KeyError".into(),
                args: vec![Value::String("x".into())],
            },
        ]);
        let bytes = encode(&wire);
        assert_eq!(
            first_global(&bytes),
            Some(("builtins".to_owned(), "KeyError".to_owned()))
        );
        // The decoder keeps the arguments of what it cannot build.
        let v = decode(&bytes).unwrap();
        assert_eq!(
            v,
            Value::Tuple(vec![
                Value::String("#ERROR".into()),
                Value::Tuple(vec![Value::String("x".into())])
            ])
        );
    }

    #[test]
    fn the_scanner_follows_protocol_4_memo_references() {
        // pickle.dumps(('#ERROR', queue.Empty()), protocol=4) on CPython 3.11.
        let bytes = b"\x80\x04\x95\"\x00\x00\x00\x00\x00\x00\x00\x8c\x06#ERROR\x94\x8c\x06_queue\x94\x8c\x05Empty\x94\x93\x94)R\x94\x86\x94.";
        assert_eq!(
            first_global(bytes),
            Some(("_queue".to_owned(), "Empty".to_owned()))
        );
        assert_eq!(first_global(b"\x80\x04K\x01."), None);
        assert_eq!(globals(b"\x80\x04K\x01."), Some(vec![]));
        assert_eq!(globals(b"\x80\x04K"), None); // no STOP: malformed
    }

    #[test]
    fn repr_follows_python() {
        let v = Value::List(vec![
            Value::String("it's".into()),
            Value::String("a\n".into()),
            Value::Bytes(b"\x00b".to_vec()),
            Value::F64(1e-7),
            Value::F64(2.0),
            Value::Tuple(vec![Value::None]),
        ]);
        assert_eq!(
            repr(&v),
            r#"["it's", 'a\n', b'\x00b', 1e-07, 2.0, (None,)]"#
        );
        assert_eq!(repr(&Value::Set(Default::default())), "set()");
    }

    #[test]
    fn equality_and_order_follow_python() {
        assert!(eq(&Value::I64(1), &Value::F64(1.0)));
        assert!(eq(&Value::Bool(true), &Value::I64(1)));
        assert!(!eq(&Value::String("1".into()), &Value::I64(1)));
        assert!(!eq(
            &Value::List(vec![Value::I64(1)]),
            &Value::Tuple(vec![Value::I64(1)])
        ));
        assert_eq!(cmp(&Value::I64(2), &Value::F64(1.5)), Ok(Ordering::Greater));
        assert_eq!(
            cmp(
                &Value::Tuple(vec![Value::I64(1), Value::I64(2)]),
                &Value::Tuple(vec![Value::I64(1)])
            ),
            Ok(Ordering::Greater)
        );
        assert_eq!(
            cmp(&Value::String("a".into()), &Value::I64(1)).unwrap_err(),
            "'<' not supported between instances of 'str' and 'int'"
        );
    }
}
