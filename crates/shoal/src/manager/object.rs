//! The objects a Rust server holds: the standard type ids' plain-data objects and the
//! user's [`Managed`] types.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_pickle::{HashableValue, Value};

use crate::manager::args::{bind, hashable, integer, items, seconds, truthy, Kwds};
use crate::manager::pickle::{self, Wire};
use crate::manager::CallError;

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

/// A dict that keeps its keys in insertion order, as Python's does.
#[derive(Default)]
pub(crate) struct Dict {
    map: BTreeMap<HashableValue, (u64, Value)>,
    order: BTreeMap<u64, HashableValue>,
    next: u64,
}

impl Dict {
    fn insert(&mut self, k: HashableValue, v: Value) {
        if let Some(slot) = self.map.get_mut(&k) {
            slot.1 = v;
            return;
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, k.clone());
        self.map.insert(k, (seq, v));
    }

    fn remove(&mut self, k: &HashableValue) -> Option<Value> {
        let (seq, v) = self.map.remove(k)?;
        self.order.remove(&seq);
        Some(v)
    }

    fn iter(&self) -> impl Iterator<Item = (&HashableValue, &Value)> {
        self.order.values().map(|k| (k, &self.map[k].1))
    }

    /// The dict for the wire, in insertion order.
    fn to_wire(&self) -> Wire {
        Wire::Dict(self.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn update(&mut self, other: Value) -> Result<(), CallError> {
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

    fn repr(&self) -> String {
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

/// A mutex and the condition its waiters sleep on.
#[derive(Default)]
pub(crate) struct Blocking<T> {
    state: Mutex<T>,
    changed: Condvar,
}

/// How long one slice of a blocking wait lasts before the server checks whether the
/// client is still there (a client killed while waiting must not take an item or a
/// lock afterwards).
const SLICE: Duration = Duration::from_millis(100);

impl<T> Blocking<T> {
    fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `ready` holds (the guard), the deadline passes or the client goes
    /// away (`None` for both).
    fn wait_for(
        &self,
        timeout: Option<Duration>,
        ctx: &Ctx<'_>,
        mut ready: impl FnMut(&mut T) -> bool,
    ) -> Option<MutexGuard<'_, T>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut guard = self.lock();
        loop {
            if ready(&mut guard) {
                return Some(guard);
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if d <= now => return None,
                Some(d) => (d - now).min(SLICE),
                None => SLICE,
            };
            guard = self
                .changed
                .wait_timeout(guard, slice)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if (ctx.abandoned)() {
                return None;
            }
        }
    }
}

pub(crate) struct QueueState {
    items: VecDeque<Value>,
    maxsize: usize,
    unfinished: u64,
}

#[derive(Default)]
pub(crate) struct LockState {
    /// The connection holding the lock.
    owner: Option<u64>,
    /// How many times the owner took it (an `RLock` counts).
    count: u32,
}

pub(crate) struct SemaphoreState {
    value: u64,
    /// The start value, which a bounded semaphore may not exceed.
    bound: Option<u64>,
}

#[derive(Default)]
pub(crate) struct ConditionState {
    lock: LockState,
    /// The tickets of the waiters not yet notified, in order of arrival.
    waiters: VecDeque<u64>,
    next_ticket: u64,
}

pub(crate) struct BarrierState {
    parties: u64,
    /// How many wait in the current round.
    count: u64,
    round: u64,
    broken: bool,
    /// The round a `reset` ended (its waiters are told the barrier broke).
    reset_round: Option<u64>,
    timeout: Option<Duration>,
}

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

fn dict_call(d: &mut Dict, method: &str, args: Vec<Value>, kwds: Kwds) -> Result<Reply, CallError> {
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

/// A list index or a slice (a `slice` arrives as its `(start, stop, step)` tuple).
enum Index {
    At(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
}

fn index_of(v: Value) -> Result<Index, CallError> {
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
fn slice_positions(
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

fn position(len: usize, i: i64, what: &str) -> Result<usize, CallError> {
    let j = if i < 0 { i + len as i64 } else { i };
    if j < 0 || j >= len as i64 {
        return Err(CallError::index_error(what));
    }
    Ok(j as usize)
}

fn list_call(
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

fn queue_call(
    q: &Blocking<QueueState>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    let full = |s: &QueueState| s.maxsize > 0 && s.items.len() >= s.maxsize;
    match method {
        "put" | "put_nowait" => {
            let (item, block, timeout) = if method == "put" {
                let [item, block, timeout] =
                    bind(method, args, kwds, ["item", "block", "timeout"], 1)?;
                (item, block.as_ref().is_none_or(truthy), timeout)
            } else {
                let [item] = bind(method, args, kwds, ["item"], 1)?;
                (item, false, None)
            };
            let timeout = if block {
                seconds(timeout.as_ref(), false)?
            } else {
                Some(Duration::ZERO)
            };
            match q.wait_for(timeout, ctx, |s| !full(s)) {
                Some(mut s) => {
                    s.items.push_back(item.unwrap_or(Value::None));
                    s.unfinished += 1;
                    q.changed.notify_all();
                    none()
                }
                None => Err(CallError::new("queue", "Full", vec![])),
            }
        }
        "get" | "get_nowait" => {
            let (block, timeout) = if method == "get" {
                let [block, timeout] = bind(method, args, kwds, ["block", "timeout"], 0)?;
                (block.as_ref().is_none_or(truthy), timeout)
            } else {
                bind::<0>(method, args, kwds, [], 0)?;
                (false, None)
            };
            let timeout = if block {
                seconds(timeout.as_ref(), false)?
            } else {
                Some(Duration::ZERO)
            };
            match q.wait_for(timeout, ctx, |s| !s.items.is_empty()) {
                Some(mut s) => {
                    let item = s.items.pop_front().unwrap_or(Value::None);
                    q.changed.notify_all();
                    Ok(item.into())
                }
                None => Err(CallError::new("queue", "Empty", vec![])),
            }
        }
        "qsize" => Ok(int(q.lock().items.len()).into()),
        "empty" => Ok(Value::Bool(q.lock().items.is_empty()).into()),
        "full" => Ok(Value::Bool(full(&q.lock())).into()),
        "task_done" => {
            let mut s = q.lock();
            if s.unfinished == 0 {
                return Err(CallError::value_error("task_done() called too many times"));
            }
            s.unfinished -= 1;
            q.changed.notify_all();
            none()
        }
        _ => {
            // "join"
            q.wait_for(None, ctx, |s| s.unfinished == 0);
            none()
        }
    }
}

fn lock_call(
    l: &Blocking<LockState>,
    reentrant: bool,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    if method == "release" {
        bind::<0>(method, args, kwds, [], 0)?;
        let mut s = l.lock();
        if reentrant {
            if s.owner != Some(ctx.conn) {
                return Err(CallError::runtime_error("cannot release un-acquired lock"));
            }
            s.count -= 1;
            if s.count == 0 {
                s.owner = None;
            }
        } else {
            if s.owner.is_none() {
                return Err(CallError::runtime_error("release unlocked lock"));
            }
            s.owner = None;
            s.count = 0;
        }
        l.changed.notify_all();
        return none();
    }
    let timeout = acquire_timeout(method, args, kwds)?;
    let me = ctx.conn;
    let got = l
        .wait_for(timeout, ctx, |s| {
            s.owner.is_none() || (reentrant && s.owner == Some(me))
        })
        .map(|mut s| {
            s.owner = Some(me);
            s.count += 1;
        })
        .is_some();
    Ok(Value::Bool(got).into())
}

/// The time limit of `acquire(blocking=True, timeout=-1)`: `None` for none, zero for a
/// non-blocking call.
fn acquire_timeout(
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
) -> Result<Option<Duration>, CallError> {
    let [blocking, timeout] = bind(method, args, kwds, ["blocking", "timeout"], 0)?;
    let blocking = blocking.as_ref().is_none_or(truthy);
    let timeout = match timeout {
        Some(t) if !blocking && t != Value::None && !pickle::eq(&t, &Value::I64(-1)) => {
            return Err(CallError::value_error(
                "can't specify a timeout for a non-blocking call",
            ))
        }
        Some(t) => {
            if matches!(t, Value::I64(i) if i < -1)
                || matches!(t, Value::F64(f) if f < 0.0 && f != -1.0)
            {
                return Err(CallError::value_error(
                    "timeout value must be a non-negative number",
                ));
            }
            seconds(Some(&t), true)?
        }
        None => None,
    };
    Ok(if blocking {
        timeout
    } else {
        Some(Duration::ZERO)
    })
}

fn semaphore_call(
    sem: &Blocking<SemaphoreState>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    if method == "release" {
        let [n] = bind(method, args, kwds, ["n"], 0)?;
        let n = match n {
            Some(v) => integer(&v, "n")?,
            None => 1,
        };
        if n < 1 {
            return Err(CallError::value_error("n must be one or more"));
        }
        let mut s = sem.lock();
        let value = s.value + n as u64;
        if s.bound.is_some_and(|b| value > b) {
            return Err(CallError::value_error("Semaphore released too many times"));
        }
        s.value = value;
        sem.changed.notify_all();
        return none();
    }
    let timeout = acquire_timeout(method, args, kwds)?;
    let got = sem
        .wait_for(timeout, ctx, |s| s.value > 0)
        .map(|mut s| s.value -= 1)
        .is_some();
    Ok(Value::Bool(got).into())
}

fn condition_call(
    c: &Blocking<ConditionState>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    let me = ctx.conn;
    let owned = |s: &ConditionState, what: &str| {
        if s.lock.owner == Some(me) {
            Ok(())
        } else {
            Err(CallError::runtime_error(format!(
                "cannot {what} un-acquired lock"
            )))
        }
    };
    match method {
        "acquire" => {
            let timeout = acquire_timeout(method, args, kwds)?;
            let got = c
                .wait_for(timeout, ctx, |s| {
                    s.lock.owner.is_none() || s.lock.owner == Some(me)
                })
                .map(|mut s| {
                    s.lock.owner = Some(me);
                    s.lock.count += 1;
                })
                .is_some();
            Ok(Value::Bool(got).into())
        }
        "release" => {
            bind::<0>(method, args, kwds, [], 0)?;
            let mut s = c.lock();
            owned(&s, "release")?;
            s.lock.count -= 1;
            if s.lock.count == 0 {
                s.lock.owner = None;
            }
            c.changed.notify_all();
            none()
        }
        "wait" => {
            let [timeout] = bind(method, args, kwds, ["timeout"], 0)?;
            let timeout = seconds(timeout.as_ref(), true)?;
            let (ticket, count) = {
                let mut s = c.lock();
                owned(&s, "wait on")?;
                let ticket = s.next_ticket;
                s.next_ticket += 1;
                s.waiters.push_back(ticket);
                let count = std::mem::take(&mut s.lock.count);
                s.lock.owner = None;
                c.changed.notify_all();
                (ticket, count)
            };
            let notified = c
                .wait_for(timeout, ctx, |s| !s.waiters.contains(&ticket))
                .is_some();
            // Taken again before returning, notified or not, as Python's wait does.
            let Some(mut s) = c.wait_for(None, ctx, |s| s.lock.owner.is_none()) else {
                c.lock().waiters.retain(|t| *t != ticket);
                return Ok(Value::Bool(false).into());
            };
            s.waiters.retain(|t| *t != ticket);
            s.lock.owner = Some(me);
            s.lock.count = count;
            Ok(Value::Bool(notified).into())
        }
        "notify" => {
            let [n] = bind(method, args, kwds, ["n"], 0)?;
            let n = match n {
                Some(v) => integer(&v, "n")?.max(0) as usize,
                None => 1,
            };
            let mut s = c.lock();
            owned(&s, "notify on")?;
            let n = n.min(s.waiters.len());
            s.waiters.drain(..n);
            c.changed.notify_all();
            none()
        }
        _ => {
            // "notify_all"
            bind::<0>(method, args, kwds, [], 0)?;
            let mut s = c.lock();
            owned(&s, "notify on")?;
            s.waiters.clear();
            c.changed.notify_all();
            none()
        }
    }
}

fn broken_barrier() -> CallError {
    CallError::new("threading", "BrokenBarrierError", vec![])
}

fn barrier_call(
    b: &Blocking<BarrierState>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    match method {
        "__getattribute__" => {
            let [name] = bind(method, args, kwds, ["name"], 1)?;
            let s = b.lock();
            match name {
                Some(Value::String(n)) if n == "parties" => Ok(Value::I64(s.parties as i64).into()),
                Some(Value::String(n)) if n == "n_waiting" => Ok(Value::I64(s.count as i64).into()),
                Some(Value::String(n)) if n == "broken" => Ok(Value::Bool(s.broken).into()),
                other => Err(CallError::attribute_error(format!(
                    "'Barrier' object has no attribute {}",
                    pickle::repr(&other.unwrap_or(Value::None))
                ))),
            }
        }
        "wait" => {
            let [timeout] = bind(method, args, kwds, ["timeout"], 0)?;
            let (index, round, timeout) = {
                let mut s = b.lock();
                if s.broken {
                    return Err(broken_barrier());
                }
                let index = s.count;
                s.count += 1;
                if s.count == s.parties {
                    s.count = 0;
                    s.round += 1;
                    b.changed.notify_all();
                    return Ok(Value::I64(index as i64).into());
                }
                let timeout = match timeout {
                    Some(t) => seconds(Some(&t), true)?,
                    None => s.timeout,
                };
                (index, s.round, timeout)
            };
            match b.wait_for(timeout, ctx, |s| s.round != round || s.broken) {
                Some(s) if s.round != round && s.reset_round != Some(round) => {
                    Ok(Value::I64(index as i64).into())
                }
                Some(_) => Err(broken_barrier()),
                None => {
                    // Timed out (or the client went): the barrier breaks, as Python's.
                    let mut s = b.lock();
                    if s.round == round {
                        s.broken = true;
                        s.count = s.count.saturating_sub(1);
                        b.changed.notify_all();
                    }
                    Err(broken_barrier())
                }
            }
        }
        "abort" => {
            bind::<0>(method, args, kwds, [], 0)?;
            b.lock().broken = true;
            b.changed.notify_all();
            none()
        }
        _ => {
            // "reset"
            bind::<0>(method, args, kwds, [], 0)?;
            let mut s = b.lock();
            if s.count > 0 {
                s.reset_round = Some(s.round);
            }
            s.count = 0;
            s.round += 1;
            s.broken = false;
            b.changed.notify_all();
            none()
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
