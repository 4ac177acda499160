//! The objects a Rust server holds: the standard type ids' plain-data objects and the
//! user's [`Managed`] types.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use serde_pickle::{HashableValue, Value};

use crate::manager::args::{bind, integer, items, seconds, Kwds};
use crate::manager::pickle::{self, Wire};
use crate::manager::CallError;

mod blocking;
mod dict;
mod list;

use blocking::{
    barrier_call, condition_call, lock_call, queue_call, semaphore_call, BarrierState, Blocking,
    ConditionState, LockState, QueueState, SemaphoreState,
};
use dict::{dict_call, Dict};
use list::list_call;

/// A type a Rust manager server holds for its clients, registered with
/// [`Server::register`](crate::manager::Server::register).
///
/// Every call of an exposed method comes here with its arguments as plain values (what
/// Python's pickles of plain data give: numbers, strings, bytes, lists, tuples, dicts,
/// sets, `None`); an error is raised in the client as the Python exception it names.
/// Calls on one object are serialised (the server holds a lock around `call`), so
/// methods should not block.
///
/// # Examples
/// ```
/// use shoal::manager::{CallError, Kwds, Managed, Value};
///
/// #[derive(Default)]
/// struct Counter(i64);
///
/// impl Managed for Counter {
///     fn exposed(&self) -> &[&str] {
///         &["add", "get"]
///     }
///     fn call(&mut self, method: &str, args: Vec<Value>, _kwds: Kwds) -> Result<Value, CallError> {
///         match (method, args.as_slice()) {
///             ("add", [Value::I64(n)]) => self.0 += n,
///             ("add", _) => return Err(CallError::type_error("add() takes one integer")),
///             _ => {}
///         }
///         Ok(Value::I64(self.0))
///     }
/// }
///
/// let mut c = Counter::default();
/// assert_eq!(c.call("add", vec![Value::I64(2)], Kwds::new())?, Value::I64(2));
/// # Ok::<(), CallError>(())
/// ```
pub trait Managed: Send + 'static {
    /// The methods clients may call (a Python `AutoProxy` gets exactly these).
    fn exposed(&self) -> &[&str];

    /// Runs `method` (one of [`exposed`](Managed::exposed)) with the call's arguments.
    ///
    /// # Errors
    /// The exception the client raises.
    fn call(&mut self, method: &str, args: Vec<Value>, kwds: Kwds) -> Result<Value, CallError>;

    /// The object's `repr`, which a Python client's `str(proxy)` shows.
    fn repr(&self) -> String {
        "<managed object>".to_owned()
    }
}

/// The standard type ids a Rust server serves, as Python's `SyncManager` registers
/// them; [`Server::register_shared`](crate::manager::Server::register_shared) takes
/// one to serve a single object under a type id of one's own.
///
/// # Examples
/// ```
/// use shoal::manager::Builtin;
///
/// assert_eq!(Builtin::from_typeid("dict"), Some(Builtin::Dict));
/// assert_eq!(Builtin::Queue.typeid(), "Queue");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Builtin {
    /// `dict`: a dict of plain values (keys in insertion order).
    Dict,
    /// `list`.
    List,
    /// `Namespace`: attributes.
    Namespace,
    /// `Value`: one value (and its type code, kept for `repr`).
    Value,
    /// `Queue` (and `JoinableQueue`): a FIFO with an optional maximum size.
    Queue,
    /// `Lock`.
    Lock,
    /// `RLock`: reentrant, owned by the client connection that took it.
    RLock,
    /// `Event`.
    Event,
    /// `Semaphore`.
    Semaphore,
    /// `BoundedSemaphore`: a semaphore that refuses releases beyond its start value.
    BoundedSemaphore,
    /// `Condition`, over a reentrant lock of its own.
    Condition,
    /// `Barrier`.
    Barrier,
    /// `Array`: a list of numbers (and its type code, kept for `repr`).
    Array,
}

impl Builtin {
    /// Every standard type id, with the builtin serving it.
    pub(crate) const TYPEIDS: [(&'static str, Builtin); 14] = [
        ("dict", Builtin::Dict),
        ("list", Builtin::List),
        ("Namespace", Builtin::Namespace),
        ("Value", Builtin::Value),
        ("Queue", Builtin::Queue),
        ("JoinableQueue", Builtin::Queue),
        ("Lock", Builtin::Lock),
        ("RLock", Builtin::RLock),
        ("Event", Builtin::Event),
        ("Semaphore", Builtin::Semaphore),
        ("BoundedSemaphore", Builtin::BoundedSemaphore),
        ("Condition", Builtin::Condition),
        ("Barrier", Builtin::Barrier),
        ("Array", Builtin::Array),
    ];

    /// The builtin a standard type id names.
    pub fn from_typeid(typeid: &str) -> Option<Builtin> {
        Builtin::TYPEIDS
            .iter()
            .find(|(t, _)| *t == typeid)
            .map(|(_, b)| *b)
    }

    /// The standard type id.
    pub fn typeid(self) -> &'static str {
        Builtin::TYPEIDS
            .iter()
            .find(|(_, b)| *b == self)
            .map(|(t, _)| *t)
            .unwrap_or("dict")
    }
}

const DICT: &[&str] = &[
    "__contains__",
    "__delitem__",
    "__getitem__",
    "__iter__",
    "__len__",
    "__setitem__",
    "clear",
    "copy",
    "get",
    "items",
    "keys",
    "pop",
    "popitem",
    "setdefault",
    "update",
    "values",
];
const LIST: &[&str] = &[
    "__add__",
    "__contains__",
    "__delitem__",
    "__getitem__",
    "__len__",
    "__mul__",
    "__reversed__",
    "__rmul__",
    "__setitem__",
    "append",
    "count",
    "extend",
    "index",
    "insert",
    "pop",
    "remove",
    "reverse",
    "sort",
    "__imul__",
];
const NAMESPACE: &[&str] = &["__getattribute__", "__setattr__", "__delattr__"];
const VALUE: &[&str] = &["get", "set"];
const QUEUE: &[&str] = &[
    "empty",
    "full",
    "get",
    "get_nowait",
    "join",
    "put",
    "put_nowait",
    "qsize",
    "task_done",
];
const LOCK: &[&str] = &["acquire", "release"];
const EVENT: &[&str] = &["is_set", "set", "clear", "wait"];
const CONDITION: &[&str] = &["acquire", "release", "wait", "notify", "notify_all"];
const BARRIER: &[&str] = &["__getattribute__", "wait", "abort", "reset"];
const ARRAY: &[&str] = &["__len__", "__getitem__", "__setitem__"];
const ITERATOR: &[&str] = &["__next__", "send", "throw", "close"];

/// What serving a call needs to know of the caller.
pub(crate) struct Ctx<'a> {
    /// The client connection's number.
    pub(crate) conn: u64,
    /// Whether the client went away (or the server stops): blocking calls give up.
    pub(crate) abandoned: &'a dyn Fn() -> bool,
}

/// What a call gives back.
pub(crate) enum Reply {
    /// A result.
    Wire(Wire),
    /// A new iterator object, handed out as a proxy (`#PROXY`).
    Iterator(Vec<Value>),
}

impl From<Value> for Reply {
    fn from(v: Value) -> Reply {
        Reply::Wire(Wire::Value(v))
    }
}

fn none() -> Result<Reply, CallError> {
    Ok(Value::None.into())
}

fn int(n: usize) -> Value {
    Value::I64(n as i64)
}

/// One served object.
pub(crate) enum Object {
    Dict(Mutex<Dict>),
    List(Mutex<Vec<Value>>),
    Namespace(Mutex<BTreeMap<String, Value>>),
    Value(Mutex<(Value, Value)>),
    Queue(Blocking<QueueState>),
    Lock(Blocking<LockState>, bool),
    Event(Blocking<bool>),
    Semaphore(Blocking<SemaphoreState>),
    Condition(Blocking<ConditionState>),
    Barrier(Blocking<BarrierState>),
    Array(Mutex<(Value, Vec<Value>)>),
    Iterator(Mutex<VecDeque<Value>>),
    User(Mutex<Box<dyn Managed>>),
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Object {
    /// A new builtin object, from the arguments of Python's constructor.
    pub(crate) fn builtin(
        kind: Builtin,
        args: Vec<Value>,
        kwds: Kwds,
    ) -> Result<Object, CallError> {
        Ok(match kind {
            Builtin::Dict => {
                let [init] = bind("dict", args, Kwds::new(), ["mapping"], 0)?;
                let mut d = Dict::default();
                if let Some(init) = init {
                    d.update(init)?;
                }
                for (k, v) in kwds {
                    d.insert(HashableValue::String(k), v);
                }
                Object::Dict(Mutex::new(d))
            }
            Builtin::List => {
                let [init] = bind("list", args, kwds, ["iterable"], 0)?;
                Object::List(Mutex::new(init.map(items).transpose()?.unwrap_or_default()))
            }
            Builtin::Namespace => {
                if !args.is_empty() {
                    return Err(CallError::type_error(
                        "Namespace() takes keyword arguments only",
                    ));
                }
                Object::Namespace(Mutex::new(kwds))
            }
            Builtin::Value => {
                let [typecode, value, _lock] =
                    bind("Value", args, kwds, ["typecode", "value", "lock"], 2)?;
                Object::Value(Mutex::new((
                    typecode.unwrap_or(Value::None),
                    value.unwrap_or(Value::None),
                )))
            }
            Builtin::Queue => {
                let [maxsize] = bind("Queue", args, kwds, ["maxsize"], 0)?;
                let maxsize = match maxsize {
                    Some(v) => integer(&v, "maxsize")?.max(0) as usize,
                    None => 0,
                };
                Object::Queue(Blocking {
                    state: Mutex::new(QueueState {
                        items: VecDeque::new(),
                        maxsize,
                        unfinished: 0,
                    }),
                    changed: Condvar::new(),
                })
            }
            Builtin::Lock | Builtin::RLock => {
                bind::<0>("Lock", args, kwds, [], 0)?;
                Object::Lock(Blocking::default(), kind == Builtin::RLock)
            }
            Builtin::Event => {
                bind::<0>("Event", args, kwds, [], 0)?;
                Object::Event(Blocking::default())
            }
            Builtin::Semaphore | Builtin::BoundedSemaphore => {
                let [value] = bind("Semaphore", args, kwds, ["value"], 0)?;
                let value = match value {
                    Some(v) => integer(&v, "value")?,
                    None => 1,
                };
                if value < 0 {
                    return Err(CallError::value_error(
                        "semaphore initial value must be >= 0",
                    ));
                }
                let value = value as u64;
                let bound = (kind == Builtin::BoundedSemaphore).then_some(value);
                Object::Semaphore(Blocking {
                    state: Mutex::new(SemaphoreState { value, bound }),
                    changed: Condvar::new(),
                })
            }
            Builtin::Condition => {
                let [lock] = bind("Condition", args, kwds, ["lock"], 0)?;
                if lock.is_some_and(|l| l != Value::None) {
                    return Err(CallError::type_error(
                        "a Rust manager's Condition has a lock of its own: Condition(lock) is not supported",
                    ));
                }
                Object::Condition(Blocking::default())
            }
            Builtin::Barrier => {
                let [parties, action, timeout] =
                    bind("Barrier", args, kwds, ["parties", "action", "timeout"], 1)?;
                let parties = integer(&parties.unwrap_or(Value::None), "parties")?;
                if parties < 1 {
                    return Err(CallError::value_error("parties must be >= 1"));
                }
                if action.is_some_and(|a| a != Value::None) {
                    return Err(CallError::type_error(
                        "a Rust manager's Barrier takes no action: it holds plain data, not functions",
                    ));
                }
                Object::Barrier(Blocking {
                    state: Mutex::new(BarrierState {
                        parties: parties as u64,
                        count: 0,
                        round: 0,
                        broken: false,
                        reset_round: None,
                        timeout: seconds(timeout.as_ref(), false)?,
                    }),
                    changed: Condvar::new(),
                })
            }
            Builtin::Array => {
                let [typecode, sequence, _lock] =
                    bind("Array", args, kwds, ["typecode", "sequence", "lock"], 2)?;
                let items = items(sequence.unwrap_or(Value::None))?;
                Object::Array(Mutex::new((typecode.unwrap_or(Value::None), items)))
            }
        })
    }

    /// An iterator over `items`, handed out by `dict.__iter__`.
    pub(crate) fn iterator(items: Vec<Value>) -> Object {
        Object::Iterator(Mutex::new(items.into()))
    }

    /// The methods a client may call: CPython's lists, or the user type's.
    pub(crate) fn exposed(&self) -> Vec<String> {
        let names: &[&str] = match self {
            Object::Dict(_) => DICT,
            Object::List(_) => LIST,
            Object::Namespace(_) => NAMESPACE,
            Object::Value(_) => VALUE,
            Object::Queue(_) => QUEUE,
            Object::Lock(..) => LOCK,
            Object::Event(_) => EVENT,
            Object::Semaphore(_) => LOCK,
            Object::Condition(_) => CONDITION,
            Object::Barrier(_) => BARRIER,
            Object::Array(_) => ARRAY,
            Object::Iterator(_) => ITERATOR,
            Object::User(u) => return guard(u).exposed().iter().map(|s| (*s).to_owned()).collect(),
        };
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Python's `repr` of the object.
    pub(crate) fn repr(&self) -> String {
        match self {
            Object::Dict(d) => guard(d).repr(),
            Object::List(l) => pickle::repr(&Value::List(guard(l).clone())),
            Object::Namespace(ns) => namespace_repr(&guard(ns)),
            Object::Value(v) => {
                let v = guard(v);
                format!("Value({}, {})", pickle::repr(&v.0), pickle::repr(&v.1))
            }
            Object::Queue(_) => "<queue.Queue object>".to_owned(),
            Object::Lock(l, reentrant) => {
                let held = l.lock().owner.is_some();
                let kind = if *reentrant {
                    "_thread.RLock"
                } else {
                    "_thread.lock"
                };
                format!(
                    "<{} {kind} object>",
                    if held { "locked" } else { "unlocked" }
                )
            }
            Object::Event(e) => {
                format!(
                    "<threading.Event: {}>",
                    if *e.lock() { "set" } else { "unset" }
                )
            }
            Object::Semaphore(sem) => {
                format!("<threading.Semaphore: value={}>", sem.lock().value)
            }
            Object::Condition(_) => "<Condition object>".to_owned(),
            Object::Barrier(b) => {
                let b = b.lock();
                format!("<threading.Barrier: waiters={}/{}>", b.count, b.parties)
            }
            Object::Array(a) => {
                let a = guard(a);
                format!(
                    "array({}, {})",
                    pickle::repr(&a.0),
                    pickle::repr(&Value::List(a.1.clone()))
                )
            }
            Object::Iterator(_) => "<iterator object>".to_owned(),
            Object::User(u) => guard(u).repr(),
        }
    }

    /// A copy of the value (`#GETVALUE`, a Python proxy's `_getvalue()`).
    pub(crate) fn value(&self) -> Result<Wire, CallError> {
        Ok(match self {
            Object::Dict(d) => guard(d).to_wire(),
            Object::List(l) => Wire::Value(Value::List(guard(l).clone())),
            Object::Namespace(ns) => Wire::Object {
                module: "multiprocessing.managers",
                name: "Namespace",
                state: Value::Dict(
                    guard(ns)
                        .iter()
                        .map(|(k, v)| (HashableValue::String(k.clone()), v.clone()))
                        .collect(),
                ),
            },
            Object::Value(v) => Wire::Value(guard(v).1.clone()),
            Object::Array(a) => Wire::Value(Value::List(guard(a).1.clone())),
            _ => {
                return Err(CallError::type_error(
                    "a copy of this object cannot be sent: it is not plain data",
                ))
            }
        })
    }

    /// Called when the client connection `conn` ends: locks it holds are released, so
    /// that a client that died holding one does not block everyone.
    pub(crate) fn release_held_by(&self, conn: u64) {
        let release = |s: &mut LockState| {
            if s.owner == Some(conn) {
                s.owner = None;
                s.count = 0;
            }
        };
        match self {
            Object::Lock(l, _) => {
                release(&mut l.lock());
                l.changed.notify_all();
            }
            Object::Condition(c) => {
                release(&mut c.lock().lock);
                c.changed.notify_all();
            }
            _ => {}
        }
    }

    /// Whether `conn` holds this lock (or condition).
    pub(crate) fn held_by(&self, conn: u64) -> bool {
        match self {
            Object::Lock(l, _) => l.lock().owner == Some(conn),
            Object::Condition(c) => c.lock().lock.owner == Some(conn),
            _ => false,
        }
    }

    /// Runs `method`.
    pub(crate) fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        kwds: Kwds,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, CallError> {
        match self {
            Object::Dict(d) => dict_call(&mut guard(d), method, args, kwds),
            Object::List(l) => list_call(&mut guard(l), method, args, kwds),
            Object::Namespace(ns) => namespace_call(&mut guard(ns), method, args, kwds),
            Object::Value(v) => {
                let mut v = guard(v);
                match method {
                    "get" => {
                        bind::<0>(method, args, kwds, [], 0)?;
                        Ok(v.1.clone().into())
                    }
                    _ => {
                        let [value] = bind(method, args, kwds, ["value"], 1)?;
                        v.1 = value.unwrap_or(Value::None);
                        none()
                    }
                }
            }
            Object::Queue(q) => queue_call(q, method, args, kwds, ctx),
            Object::Lock(l, reentrant) => lock_call(l, *reentrant, method, args, kwds, ctx),
            Object::Event(e) => match method {
                "is_set" => Ok(Value::Bool(*e.lock()).into()),
                "set" => {
                    *e.lock() = true;
                    e.changed.notify_all();
                    none()
                }
                "clear" => {
                    *e.lock() = false;
                    none()
                }
                _ => {
                    let [timeout] = bind(method, args, kwds, ["timeout"], 0)?;
                    let timeout = seconds(timeout.as_ref(), true)?;
                    let set = e.wait_for(timeout, ctx, |s| *s).is_some();
                    Ok(Value::Bool(set).into())
                }
            },
            Object::Semaphore(sem) => semaphore_call(sem, method, args, kwds, ctx),
            Object::Condition(c) => condition_call(c, method, args, kwds, ctx),
            Object::Barrier(b) => barrier_call(b, method, args, kwds, ctx),
            Object::Array(a) => list_call(&mut guard(a).1, method, args, kwds),
            Object::Iterator(it) => {
                let mut it = guard(it);
                match method {
                    "close" => {
                        it.clear();
                        none()
                    }
                    "throw" => {
                        it.clear();
                        Err(CallError::type_error("throw() on a manager's iterator"))
                    }
                    _ => it
                        .pop_front()
                        .map(Reply::from)
                        .ok_or_else(|| CallError::new("builtins", "StopIteration", vec![])),
                }
            }
            Object::User(u) => guard(u).call(method, args, kwds).map(Reply::from),
        }
    }
}

fn namespace_repr(ns: &BTreeMap<String, Value>) -> String {
    let parts: Vec<String> = ns
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| format!("{k}={}", pickle::repr(v)))
        .collect();
    format!("Namespace({})", parts.join(", "))
}

fn namespace_call(
    ns: &mut BTreeMap<String, Value>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
) -> Result<Reply, CallError> {
    let name = |v: Option<Value>| match v {
        Some(Value::String(s)) => Ok(s),
        other => Err(CallError::type_error(format!(
            "attribute name must be string, not '{}'",
            pickle::type_name(&other.unwrap_or(Value::None))
        ))),
    };
    let missing =
        |n: &str| CallError::attribute_error(format!("'Namespace' object has no attribute '{n}'"));
    match method {
        "__getattribute__" => {
            let [n] = bind(method, args, kwds, ["name"], 1)?;
            let n = name(n)?;
            ns.get(&n)
                .cloned()
                .map(Reply::from)
                .ok_or_else(|| missing(&n))
        }
        "__setattr__" => {
            let [n, v] = bind(method, args, kwds, ["name", "value"], 2)?;
            ns.insert(name(n)?, v.unwrap_or(Value::None));
            none()
        }
        _ => {
            // "__delattr__"
            let [n] = bind(method, args, kwds, ["name"], 1)?;
            let n = name(n)?;
            match ns.remove(&n) {
                Some(_) => none(),
                None => Err(CallError::attribute_error(n)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            conn: 1,
            abandoned: &|| false,
        }
    }

    fn call(o: &Object, method: &str, args: Vec<Value>) -> Result<Value, CallError> {
        match o.call(method, args, Kwds::new(), &ctx())? {
            Reply::Wire(Wire::Value(v)) => Ok(v),
            _ => panic!("{method} gave no plain value"),
        }
    }

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn a_dict_keeps_insertion_order_and_raises_key_error() {
        let d = Object::builtin(Builtin::Dict, vec![], Kwds::new()).unwrap();
        for k in ["b", "a", "c"] {
            call(&d, "__setitem__", vec![s(k), Value::I64(1)]).unwrap();
        }
        assert_eq!(
            call(&d, "keys", vec![]).unwrap(),
            Value::List(vec![s("b"), s("a"), s("c")])
        );
        assert_eq!(
            call(&d, "popitem", vec![]).unwrap(),
            Value::Tuple(vec![s("c"), Value::I64(1)])
        );
        let e = call(&d, "__getitem__", vec![s("zz")]).unwrap_err();
        assert_eq!(e, CallError::key_error(s("zz")));
        assert_eq!(
            call(&d, "get", vec![s("zz"), Value::I64(5)]).unwrap(),
            Value::I64(5)
        );
        assert_eq!(d.repr(), "{'b': 1, 'a': 1}");
        let e = call(&d, "__setitem__", vec![Value::List(vec![]), Value::None]).unwrap_err();
        assert_eq!(e.to_string(), "TypeError: unhashable type: 'list'");
    }

    #[test]
    fn a_list_takes_slices_and_sorts() {
        let l = Object::builtin(
            Builtin::List,
            vec![Value::List((0..6).map(Value::I64).collect())],
            Kwds::new(),
        )
        .unwrap();
        let slice = |a: i64, b: i64, c: i64| {
            Value::Tuple(vec![Value::I64(a), Value::I64(b), Value::I64(c)])
        };
        assert_eq!(
            call(&l, "__getitem__", vec![slice(1, 5, 2)]).unwrap(),
            Value::List(vec![Value::I64(1), Value::I64(3)])
        );
        assert_eq!(
            call(&l, "__getitem__", vec![Value::I64(-1)]).unwrap(),
            Value::I64(5)
        );
        call(&l, "__delitem__", vec![slice(0, 6, 2)]).unwrap();
        assert_eq!(
            call(&l, "__getitem__", vec![Value::Tuple(vec![Value::None; 3])]).unwrap(),
            Value::List(vec![Value::I64(1), Value::I64(3), Value::I64(5)])
        );
        let mut kw = Kwds::new();
        kw.insert("reverse".into(), Value::Bool(true));
        l.call("sort", vec![], kw, &ctx()).unwrap();
        assert_eq!(call(&l, "pop", vec![]).unwrap(), Value::I64(1));
        let e = call(&l, "index", vec![s("x")]).unwrap_err();
        assert_eq!(e.to_string(), "ValueError: 'x' is not in list");
        let e = call(&l, "__getitem__", vec![Value::I64(9)]).unwrap_err();
        assert_eq!(e.to_string(), "IndexError: list index out of range");
        call(&l, "append", vec![s("x")]).unwrap();
        let e = call(&l, "sort", vec![]).unwrap_err();
        assert!(e.to_string().contains("'<' not supported"), "{e}");
    }

    #[test]
    fn a_queue_raises_empty_and_full() {
        let q = Object::builtin(Builtin::Queue, vec![Value::I64(1)], Kwds::new()).unwrap();
        let e = call(&q, "get_nowait", vec![]).unwrap_err();
        assert!(e.is("queue", "Empty"));
        call(&q, "put", vec![Value::I64(1)]).unwrap();
        let e = call(
            &q,
            "put",
            vec![Value::I64(2), Value::Bool(true), Value::F64(0.01)],
        )
        .unwrap_err();
        assert!(e.is("queue", "Full"));
        assert_eq!(call(&q, "qsize", vec![]).unwrap(), Value::I64(1));
        assert_eq!(call(&q, "get", vec![]).unwrap(), Value::I64(1));
    }

    #[test]
    fn a_barrier_lets_its_parties_through_and_breaks_on_reset() {
        let b = std::sync::Arc::new(
            Object::builtin(Builtin::Barrier, vec![Value::I64(2)], Kwds::new()).unwrap(),
        );
        let other = {
            let b = std::sync::Arc::clone(&b);
            std::thread::spawn(move || call(&b, "wait", vec![Value::F64(30.0)]))
        };
        let mine = call(&b, "wait", vec![Value::F64(30.0)]).unwrap();
        let theirs = other.join().unwrap().unwrap();
        let mut places = [mine, theirs];
        places.sort_by(|x, y| pickle::cmp(x, y).unwrap());
        assert_eq!(places, [Value::I64(0), Value::I64(1)]);
        // A waiter of a round that is reset is told the barrier broke.
        let waiter = {
            let b = std::sync::Arc::clone(&b);
            std::thread::spawn(move || call(&b, "wait", vec![Value::F64(30.0)]))
        };
        while call(&b, "__getattribute__", vec![s("n_waiting")]).unwrap() != Value::I64(1) {
            std::thread::yield_now();
        }
        call(&b, "reset", vec![]).unwrap();
        let e = waiter.join().unwrap().unwrap_err();
        assert!(e.is("threading", "BrokenBarrierError"), "{e}");
        assert_eq!(
            call(&b, "__getattribute__", vec![s("broken")]).unwrap(),
            Value::Bool(false)
        );
    }

    #[test]
    fn a_condition_wait_gives_the_lock_back_and_takes_it_again() {
        let c =
            std::sync::Arc::new(Object::builtin(Builtin::Condition, vec![], Kwds::new()).unwrap());
        let e = call(&c, "wait", vec![]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "RuntimeError: cannot wait on un-acquired lock"
        );
        assert_eq!(call(&c, "acquire", vec![]).unwrap(), Value::Bool(true));
        let notifier = {
            let c = std::sync::Arc::clone(&c);
            std::thread::spawn(move || {
                let ctx = Ctx {
                    conn: 2,
                    abandoned: &|| false,
                };
                // Takes the lock only once the waiter gave it back.
                c.call("acquire", vec![], Kwds::new(), &ctx)?;
                c.call("notify", vec![], Kwds::new(), &ctx)?;
                c.call("release", vec![], Kwds::new(), &ctx).map(drop)
            })
        };
        assert_eq!(
            call(&c, "wait", vec![Value::F64(30.0)]).unwrap(),
            Value::Bool(true)
        );
        assert!(c.held_by(1));
        notifier.join().unwrap().unwrap();
        let sem =
            Object::builtin(Builtin::BoundedSemaphore, vec![Value::I64(1)], Kwds::new()).unwrap();
        assert_eq!(
            call(&sem, "acquire", vec![Value::Bool(false)]).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            call(&sem, "acquire", vec![Value::Bool(false)]).unwrap(),
            Value::Bool(false)
        );
        call(&sem, "release", vec![]).unwrap();
        let e = call(&sem, "release", vec![]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ValueError: Semaphore released too many times"
        );
    }

    #[test]
    fn an_rlock_belongs_to_its_connection() {
        let l = Object::builtin(Builtin::RLock, vec![], Kwds::new()).unwrap();
        assert_eq!(call(&l, "acquire", vec![]).unwrap(), Value::Bool(true));
        assert_eq!(call(&l, "acquire", vec![]).unwrap(), Value::Bool(true));
        let other = Ctx {
            conn: 2,
            abandoned: &|| false,
        };
        assert!(l.call("release", vec![], Kwds::new(), &other).is_err());
        let got = l.call("acquire", vec![Value::Bool(false)], Kwds::new(), &other);
        assert!(matches!(
            got,
            Ok(Reply::Wire(Wire::Value(Value::Bool(false))))
        ));
        l.release_held_by(1);
        assert!(!l.held_by(1));
        let lock = Object::builtin(Builtin::Lock, vec![], Kwds::new()).unwrap();
        let e = call(&lock, "release", vec![]).unwrap_err();
        assert_eq!(e.to_string(), "RuntimeError: release unlocked lock");
    }
}
