//! `list` (and `Array`): indices, slices and the list's methods.

use serde_pickle::Value;

use crate::manager::args::{bind, integer, items, truthy, Kwds};
use crate::manager::pickle;
use crate::manager::CallError;

use super::{int, none, Reply};

/// A list index or a slice (a `slice` arrives as its `(start, stop, step)` tuple).
pub(super) enum Index {
    At(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
}

pub(super) fn index_of(v: Value) -> Result<Index, CallError> {
    let opt = |v: &Value| -> Result<Option<i64>, CallError> {
        match v {
            Value::None => Ok(None),
            v => integer(v, "slice indices").map(Some),
        }
    };
    match v {
        Value::Tuple(parts) if parts.len() == 3 => Ok(Index::Slice(
            opt(&parts[0])?,
            opt(&parts[1])?,
            opt(&parts[2])?,
        )),
        v @ (Value::I64(_) | Value::Bool(_) | Value::Int(_)) => {
            Ok(Index::At(integer(&v, "list index")?))
        }
        other => Err(CallError::type_error(format!(
            "list indices must be integers or slices, not {}",
            pickle::type_name(&other)
        ))),
    }
}

/// Python's `slice.indices(len)`: the positions a slice takes, in order.
pub(super) fn slice_positions(
    len: usize,
    start: Option<i64>,
    stop: Option<i64>,
    step: Option<i64>,
) -> Result<Vec<usize>, CallError> {
    let len = len as i64;
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(CallError::value_error("slice step cannot be zero"));
    }
    let clamp = |i: Option<i64>, default: i64| -> i64 {
        match i {
            None => default,
            Some(i) if i < 0 => {
                let i = i + len;
                if i < 0 {
                    if step < 0 {
                        -1
                    } else {
                        0
                    }
                } else {
                    i
                }
            }
            Some(i) if i >= len => {
                if step < 0 {
                    len - 1
                } else {
                    len
                }
            }
            Some(i) => i,
        }
    };
    let (start, stop) = if step > 0 {
        (clamp(start, 0), clamp(stop, len))
    } else {
        (clamp(start, len - 1), clamp(stop, -1))
    };
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i as usize);
        i += step;
    }
    Ok(out)
}

pub(super) fn position(len: usize, i: i64, what: &str) -> Result<usize, CallError> {
    let j = if i < 0 { i + len as i64 } else { i };
    if j < 0 || j >= len as i64 {
        return Err(CallError::index_error(what));
    }
    Ok(j as usize)
}

pub(super) fn list_call(
    l: &mut Vec<Value>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
) -> Result<Reply, CallError> {
    let find = |l: &[Value], v: &Value| l.iter().position(|x| pickle::eq(x, v));
    match method {
        "__getitem__" => {
            let [i] = bind(method, args, kwds, ["index"], 1)?;
            match index_of(i.unwrap_or(Value::None))? {
                Index::At(i) => Ok(l[position(l.len(), i, "list index out of range")?]
                    .clone()
                    .into()),
                Index::Slice(a, b, c) => Ok(Value::List(
                    slice_positions(l.len(), a, b, c)?
                        .into_iter()
                        .map(|p| l[p].clone())
                        .collect(),
                )
                .into()),
            }
        }
        "__setitem__" => {
            let [i, v] = bind(method, args, kwds, ["index", "value"], 2)?;
            let v = v.unwrap_or(Value::None);
            match index_of(i.unwrap_or(Value::None))? {
                Index::At(i) => {
                    let p = position(l.len(), i, "list assignment index out of range")?;
                    l[p] = v;
                }
                Index::Slice(a, b, c) => {
                    let new = items(v)?;
                    if c.unwrap_or(1) == 1 {
                        let len = l.len() as i64;
                        let start = slice_positions(l.len(), a, None, None)?
                            .first()
                            .map_or(len, |&p| p as i64);
                        let positions = slice_positions(l.len(), a, b, None)?;
                        let end = positions.last().map_or(start, |&p| p as i64 + 1);
                        l.splice(start as usize..end as usize, new);
                    } else {
                        let positions = slice_positions(l.len(), a, b, c)?;
                        if positions.len() != new.len() {
                            return Err(CallError::value_error(format!(
                                "attempt to assign sequence of size {} to extended slice of size {}",
                                new.len(),
                                positions.len()
                            )));
                        }
                        for (p, v) in positions.into_iter().zip(new) {
                            l[p] = v;
                        }
                    }
                }
            }
            none()
        }
        "__delitem__" => {
            let [i] = bind(method, args, kwds, ["index"], 1)?;
            match index_of(i.unwrap_or(Value::None))? {
                Index::At(i) => {
                    let p = position(l.len(), i, "list assignment index out of range")?;
                    l.remove(p);
                }
                Index::Slice(a, b, c) => {
                    let mut positions = slice_positions(l.len(), a, b, c)?;
                    positions.sort_unstable();
                    for p in positions.into_iter().rev() {
                        l.remove(p);
                    }
                }
            }
            none()
        }
        "__len__" => Ok(int(l.len()).into()),
        "__contains__" => {
            let [v] = bind(method, args, kwds, ["value"], 1)?;
            Ok(Value::Bool(find(l, &v.unwrap_or(Value::None)).is_some()).into())
        }
        "__add__" => {
            let [other] = bind(method, args, kwds, ["other"], 1)?;
            match other {
                Some(Value::List(other)) => {
                    Ok(Value::List(l.iter().cloned().chain(other).collect()).into())
                }
                other => Err(CallError::type_error(format!(
                    "can only concatenate list (not \"{}\") to list",
                    pickle::type_name(&other.unwrap_or(Value::None))
                ))),
            }
        }
        "__mul__" | "__rmul__" | "__imul__" => {
            let [n] = bind(method, args, kwds, ["n"], 1)?;
            let n = integer(
                &n.unwrap_or(Value::None),
                "can't multiply sequence by non-int",
            )?
            .max(0) as usize;
            let repeated: Vec<Value> = l.iter().cloned().cycle().take(l.len() * n).collect();
            if method == "__imul__" {
                *l = repeated;
                none()
            } else {
                Ok(Value::List(repeated).into())
            }
        }
        "__reversed__" => {
            bind::<0>(method, args, kwds, [], 0)?;
            Ok(Value::List(l.iter().rev().cloned().collect()).into())
        }
        "append" => {
            let [v] = bind(method, args, kwds, ["object"], 1)?;
            l.push(v.unwrap_or(Value::None));
            none()
        }
        "extend" => {
            let [v] = bind(method, args, kwds, ["iterable"], 1)?;
            l.extend(items(v.unwrap_or(Value::None))?);
            none()
        }
        "insert" => {
            let [i, v] = bind(method, args, kwds, ["index", "object"], 2)?;
            let len = l.len() as i64;
            let i = integer(&i.unwrap_or(Value::None), "index")?;
            let p = if i < 0 { (i + len).max(0) } else { i.min(len) };
            l.insert(p as usize, v.unwrap_or(Value::None));
            none()
        }
        "pop" => {
            let [i] = bind(method, args, kwds, ["index"], 0)?;
            if l.is_empty() {
                return Err(CallError::index_error("pop from empty list"));
            }
            let i = match i {
                Some(v) => integer(&v, "index")?,
                None => -1,
            };
            let p = position(l.len(), i, "pop index out of range")?;
            Ok(l.remove(p).into())
        }
        "remove" => {
            let [v] = bind(method, args, kwds, ["value"], 1)?;
            match find(l, &v.unwrap_or(Value::None)) {
                Some(p) => {
                    l.remove(p);
                    none()
                }
                None => Err(CallError::value_error("list.remove(x): x not in list")),
            }
        }
        "index" => {
            let [v, start, stop] = bind(method, args, kwds, ["value", "start", "stop"], 1)?;
            let v = v.unwrap_or(Value::None);
            let bound = |b: Option<Value>, default: usize| -> Result<usize, CallError> {
                match b {
                    None => Ok(default),
                    Some(b) => {
                        let i = integer(&b, "index")?;
                        let len = l.len() as i64;
                        Ok(if i < 0 { (i + len).max(0) } else { i.min(len) } as usize)
                    }
                }
            };
            let (start, stop) = (bound(start, 0)?, bound(stop, l.len())?);
            l.get(start..stop.max(start))
                .and_then(|part| find(part, &v))
                .map(|p| int(p + start).into())
                .ok_or_else(|| {
                    CallError::value_error(format!("{} is not in list", pickle::repr(&v)))
                })
        }
        "count" => {
            let [v] = bind(method, args, kwds, ["value"], 1)?;
            let v = v.unwrap_or(Value::None);
            Ok(int(l.iter().filter(|x| pickle::eq(x, &v)).count()).into())
        }
        "reverse" => {
            bind::<0>(method, args, kwds, [], 0)?;
            l.reverse();
            none()
        }
        _ => {
            // "sort"
            let [key, reverse] = bind(method, Vec::new(), kwds, ["key", "reverse"], 0)?;
            if !args.is_empty() {
                return Err(CallError::type_error(
                    "sort() takes no positional arguments",
                ));
            }
            if key.is_some_and(|k| k != Value::None) {
                return Err(CallError::type_error(
                    "sort(key=...) is not supported by a Rust manager: its objects hold plain data, not functions",
                ));
            }
            let mut failed = None;
            l.sort_by(|a, b| {
                pickle::cmp(a, b).unwrap_or_else(|e| {
                    failed.get_or_insert(e);
                    std::cmp::Ordering::Equal
                })
            });
            if let Some(e) = failed {
                return Err(CallError::type_error(e));
            }
            if reverse.as_ref().is_some_and(truthy) {
                l.reverse();
            }
            none()
        }
    }
}
