//! `dict`: a dict that keeps its keys in insertion order, and its methods.

use std::collections::BTreeMap;

use serde_pickle::{HashableValue, Value};

use crate::manager::args::{bind, hashable, items, Kwds};
use crate::manager::pickle::{self, Wire};
use crate::manager::CallError;

use super::{int, none, Reply};

/// A dict that keeps its keys in insertion order, as Python's does.
#[derive(Default)]
pub(crate) struct Dict {
    pub(super) map: BTreeMap<HashableValue, (u64, Value)>,
    pub(super) order: BTreeMap<u64, HashableValue>,
    next: u64,
}

impl Dict {
    pub(super) fn insert(&mut self, k: HashableValue, v: Value) {
        if let Some(slot) = self.map.get_mut(&k) {
            slot.1 = v;
            return;
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, k.clone());
        self.map.insert(k, (seq, v));
    }

    pub(super) fn remove(&mut self, k: &HashableValue) -> Option<Value> {
        let (seq, v) = self.map.remove(k)?;
        self.order.remove(&seq);
        Some(v)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&HashableValue, &Value)> {
        self.order.values().map(|k| (k, &self.map[k].1))
    }

    /// The dict for the wire, in insertion order.
    pub(super) fn to_wire(&self) -> Wire {
        Wire::Dict(self.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    pub(super) fn update(&mut self, other: Value) -> Result<(), CallError> {
        match other {
            Value::Dict(d) => {
                for (k, v) in d {
                    self.insert(k, v);
                }
            }
            other => {
                for (i, pair) in items(other)?.into_iter().enumerate() {
                    match pair {
                        Value::List(mut kv) | Value::Tuple(mut kv) if kv.len() == 2 => {
                            let v = kv.pop().unwrap_or(Value::None);
                            let k = kv.pop().unwrap_or(Value::None);
                            self.insert(hashable(k)?, v);
                        }
                        other => {
                            return Err(CallError::value_error(format!(
                            "dictionary update sequence element #{i} has length {}; 2 is required",
                            items(other).map_or(0, |v| v.len())
                        )))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn repr(&self) -> String {
        let parts: Vec<String> = self
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}: {}",
                    pickle::repr(&k.clone().into_value()),
                    pickle::repr(v)
                )
            })
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

pub(super) fn dict_call(
    d: &mut Dict,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
) -> Result<Reply, CallError> {
    let one = |args, kwds| -> Result<HashableValue, CallError> {
        let [k] = bind(method, args, kwds, ["key"], 1)?;
        hashable(k.unwrap_or(Value::None))
    };
    match method {
        "__getitem__" => {
            let k = one(args, kwds)?;
            match d.map.get(&k) {
                Some((_, v)) => Ok(v.clone().into()),
                None => Err(CallError::key_error(k.into_value())),
            }
        }
        "__setitem__" => {
            let [k, v] = bind(method, args, kwds, ["key", "value"], 2)?;
            d.insert(
                hashable(k.unwrap_or(Value::None))?,
                v.unwrap_or(Value::None),
            );
            none()
        }
        "__delitem__" => {
            let k = one(args, kwds)?;
            match d.remove(&k) {
                Some(_) => none(),
                None => Err(CallError::key_error(k.into_value())),
            }
        }
        "__contains__" => {
            let [k] = bind(method, args, kwds, ["key"], 1)?;
            // An unhashable value is in no dict (Python raises TypeError here too).
            let k = hashable(k.unwrap_or(Value::None))?;
            Ok(Value::Bool(d.map.contains_key(&k)).into())
        }
        "__len__" => Ok(int(d.map.len()).into()),
        "__iter__" | "keys" => {
            bind::<0>(method, args, kwds, [], 0)?;
            let keys: Vec<Value> = d.iter().map(|(k, _)| k.clone().into_value()).collect();
            if method == "keys" {
                Ok(Value::List(keys).into())
            } else {
                Ok(Reply::Iterator(keys))
            }
        }
        "values" => Ok(Value::List(d.iter().map(|(_, v)| v.clone()).collect()).into()),
        "items" => Ok(Value::List(
            d.iter()
                .map(|(k, v)| Value::Tuple(vec![k.clone().into_value(), v.clone()]))
                .collect(),
        )
        .into()),
        "get" => {
            let [k, default] = bind(method, args, kwds, ["key", "default"], 1)?;
            let k = hashable(k.unwrap_or(Value::None))?;
            Ok(d.map
                .get(&k)
                .map(|(_, v)| v.clone())
                .or(default)
                .unwrap_or(Value::None)
                .into())
        }
        "setdefault" => {
            let [k, default] = bind(method, args, kwds, ["key", "default"], 1)?;
            let k = hashable(k.unwrap_or(Value::None))?;
            if let Some((_, v)) = d.map.get(&k) {
                return Ok(v.clone().into());
            }
            let v = default.unwrap_or(Value::None);
            d.insert(k, v.clone());
            Ok(v.into())
        }
        "pop" => {
            let [k, default] = bind(method, args, kwds, ["key", "default"], 1)?;
            let k = hashable(k.unwrap_or(Value::None))?;
            match (d.remove(&k), default) {
                (Some(v), _) | (None, Some(v)) => Ok(v.into()),
                (None, None) => Err(CallError::key_error(k.into_value())),
            }
        }
        "popitem" => {
            bind::<0>(method, args, kwds, [], 0)?;
            let last = d.order.last_key_value().map(|(_, k)| k.clone());
            match last {
                Some(k) => {
                    let v = d.remove(&k).unwrap_or(Value::None);
                    Ok(Value::Tuple(vec![k.into_value(), v]).into())
                }
                None => Err(CallError::key_error(Value::String(
                    "popitem(): dictionary is empty".into(),
                ))),
            }
        }
        "update" => {
            let [other] = bind(method, args, Kwds::new(), ["other"], 0)?;
            if let Some(other) = other {
                d.update(other)?;
            }
            for (k, v) in kwds {
                d.insert(HashableValue::String(k), v);
            }
            none()
        }
        "clear" => {
            bind::<0>(method, args, kwds, [], 0)?;
            *d = Dict::default();
            none()
        }
        _ => {
            // "copy"
            bind::<0>(method, args, kwds, [], 0)?;
            Ok(Reply::Wire(d.to_wire()))
        }
    }
}
