//! `SharedDict` and `SharedList`: the Rust core's shared containers as Python's
//! `MutableMapping` and `MutableSequence` (the Python layer adds the mixins and
//! pickling).
//!
//! Keys are `str`, `bytes` or `int` (a `bool` counts as its `int`, as in a dict), stored
//! as their MessagePack encoding, which is what a Rust `SharedDict<String, _>` or
//! `SharedDict<i64, _>` stores too. Values follow the container's codec: `"pickle"`
//! (the callables given at creation), `"msgpack"` (None, bool, int, float, str, bytes,
//! list, tuple and dict, converted here) or `"raw"` (bytes-like in, `bytes` out).
//!
//! Two shortcuts keep small values fast. Scalars (None, bool, int, float, str, bytes)
//! are pickled and unpickled here, as the shortest valid pickle, without calling
//! `pickle`. And a dict keeps the immutable values it decoded in a per-handle cache,
//! valid while the container's update counter (bumped by every update of any process)
//! has not moved: reading an unchanged entry again costs one atomic load and a Python
//! dict lookup. Mutable values are decoded afresh on every read, as from a manager.

use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyIndexError, PyKeyError, PyOSError, PyTypeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PySlice, PyString, PyTuple};
use rmpv::Value;
use shoal::collections::{CollectionError, Format, RawDict, RawList};
use shoal::shm::ShmError;

fn format_of(codec: &str) -> PyResult<Format> {
    Ok(match codec {
        "pickle" => Format::Pickle,
        "msgpack" => Format::MessagePack,
        "raw" => Format::Raw,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown codec {other:?}: shared containers store values as \"pickle\", \"msgpack\" or \"raw\""
            )))
        }
    })
}

fn codec_name(format: Format) -> &'static str {
    match format {
        Format::Pickle => "pickle",
        Format::MessagePack => "msgpack",
        Format::Raw => "raw",
        Format::Json => "json",
        _ => "bincode",
    }
}

/// The kind of the operating-system error at the root of `e`, if any.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

fn error(e: CollectionError) -> PyErr {
    let msg = e.to_string();
    match io_kind(&e) {
        Some(std::io::ErrorKind::NotFound) => return PyFileNotFoundError::new_err((2, msg)),
        Some(std::io::ErrorKind::AlreadyExists) => return PyFileExistsError::new_err((17, msg)),
        _ => {}
    }
    match e {
        CollectionError::Shm {
            source: ShmError::InvalidName { .. },
            ..
        } => PyValueError::new_err(msg),
        CollectionError::IndexOutOfRange { .. } => PyIndexError::new_err(msg),
        CollectionError::WrongFormat { .. }
        | CollectionError::Codec { .. }
        | CollectionError::TooLarge { .. } => PyValueError::new_err(msg),
        _ => PyOSError::new_err(msg),
    }
}

/// The stored form of a key: its MessagePack encoding.
fn encode_key(key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let value = if let Ok(s) = key.cast::<PyString>() {
        Value::String(s.to_cow()?.into_owned().into())
    } else if let Ok(b) = key.cast::<PyBytes>() {
        Value::Binary(b.as_bytes().to_vec())
    } else if key.is_instance_of::<PyInt>() {
        int_value(key)?
    } else {
        return Err(PyTypeError::new_err(format!(
            "shared dict keys must be str, bytes or int, not {}",
            key.get_type().name()?
        )));
    };
    let mut out = Vec::with_capacity(16);
    rmpv::encode::write_value(&mut out, &value).expect("writing to a Vec cannot fail");
    Ok(out)
}

fn int_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(i) = obj.extract::<i64>() {
        Ok(Value::from(i))
    } else if let Ok(u) = obj.extract::<u64>() {
        Ok(Value::from(u))
    } else {
        Err(PyValueError::new_err(
            "integers in shared containers must fit in 64 bits (-2**63 to 2**64 - 1)",
        ))
    }
}

fn decode_key(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    let value = read_value(bytes)?;
    match value {
        Value::String(_) | Value::Binary(_) | Value::Integer(_) => to_python(py, &value),
        other => Err(PyValueError::new_err(format!(
            "a stored key is not a str, bytes or int but {other}"
        ))),
    }
}

pub(crate) fn read_value(bytes: &[u8]) -> PyResult<Value> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value(&mut rest).map_err(|e| {
        PyValueError::new_err(format!(
            "could not decode a {}-byte MessagePack value: {e}",
            bytes.len()
        ))
    })?;
    if !rest.is_empty() {
        return Err(PyValueError::new_err(format!(
            "{} bytes were left over after a {}-byte MessagePack value",
            rest.len(),
            bytes.len()
        )));
    }
    Ok(value)
}

pub(crate) fn to_msgpack(obj: &Bound<'_, PyAny>, depth: u32) -> PyResult<Value> {
    if depth > 512 {
        return Err(PyValueError::new_err(
            "a value nested deeper than 512 levels cannot be stored as MessagePack",
        ));
    }
    Ok(if obj.is_none() {
        Value::Nil
    } else if let Ok(b) = obj.cast::<PyBool>() {
        Value::Boolean(b.is_true())
    } else if obj.is_instance_of::<PyInt>() {
        int_value(obj)?
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        Value::F64(f.value())
    } else if let Ok(s) = obj.cast::<PyString>() {
        Value::String(s.to_cow()?.into_owned().into())
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        Value::Binary(b.as_bytes().to_vec())
    } else if let Ok(l) = obj.cast::<PyList>() {
        Value::Array(
            l.iter()
                .map(|x| to_msgpack(&x, depth + 1))
                .collect::<PyResult<_>>()?,
        )
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        Value::Array(
            t.iter()
                .map(|x| to_msgpack(&x, depth + 1))
                .collect::<PyResult<_>>()?,
        )
    } else if let Ok(d) = obj.cast::<PyDict>() {
        Value::Map(
            d.iter()
                .map(|(k, v)| Ok((to_msgpack(&k, depth + 1)?, to_msgpack(&v, depth + 1)?)))
                .collect::<PyResult<_>>()?,
        )
    } else {
        return Err(PyTypeError::new_err(format!(
            "a {} cannot be stored as MessagePack (None, bool, int, float, str, bytes, list, tuple and dict can)",
            obj.get_type().name()?
        )));
    })
}

pub(crate) fn to_python(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Nil => py.None(),
        Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => n.into_pyobject(py)?.into_any().unbind(),
            (None, Some(n)) => n.into_pyobject(py)?.into_any().unbind(),
            _ => unreachable!("a MessagePack integer fits i64 or u64"),
        },
        Value::F32(f) => f64::from(*f).into_pyobject(py)?.into_any().unbind(),
        Value::F64(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::String(s) => match s.as_str() {
            Some(s) => PyString::new(py, s).into_any().unbind(),
            None => {
                return Err(PyValueError::new_err(
                    "a stored MessagePack string is not valid UTF-8",
                ))
            }
        },
        Value::Binary(b) => PyBytes::new(py, b).into_any().unbind(),
        Value::Array(items) => {
            let out = PyList::empty(py);
            for x in items {
                out.append(to_python(py, x)?)?;
            }
            out.into_any().unbind()
        }
        Value::Map(pairs) => {
            let out = PyDict::new(py);
            for (k, x) in pairs {
                out.set_item(to_python(py, k)?, to_python(py, x)?)?;
            }
            out.into_any().unbind()
        }
        Value::Ext(tag, _) => {
            return Err(PyValueError::new_err(format!(
                "a stored MessagePack extension (type {tag}) has no Python equivalent"
            )))
        }
    })
}

/// The pickle of a scalar written here without calling `pickle`: protocol 5's header,
/// one opcode with its argument, STOP. `pickle.loads` reads it like any other pickle
/// (framing and memo opcodes are optional); `None` for other objects.
fn quick_pickle(v: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    let mut out = vec![0x80, 5];
    if v.is_none() {
        out.push(b'N');
    } else if let Ok(b) = v.cast_exact::<PyBool>() {
        out.push(if b.is_true() { 0x88 } else { 0x89 });
    } else if v.is_exact_instance_of::<PyInt>() {
        match v.extract::<i64>() {
            Ok(n @ 0..=0xff) => out.extend_from_slice(&[b'K', n as u8]),
            Ok(n @ 0..=0xffff) => {
                out.push(b'M');
                out.extend_from_slice(&(n as u16).to_le_bytes());
            }
            Ok(n) if i32::try_from(n).is_ok() => {
                out.push(b'J');
                out.extend_from_slice(&(n as i32).to_le_bytes());
            }
            _ => return Ok(None),
        }
    } else if let Ok(f) = v.cast_exact::<PyFloat>() {
        out.push(b'G');
        out.extend_from_slice(&f.value().to_be_bytes());
    } else if let Ok(s) = v.cast_exact::<PyString>() {
        let text = s.to_cow()?;
        match u8::try_from(text.len()) {
            Ok(n) => out.extend_from_slice(&[0x8c, n]),
            Err(_) => {
                out.push(b'X');
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            }
        }
        out.extend_from_slice(text.as_bytes());
    } else if let Ok(b) = v.cast_exact::<PyBytes>() {
        let data = b.as_bytes();
        match u8::try_from(data.len()) {
            Ok(n) => out.extend_from_slice(&[b'C', n]),
            Err(_) => {
                out.push(b'B');
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            }
        }
        out.extend_from_slice(data);
    } else {
        return Ok(None);
    }
    out.push(b'.');
    Ok(Some(out))
}

/// Reads back a pickle of [`quick_pickle`]'s form; `None` for any other pickle.
fn quick_unpickle(py: Python<'_>, b: &[u8]) -> Option<Py<PyAny>> {
    let body = b.strip_prefix(&[0x80, 5])?.strip_suffix(b".")?;
    let (&op, arg) = body.split_first()?;
    let sized = |len_bytes: usize| -> Option<&[u8]> {
        let (len, rest) = arg.split_at_checked(len_bytes)?;
        let mut n = [0u8; 8];
        n[..len_bytes].copy_from_slice(len);
        (rest.len() as u64 == u64::from_le_bytes(n)).then_some(rest)
    };
    Some(match op {
        b'N' if arg.is_empty() => py.None(),
        0x88 if arg.is_empty() => PyBool::new(py, true).to_owned().into_any().unbind(),
        0x89 if arg.is_empty() => PyBool::new(py, false).to_owned().into_any().unbind(),
        b'K' if arg.len() == 1 => i64::from(arg[0])
            .into_pyobject(py)
            .ok()?
            .into_any()
            .unbind(),
        b'M' if arg.len() == 2 => i64::from(u16::from_le_bytes(arg.try_into().ok()?))
            .into_pyobject(py)
            .ok()?
            .into_any()
            .unbind(),
        b'J' if arg.len() == 4 => i64::from(i32::from_le_bytes(arg.try_into().ok()?))
            .into_pyobject(py)
            .ok()?
            .into_any()
            .unbind(),
        b'G' if arg.len() == 8 => f64::from_be_bytes(arg.try_into().ok()?)
            .into_pyobject(py)
            .ok()?
            .into_any()
            .unbind(),
        0x8c => PyString::new(py, std::str::from_utf8(sized(1)?).ok()?)
            .into_any()
            .unbind(),
        b'X' => PyString::new(py, std::str::from_utf8(sized(4)?).ok()?)
            .into_any()
            .unbind(),
        b'C' => PyBytes::new(py, sized(1)?).into_any().unbind(),
        b'B' => PyBytes::new(py, sized(4)?).into_any().unbind(),
        _ => return None,
    })
}

/// Whether a value is immutable all the way down, so that the same object can be
/// handed out again (a cached read) without another reader seeing a change.
fn immutable(v: &Bound<'_, PyAny>) -> bool {
    v.is_none()
        || v.is_exact_instance_of::<PyBool>()
        || v.is_exact_instance_of::<PyInt>()
        || v.is_exact_instance_of::<PyFloat>()
        || v.is_exact_instance_of::<PyString>()
        || v.is_exact_instance_of::<PyBytes>()
}

/// Keys a cache may hold: those whose hashing and equality Python defines exactly as
/// their encoding compares (`True == 1`, `"a" != b"a"`).
fn cacheable_key(k: &Bound<'_, PyAny>) -> bool {
    k.is_exact_instance_of::<PyString>()
        || k.is_exact_instance_of::<PyBytes>()
        || k.is_exact_instance_of::<PyInt>()
        || k.is_exact_instance_of::<PyBool>()
}

/// Values this process decoded, valid while the dict's update counter stays at
/// `version` (even): any update by any process empties it.
struct ReadCache {
    version: u64,
    map: Option<Py<PyDict>>,
}

/// Entries a read cache holds at most.
const CACHE_LIMIT: usize = 4096;

/// How values become bytes and back.
struct Values {
    format: Format,
    dumps: Option<Py<PyAny>>,
    loads: Option<Py<PyAny>>,
}

impl Values {
    fn new(format: Format, dumps: Option<Py<PyAny>>, loads: Option<Py<PyAny>>) -> PyResult<Values> {
        if format == Format::Pickle && (dumps.is_none() || loads.is_none()) {
            return Err(PyValueError::new_err(
                "a pickled shared container needs dumps and loads",
            ));
        }
        match format {
            Format::Pickle | Format::MessagePack | Format::Raw => {}
            other => {
                return Err(PyValueError::new_err(format!(
                    "this shared container stores {} values, which Python cannot read (pickle, msgpack and raw can be)",
                    other.name()
                )))
            }
        }
        Ok(Values {
            format,
            dumps,
            loads,
        })
    }

    fn encode(&self, v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        match self.format {
            Format::Pickle => {
                if let Some(b) = quick_pickle(v)? {
                    return Ok(b);
                }
                let dumps = self.dumps.as_ref().expect("checked at creation");
                let b = dumps.bind(v.py()).call1((v,))?;
                Ok(b.cast::<PyBytes>()?.as_bytes().to_vec())
            }
            Format::MessagePack => {
                let mut out = Vec::new();
                rmpv::encode::write_value(&mut out, &to_msgpack(v, 0)?)
                    .expect("writing to a Vec cannot fail");
                Ok(out)
            }
            _ => {
                if let Ok(b) = v.cast::<PyBytes>() {
                    return Ok(b.as_bytes().to_vec());
                }
                v.extract::<Vec<u8>>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "a raw shared container stores bytes, not {}",
                        v.get_type()
                            .name()
                            .map_or_else(|_| "?".to_owned(), |n| n.to_string())
                    ))
                })
            }
        }
    }

    fn decode(&self, py: Python<'_>, b: &[u8]) -> PyResult<Py<PyAny>> {
        match self.format {
            Format::Pickle => {
                if let Some(v) = quick_unpickle(py, b) {
                    return Ok(v);
                }
                let loads = self.loads.as_ref().expect("checked at creation");
                Ok(loads.bind(py).call1((PyBytes::new(py, b),))?.unbind())
            }
            Format::MessagePack => to_python(py, &read_value(b)?),
            _ => Ok(PyBytes::new(py, b).into_any().unbind()),
        }
    }
}

/// A dict in shared memory (see the module docs for keys and values).
#[pyclass(module = "shoal._shoal", subclass, frozen)]
pub(crate) struct SharedDict {
    dict: RawDict,
    values: Values,
    cache: std::sync::Mutex<ReadCache>,
}

impl SharedDict {
    /// The value of `key` from this process's read cache, when nothing changed since
    /// it was decoded.
    fn cached(&self, py: Python<'_>, key: &Bound<'_, PyAny>, version: u64) -> Option<Py<PyAny>> {
        if version % 2 == 1 || !cacheable_key(key) {
            return None;
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.version != version {
            return None;
        }
        let map = cache.map.as_ref()?.bind(py);
        map.get_item(key).ok().flatten().map(Bound::unbind)
    }

    /// Reads `key`, through the cache when it can.
    fn lookup(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        // Read before the lookup: a value cached under this count is at least as new.
        let version = self.dict.version();
        if let Some(v) = self.cached(py, key, version) {
            return Ok(Some(v));
        }
        let k = encode_key(key)?;
        let Some(bytes) = self.dict.get(&k).map_err(error)? else {
            return Ok(None);
        };
        let value = self.values.decode(py, &bytes)?;
        if version.is_multiple_of(2) && cacheable_key(key) && immutable(value.bind(py)) {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.version != version || cache.map.is_none() {
                cache.version = version;
                cache.map = Some(PyDict::new(py).unbind());
            }
            let map = cache.map.as_ref().expect("set above").bind(py);
            if map.len() < CACHE_LIMIT {
                map.set_item(key, &value)?;
            }
        }
        Ok(Some(value))
    }
}

#[pymethods]
impl SharedDict {
    /// Creates the dict `name` (a generated name when `None`), or opens it when
    /// `create` is false (`codec=None`: whatever it holds).
    #[new]
    #[pyo3(signature = (name = None, codec = Some("pickle"), create = true, dumps = None, loads = None))]
    fn new(
        name: Option<&str>,
        codec: Option<&str>,
        create: bool,
        dumps: Option<Py<PyAny>>,
        loads: Option<Py<PyAny>>,
    ) -> PyResult<SharedDict> {
        let want = codec.map(format_of).transpose()?;
        let dict = if create {
            RawDict::create(name, want.unwrap_or(Format::Pickle))
        } else {
            let name =
                name.ok_or_else(|| PyValueError::new_err("opening a dict needs its name"))?;
            RawDict::open(name, want)
        }
        .map_err(error)?;
        let values = Values::new(dict.format(), dumps, loads)?;
        Ok(SharedDict {
            dict,
            values,
            cache: std::sync::Mutex::new(ReadCache {
                version: 1,
                map: None,
            }),
        })
    }

    /// The dict's name, for `SharedDict.open` in any process.
    #[getter]
    fn name(&self) -> &str {
        self.dict.name()
    }

    /// How values are stored: "pickle", "msgpack" or "raw".
    #[getter]
    fn codec(&self) -> &'static str {
        codec_name(self.dict.format())
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.lookup(py, key)?
            .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    /// The value of `key`, or `default`.
    #[pyo3(signature = (key, default = None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        Ok(self
            .lookup(py, key)?
            .unwrap_or_else(|| default.unwrap_or_else(|| py.None())))
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (k, v) = (encode_key(key)?, self.values.encode(value)?);
        self.dict.set(&k, &v).map_err(error)
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = encode_key(key)?;
        match self.dict.remove(&k).map_err(error)? {
            Some(_) => Ok(()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Removes `key` and returns its value in one step; `default` (when given) for a
    /// missing key, else KeyError.
    #[pyo3(signature = (key, *default))]
    fn pop(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "pop expected at most 2 arguments, got {}",
                default.len() + 1
            )));
        }
        let k = encode_key(key)?;
        match self.dict.remove(&k).map_err(error)? {
            Some(v) => self.values.decode(py, &v),
            None if default.len() == 1 => Ok(default.get_item(0)?.unbind()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Stores `value` under `key` unless it has one, in one step; returns the value.
    #[pyo3(signature = (key, default = None))]
    fn setdefault(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let k = encode_key(key)?;
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let fresh = self.values.encode(&default)?;
        let mut existed = None;
        self.dict
            .update(&k, |cur| {
                existed = cur.clone();
                Some(cur.unwrap_or(fresh))
            })
            .map_err(error)?;
        match existed {
            Some(v) => self.values.decode(py, &v),
            None => Ok(default.unbind()),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        match encode_key(key) {
            Ok(k) => self.dict.contains_key(&k).map_err(error),
            // A key of another type is in no shared dict, as a list is in no dict.
            Err(e) if e.is_instance_of::<PyTypeError>(key.py()) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn __len__(&self) -> PyResult<usize> {
        self.dict.len().map_err(error)
    }

    /// Removes every entry at once.
    fn clear(&self) -> PyResult<()> {
        self.dict.clear().map_err(error)
    }

    /// A snapshot of the keys, taken under the lock.
    fn _keys(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let keys = self.dict.keys().map_err(error)?;
        keys.iter().map(|k| decode_key(py, k)).collect()
    }

    /// A snapshot of the `(key, value)` pairs, taken under the lock.
    fn _items(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        let entries = self.dict.entries().map_err(error)?;
        entries
            .iter()
            .map(|(k, v)| Ok((decode_key(py, k)?, self.values.decode(py, v)?)))
            .collect()
    }

    /// Stores every `(key, value)` pair under one hold of the lock.
    fn _set_many(&self, pairs: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>) -> PyResult<()> {
        let encoded = pairs
            .iter()
            .map(|(k, v)| Ok((encode_key(k)?, self.values.encode(v)?)))
            .collect::<PyResult<Vec<_>>>()?;
        self.dict
            .extend(encoded.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
            .map_err(error)
    }
}

/// A list in shared memory (values as in [`SharedDict`]).
#[pyclass(module = "shoal._shoal", subclass, frozen)]
pub(crate) struct SharedList {
    list: RawList,
    values: Values,
}

impl SharedList {
    /// `index` as a position, counting from the end when negative.
    fn position(&self, index: isize) -> PyResult<usize> {
        if index >= 0 {
            return Ok(index as usize);
        }
        let len = self.list.len().map_err(error)?;
        let at = len as isize + index;
        if at < 0 {
            return Err(PyIndexError::new_err(format!(
                "index {index} is out of range for a shared list of {len} items"
            )));
        }
        Ok(at as usize)
    }
}

#[pymethods]
impl SharedList {
    /// Creates the list `name` (a generated name when `None`), or opens it when
    /// `create` is false.
    #[new]
    #[pyo3(signature = (name = None, codec = Some("pickle"), create = true, dumps = None, loads = None))]
    fn new(
        name: Option<&str>,
        codec: Option<&str>,
        create: bool,
        dumps: Option<Py<PyAny>>,
        loads: Option<Py<PyAny>>,
    ) -> PyResult<SharedList> {
        let want = codec.map(format_of).transpose()?;
        let list = if create {
            RawList::create(name, want.unwrap_or(Format::Pickle))
        } else {
            let name =
                name.ok_or_else(|| PyValueError::new_err("opening a list needs its name"))?;
            RawList::open(name, want)
        }
        .map_err(error)?;
        let values = Values::new(list.format(), dumps, loads)?;
        Ok(SharedList { list, values })
    }

    /// The list's name, for `SharedList.open` in any process.
    #[getter]
    fn name(&self) -> &str {
        self.list.name()
    }

    /// How items are stored: "pickle", "msgpack" or "raw".
    #[getter]
    fn codec(&self) -> &'static str {
        codec_name(self.list.format())
    }

    fn __len__(&self) -> PyResult<usize> {
        self.list.len().map_err(error)
    }

    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if let Ok(slice) = index.cast::<PySlice>() {
            let len = self.list.len().map_err(error)?;
            let ind = slice.indices(len as isize)?;
            let out = PyList::empty(py);
            if ind.step == 1 {
                let end = ind.stop.max(ind.start) as usize;
                for b in self.list.slice(ind.start as usize, end).map_err(error)? {
                    out.append(self.values.decode(py, &b)?)?;
                }
            } else {
                let all = self.list.to_vec().map_err(error)?;
                let mut i = ind.start;
                for _ in 0..ind.slicelength {
                    if let Some(b) = all.get(i as usize) {
                        out.append(self.values.decode(py, b)?)?;
                    }
                    i += ind.step;
                }
            }
            return Ok(out.into_any().unbind());
        }
        let i = self.position(index.extract::<isize>()?)?;
        let b = self.list.get(i).map_err(error)?;
        self.values.decode(py, &b)
    }

    fn __setitem__(&self, index: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.position(index)?;
        let v = self.values.encode(value)?;
        self.list.set(i, &v).map(drop).map_err(error)
    }

    fn __delitem__(&self, index: isize) -> PyResult<()> {
        let i = self.position(index)?;
        self.list.remove(i).map(drop).map_err(error)
    }

    /// Inserts `value` before `index` (clamped to the list, as `list.insert`).
    fn insert(&self, index: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = self.values.encode(value)?;
        let len = self.list.len().map_err(error)? as isize;
        let at = if index < 0 {
            (len + index).max(0)
        } else {
            index.min(len)
        };
        self.list.insert(at as usize, &v).map_err(error)
    }

    /// Appends `value`.
    fn append(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = self.values.encode(value)?;
        self.list.push(&v).map_err(error)
    }

    /// Appends every item of `values` under one hold of the lock.
    fn extend(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let encoded = values
            .try_iter()?
            .map(|v| self.values.encode(&v?))
            .collect::<PyResult<Vec<_>>>()?;
        self.list
            .extend(encoded.iter().map(Vec::as_slice))
            .map_err(error)
    }

    /// Removes and returns the item at `index` (the last by default) in one step.
    #[pyo3(signature = (index = -1))]
    fn pop(&self, py: Python<'_>, index: isize) -> PyResult<Py<PyAny>> {
        let b = if index == -1 {
            self.list
                .pop()
                .map_err(error)?
                .ok_or_else(|| PyIndexError::new_err("pop from an empty shared list"))?
        } else {
            self.list.remove(self.position(index)?).map_err(error)?
        };
        self.values.decode(py, &b)
    }

    /// Removes every item at once.
    fn clear(&self) -> PyResult<()> {
        self.list.clear().map_err(error)
    }

    /// A snapshot of the items, in order, taken under the lock.
    fn _items(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let items = self.list.to_vec().map_err(error)?;
        items.iter().map(|b| self.values.decode(py, b)).collect()
    }
}

/// `obj` as MessagePack bytes (None, bool, int, float, str, bytes, list, tuple and
/// dict; structs of a Rust program's `Codec::MessagePack` are maps of field names).
#[pyfunction]
pub(crate) fn msgpack_dumps<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let value = to_msgpack(obj, 0)?;
    let mut out = Vec::with_capacity(64);
    rmpv::encode::write_value(&mut out, &value).expect("writing to a Vec cannot fail");
    Ok(PyBytes::new(py, &out))
}

/// The Python object of one whole MessagePack value (maps become dicts, arrays
/// lists); `ValueError` for bytes that are not one.
#[pyfunction]
pub(crate) fn msgpack_loads(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    to_python(py, &read_value(data)?)
}
