//! Binding a call's positional and keyword arguments to parameter names, with Python's
//! `TypeError` texts, and reading the common argument types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_pickle::{HashableValue, Value};

use crate::manager::pickle::type_name;
use crate::manager::CallError;

/// The keyword arguments of a call.
pub type Kwds = BTreeMap<String, Value>;

/// Binds `args` and `kwds` to `names`, of which the first `required` must be given.
pub(crate) fn bind<const N: usize>(
    method: &str,
    args: Vec<Value>,
    mut kwds: Kwds,
    names: [&str; N],
    required: usize,
) -> Result<[Option<Value>; N], CallError> {
    if args.len() > N {
        return Err(CallError::type_error(format!(
            "{method}() takes at most {N} argument{} ({} given)",
            if N == 1 { "" } else { "s" },
            args.len()
        )));
    }
    let mut out: [Option<Value>; N] = std::array::from_fn(|_| None);
    let given = args.len();
    for (slot, v) in out.iter_mut().zip(args) {
        *slot = Some(v);
    }
    for (i, name) in names.iter().enumerate() {
        if let Some(v) = kwds.remove(*name) {
            if i < given {
                return Err(CallError::type_error(format!(
                    "{method}() got multiple values for argument '{name}'"
                )));
            }
            out[i] = Some(v);
        }
    }
    if let Some(extra) = kwds.keys().next() {
        return Err(CallError::type_error(format!(
            "{method}() got an unexpected keyword argument '{extra}'"
        )));
    }
    if let Some(missing) = out.iter().take(required).position(Option::is_none) {
        return Err(CallError::type_error(format!(
            "{method}() missing required argument '{}'",
            names[missing]
        )));
    }
    Ok(out)
}

/// A dict key or set element.
pub(crate) fn hashable(v: Value) -> Result<HashableValue, CallError> {
    let name = type_name(&v);
    v.into_hashable()
        .map_err(|_| CallError::type_error(format!("unhashable type: '{name}'")))
}

/// Python's truth of a plain value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::None => false,
        Value::Bool(b) => *b,
        Value::I64(i) => *i != 0,
        Value::Int(i) => i != &num_bigint::BigInt::from(0),
        Value::F64(f) => *f != 0.0,
        Value::Bytes(b) => !b.is_empty(),
        Value::String(s) => !s.is_empty(),
        Value::List(v) | Value::Tuple(v) => !v.is_empty(),
        Value::Set(s) | Value::FrozenSet(s) => !s.is_empty(),
        Value::Dict(d) => !d.is_empty(),
    }
}

/// An integer argument (Python accepts `bool` too).
pub(crate) fn integer(v: &Value, what: &str) -> Result<i64, CallError> {
    match v {
        Value::I64(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Int(_) => Err(CallError::new(
            "builtins",
            "OverflowError",
            vec![Value::String(format!("{what} is too large"))],
        )),
        other => Err(CallError::type_error(format!(
            "{what} must be an integer, not {}",
            type_name(other)
        ))),
    }
}

/// A number of seconds (`None` for no limit); negative numbers are `None` when
/// `negative_is_forever` (a lock's `-1`), an error else.
pub(crate) fn seconds(
    v: Option<&Value>,
    negative_is_forever: bool,
) -> Result<Option<Duration>, CallError> {
    let secs = match v {
        None | Some(Value::None) => return Ok(None),
        Some(Value::I64(i)) => *i as f64,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::F64(f)) => *f,
        Some(other) => {
            return Err(CallError::type_error(format!(
                "a timeout must be a number, not {}",
                type_name(other)
            )))
        }
    };
    if secs < 0.0 || secs.is_nan() {
        if negative_is_forever {
            return Ok(None);
        }
        return Err(CallError::value_error(
            "'timeout' must be a non-negative number",
        ));
    }
    Ok(Some(
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
    ))
}

/// The items of an iterable argument (list, tuple, set, dict keys, bytes, str).
pub(crate) fn items(v: Value) -> Result<Vec<Value>, CallError> {
    match v {
        Value::List(v) | Value::Tuple(v) => Ok(v),
        Value::Set(s) | Value::FrozenSet(s) => {
            Ok(s.into_iter().map(HashableValue::into_value).collect())
        }
        Value::Dict(d) => Ok(d.into_keys().map(HashableValue::into_value).collect()),
        Value::Bytes(b) => Ok(b.into_iter().map(|x| Value::I64(i64::from(x))).collect()),
        Value::String(s) => Ok(s.chars().map(|c| Value::String(c.to_string())).collect()),
        other => Err(CallError::type_error(format!(
            "'{}' object is not iterable",
            type_name(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_like_python() {
        let mut kw = Kwds::new();
        kw.insert("timeout".into(), Value::F64(0.5));
        let [block, timeout] =
            bind("get", vec![Value::Bool(true)], kw, ["block", "timeout"], 0).unwrap();
        assert_eq!(block, Some(Value::Bool(true)));
        assert_eq!(timeout, Some(Value::F64(0.5)));
        let e = bind("get", vec![], Kwds::new(), ["key"], 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TypeError: get() missing required argument 'key'"
        );
        let mut kw = Kwds::new();
        kw.insert("nope".into(), Value::None);
        let e = bind("get", vec![], kw, ["key"], 0).unwrap_err();
        assert!(e.to_string().contains("unexpected keyword argument 'nope'"));
        let e = bind("f", vec![Value::None, Value::None], Kwds::new(), ["a"], 0).unwrap_err();
        assert!(e.to_string().contains("at most 1 argument (2 given)"));
    }

    #[test]
    fn reads_timeouts() {
        assert_eq!(seconds(None, false).unwrap(), None);
        assert_eq!(
            seconds(Some(&Value::F64(1.5)), false).unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(seconds(Some(&Value::I64(-1)), true).unwrap(), None);
        assert!(seconds(Some(&Value::I64(-1)), false).is_err());
        assert!(hashable(Value::List(vec![])).is_err());
    }
}
