//! Typed proxies over [`Proxy`]: Python's `DictProxy`, `ListProxy`, `NamespaceProxy`,
//! the queue's `AutoProxy`, `AcquirerProxy`, `EventProxy` and `ValueProxy`, with serde
//! types for the values.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_pickle::Value;

use crate::manager::client::{from_value, to_value};
use crate::manager::{Kwds, ManagerError, Proxy};

fn is_remote(e: &ManagerError, module: &str, name: &str) -> bool {
    e.remote().is_some_and(|r| r.is(module, name))
}

fn unit(r: Result<Value, ManagerError>) -> Result<(), ManagerError> {
    r.map(drop)
}

fn boolean(v: Value, what: &str) -> Result<bool, ManagerError> {
    from_value(v, what)
}

fn count(v: Value, what: &str) -> Result<usize, ManagerError> {
    from_value(v, what)
}

fn secs(d: Duration) -> Value {
    Value::F64(d.as_secs_f64())
}

macro_rules! typed_proxy {
    ($name:ident $(<$($t:ident),*>)?) => {
        impl$(<$($t),*>)? From<Proxy> for $name$(<$($t),*>)? {
            fn from(proxy: Proxy) -> Self {
                $name { proxy, $(_types: PhantomData::<fn() -> ($($t,)*)>,)? }
            }
        }

        impl$(<$($t),*>)? $name$(<$($t),*>)? {
            /// The untyped proxy underneath, for the methods this type does not wrap.
            pub fn proxy(&self) -> &Proxy {
                &self.proxy
            }
        }
    };
}

/// A `dict` on a manager server, with keys `K` and values `V`.
///
/// # Examples
/// ```
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let d = client.dict::<String, Vec<u32>>()?;
/// d.insert(&"a".into(), &vec![1, 2])?;
/// assert!(d.contains(&"a".into())?);
/// assert_eq!(d.items()?, vec![("a".to_owned(), vec![1, 2])]);
/// assert_eq!(d.remove(&"a".into())?, Some(vec![1, 2]));
/// assert_eq!(d.get(&"a".into())?, None);
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
#[derive(Debug)]
pub struct DictProxy<K, V> {
    proxy: Proxy,
    _types: PhantomData<fn() -> (K, V)>,
}
typed_proxy!(DictProxy<K, V>);

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    fn key(k: &K) -> Result<Value, ManagerError> {
        to_value(k, "the dict key")
    }

    /// The value of `key` (`d[key]`), `None` when the dict has none.
    ///
    /// # Errors
    /// [`ManagerError::Codec`] when the key cannot be pickled or the value is not a `V`;
    /// the errors of [`Proxy::call`].
    pub fn get(&self, key: &K) -> Result<Option<V>, ManagerError> {
        match self.proxy.call("__getitem__", vec![Self::key(key)?]) {
            Ok(v) => from_value(v, "the dict value").map(Some),
            Err(e) if is_remote(&e, "builtins", "KeyError") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets `d[key] = value`.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn insert(&self, key: &K, value: &V) -> Result<(), ManagerError> {
        unit(self.proxy.call(
            "__setitem__",
            vec![Self::key(key)?, to_value(value, "the dict value")?],
        ))
    }

    /// Removes `key`, giving its value (`d.pop(key)`), `None` when it was not there.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn remove(&self, key: &K) -> Result<Option<V>, ManagerError> {
        match self.proxy.call("pop", vec![Self::key(key)?]) {
            Ok(v) => from_value(v, "the dict value").map(Some),
            Err(e) if is_remote(&e, "builtins", "KeyError") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `key` is in the dict.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn contains(&self, key: &K) -> Result<bool, ManagerError> {
        boolean(
            self.proxy.call("__contains__", vec![Self::key(key)?])?,
            "__contains__",
        )
    }

    /// `d.setdefault(key, default)`: the value of `key`, set to `default` first when
    /// missing.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn setdefault(&self, key: &K, default: &V) -> Result<V, ManagerError> {
        let v = self.proxy.call(
            "setdefault",
            vec![Self::key(key)?, to_value(default, "the dict value")?],
        )?;
        from_value(v, "the dict value")
    }

    /// The number of keys.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn len(&self) -> Result<usize, ManagerError> {
        count(self.proxy.call("__len__", vec![])?, "__len__")
    }

    /// Whether the dict is empty.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// The keys, in the dict's order.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn keys(&self) -> Result<Vec<K>, ManagerError> {
        from_value(self.proxy.call("keys", vec![])?, "the dict keys")
    }

    /// The values, in the dict's order.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn values(&self) -> Result<Vec<V>, ManagerError> {
        from_value(self.proxy.call("values", vec![])?, "the dict values")
    }

    /// The `(key, value)` pairs, in the dict's order.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        from_value(self.proxy.call("items", vec![])?, "the dict items")
    }

    /// Sets every pair of `pairs` (`d.update(pairs)`), in one call.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn update(&self, pairs: &[(K, V)]) -> Result<(), ManagerError> {
        let pairs = pairs
            .iter()
            .map(|(k, v)| {
                Ok(Value::Tuple(vec![
                    Self::key(k)?,
                    to_value(v, "the dict value")?,
                ]))
            })
            .collect::<Result<Vec<_>, ManagerError>>()?;
        unit(self.proxy.call("update", vec![Value::List(pairs)]))
    }

    /// Removes every key.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn clear(&self) -> Result<(), ManagerError> {
        unit(self.proxy.call("clear", vec![]))
    }
}

/// A `list` on a manager server, of items `T`. Indices may be negative, as in Python.
///
/// # Examples
/// ```
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let l = client.list::<i32>()?;
/// l.extend(&[3, 1, 2])?;
/// l.sort()?;
/// assert_eq!(l.to_vec()?, [1, 2, 3]);
/// assert_eq!(l.get(-1)?, 3);
/// assert!(l.get(7).unwrap_err().remote().is_some_and(|e| e.is("builtins", "IndexError")));
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
#[derive(Debug)]
pub struct ListProxy<T> {
    proxy: Proxy,
    _types: PhantomData<fn() -> (T,)>,
}
typed_proxy!(ListProxy<T>);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    fn item(v: &T) -> Result<Value, ManagerError> {
        to_value(v, "the list item")
    }

    fn decoded(v: Value) -> Result<T, ManagerError> {
        from_value(v, "the list item")
    }

    /// The number of items.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn len(&self) -> Result<usize, ManagerError> {
        count(self.proxy.call("__len__", vec![])?, "__len__")
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `l[index]`.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `IndexError` out of range; [`ManagerError::Codec`]
    /// for an item that is not a `T`; the errors of [`Proxy::call`].
    pub fn get(&self, index: i64) -> Result<T, ManagerError> {
        Self::decoded(self.proxy.call("__getitem__", vec![Value::I64(index)])?)
    }

    /// `l[index] = value`.
    ///
    /// # Errors
    /// As [`get`](ListProxy::get).
    pub fn set(&self, index: i64, value: &T) -> Result<(), ManagerError> {
        unit(
            self.proxy
                .call("__setitem__", vec![Value::I64(index), Self::item(value)?]),
        )
    }

    /// Appends `value`.
    ///
    /// # Errors
    /// As [`get`](ListProxy::get).
    pub fn append(&self, value: &T) -> Result<(), ManagerError> {
        unit(self.proxy.call("append", vec![Self::item(value)?]))
    }

    /// Appends every item of `values`, in one call.
    ///
    /// # Errors
    /// As [`get`](ListProxy::get).
    pub fn extend(&self, values: &[T]) -> Result<(), ManagerError> {
        let items = values.iter().map(Self::item).collect::<Result<_, _>>()?;
        unit(self.proxy.call("extend", vec![Value::List(items)]))
    }

    /// Inserts `value` before `index`.
    ///
    /// # Errors
    /// As [`get`](ListProxy::get).
    pub fn insert(&self, index: i64, value: &T) -> Result<(), ManagerError> {
        unit(
            self.proxy
                .call("insert", vec![Value::I64(index), Self::item(value)?]),
        )
    }

    /// Removes and gives the last item.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `IndexError` on an empty list; as
    /// [`get`](ListProxy::get).
    pub fn pop(&self) -> Result<T, ManagerError> {
        Self::decoded(self.proxy.call("pop", vec![])?)
    }

    /// Removes and gives the item at `index`.
    ///
    /// # Errors
    /// As [`pop`](ListProxy::pop).
    pub fn pop_at(&self, index: i64) -> Result<T, ManagerError> {
        Self::decoded(self.proxy.call("pop", vec![Value::I64(index)])?)
    }

    /// Removes the first item equal to `value`.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `ValueError` when there is none.
    pub fn remove(&self, value: &T) -> Result<(), ManagerError> {
        unit(self.proxy.call("remove", vec![Self::item(value)?]))
    }

    /// The position of the first item equal to `value`.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `ValueError` when there is none.
    pub fn index(&self, value: &T) -> Result<usize, ManagerError> {
        count(self.proxy.call("index", vec![Self::item(value)?])?, "index")
    }

    /// How many items equal `value`.
    ///
    /// # Errors
    /// As [`get`](ListProxy::get).
    pub fn count(&self, value: &T) -> Result<usize, ManagerError> {
        count(self.proxy.call("count", vec![Self::item(value)?])?, "count")
    }

    /// Whether an item equals `value`.
    ///
    /// # Errors
    /// As [`get`](ListProxy::get).
    pub fn contains(&self, value: &T) -> Result<bool, ManagerError> {
        boolean(
            self.proxy.call("__contains__", vec![Self::item(value)?])?,
            "__contains__",
        )
    }

    /// Reverses the list in place.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn reverse(&self) -> Result<(), ManagerError> {
        unit(self.proxy.call("reverse", vec![]))
    }

    /// Sorts the list in place, in Python's order.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `TypeError` for items that do not compare.
    pub fn sort(&self) -> Result<(), ManagerError> {
        unit(self.proxy.call("sort", vec![]))
    }

    /// A copy of the whole list (Python's `_getvalue()`).
    ///
    /// # Errors
    /// As [`get`](ListProxy::get).
    pub fn to_vec(&self) -> Result<Vec<T>, ManagerError> {
        from_value(self.proxy.call("#GETVALUE", vec![])?, "the list")
    }
}

/// A `Namespace` on a manager server: named attributes of any plain type.
///
/// # Examples
/// ```
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let ns = client.namespace()?;
/// ns.set("x", &10)?;
/// assert_eq!(ns.get::<i32>("x")?, 10);
/// ns.del("x")?;
/// assert!(ns.get::<i32>("x").unwrap_err().remote().is_some_and(|e| e.name() == "AttributeError"));
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
#[derive(Debug)]
pub struct NamespaceProxy {
    proxy: Proxy,
}
typed_proxy!(NamespaceProxy);

impl NamespaceProxy {
    /// The attribute `name`.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `AttributeError` when it is not set;
    /// [`ManagerError::Codec`] when it is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, ManagerError> {
        let v = self
            .proxy
            .call("__getattribute__", vec![Value::String(name.to_owned())])?;
        from_value(v, &format!("attribute {name:?}"))
    }

    /// Sets the attribute `name`.
    ///
    /// # Errors
    /// [`ManagerError::Codec`] when `value` cannot be pickled; the errors of
    /// [`Proxy::call`].
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), ManagerError> {
        let v = to_value(value, &format!("attribute {name:?}"))?;
        unit(
            self.proxy
                .call("__setattr__", vec![Value::String(name.to_owned()), v]),
        )
    }

    /// Deletes the attribute `name`.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `AttributeError` when it is not set.
    pub fn del(&self, name: &str) -> Result<(), ManagerError> {
        unit(
            self.proxy
                .call("__delattr__", vec![Value::String(name.to_owned())]),
        )
    }
}

/// A `Queue` on a manager server, of items `T`. A `get` that finds nothing raises
/// Python's `queue.Empty` (see [`ManagerError::remote`]), a `put` on a full queue
/// `queue.Full`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let q = client.queue_with_maxsize::<u32>(1)?;
/// q.put(&1)?;
/// let full = q.put_timeout(&2, Duration::from_millis(10)).unwrap_err();
/// assert!(full.remote().is_some_and(|e| e.is("queue", "Full")));
/// assert_eq!(q.get_timeout(Duration::from_secs(10))?, 1);
/// assert!(q.empty()?);
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
#[derive(Debug)]
pub struct QueueProxy<T> {
    proxy: Proxy,
    _types: PhantomData<fn() -> (T,)>,
}
typed_proxy!(QueueProxy<T>);

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    fn item(v: &T) -> Result<Value, ManagerError> {
        to_value(v, "the queue item")
    }

    /// Puts `item`, waiting while the queue is full.
    ///
    /// # Errors
    /// [`ManagerError::Codec`] when `item` cannot be pickled; the errors of
    /// [`Proxy::call`].
    pub fn put(&self, item: &T) -> Result<(), ManagerError> {
        unit(self.proxy.call("put", vec![Self::item(item)?]))
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `queue.Full` when there was no room in time.
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<(), ManagerError> {
        unit(self.proxy.call(
            "put",
            vec![Self::item(item)?, Value::Bool(true), secs(timeout)],
        ))
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `queue.Full` when there is none.
    pub fn put_nowait(&self, item: &T) -> Result<(), ManagerError> {
        unit(self.proxy.call("put_nowait", vec![Self::item(item)?]))
    }

    /// Takes the next item, waiting for one.
    ///
    /// # Errors
    /// [`ManagerError::Codec`] when the item is not a `T`; the errors of
    /// [`Proxy::call`].
    pub fn get(&self) -> Result<T, ManagerError> {
        from_value(self.proxy.call("get", vec![])?, "the queue item")
    }

    /// Takes the next item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `queue.Empty` when none came in time.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, ManagerError> {
        let v = self
            .proxy
            .call("get", vec![Value::Bool(true), secs(timeout)])?;
        from_value(v, "the queue item")
    }

    /// Takes the next item if there is one now.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `queue.Empty` when there is none.
    pub fn get_nowait(&self) -> Result<T, ManagerError> {
        from_value(self.proxy.call("get_nowait", vec![])?, "the queue item")
    }

    /// The number of items.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn qsize(&self) -> Result<usize, ManagerError> {
        count(self.proxy.call("qsize", vec![])?, "qsize")
    }

    /// Whether the queue is empty.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn empty(&self) -> Result<bool, ManagerError> {
        boolean(self.proxy.call("empty", vec![])?, "empty")
    }

    /// Whether the queue is full.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn full(&self) -> Result<bool, ManagerError> {
        boolean(self.proxy.call("full", vec![])?, "full")
    }

    /// Marks one item taken earlier as done (`JoinableQueue`).
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `ValueError` when called more often than items
    /// were put.
    pub fn task_done(&self) -> Result<(), ManagerError> {
        unit(self.proxy.call("task_done", vec![]))
    }

    /// Waits until every item put was marked done.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn join(&self) -> Result<(), ManagerError> {
        unit(self.proxy.call("join", vec![]))
    }
}

/// A `Lock` or `RLock` on a manager server (Python's `AcquirerProxy`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let lock = client.lock()?;
/// assert!(lock.acquire()?);
/// assert!(!lock.try_acquire()?);
/// assert!(!lock.acquire_timeout(Duration::from_millis(10))?);
/// lock.release()?;
/// assert!(lock.release().is_err()); // RuntimeError: release unlocked lock
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
#[derive(Debug)]
pub struct LockProxy {
    proxy: Proxy,
}
typed_proxy!(LockProxy);

impl LockProxy {
    /// Takes the lock, waiting as long as it takes (`true`).
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn acquire(&self) -> Result<bool, ManagerError> {
        boolean(
            self.proxy.call("acquire", vec![Value::Bool(true)])?,
            "acquire",
        )
    }

    /// Takes the lock, waiting at most `timeout`; `false` when it stayed taken.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        let v = self
            .proxy
            .call("acquire", vec![Value::Bool(true), secs(timeout)])?;
        boolean(v, "acquire")
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn try_acquire(&self) -> Result<bool, ManagerError> {
        boolean(
            self.proxy.call("acquire", vec![Value::Bool(false)])?,
            "acquire",
        )
    }

    /// Releases the lock.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with `RuntimeError` when it is not held (by this
    /// connection, for an `RLock`).
    pub fn release(&self) -> Result<(), ManagerError> {
        unit(self.proxy.call("release", vec![]))
    }
}

/// An `Event` on a manager server.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let ev = client.event()?;
/// assert!(!ev.wait_timeout(Duration::from_millis(10))?);
/// ev.set()?;
/// assert!(ev.is_set()? && ev.wait()?);
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
#[derive(Debug)]
pub struct EventProxy {
    proxy: Proxy,
}
typed_proxy!(EventProxy);

impl EventProxy {
    /// Sets the flag, waking every waiter.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn set(&self) -> Result<(), ManagerError> {
        unit(self.proxy.call("set", vec![]))
    }

    /// Clears the flag.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn clear(&self) -> Result<(), ManagerError> {
        unit(self.proxy.call("clear", vec![]))
    }

    /// Whether the flag is set.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn is_set(&self) -> Result<bool, ManagerError> {
        boolean(self.proxy.call("is_set", vec![])?, "is_set")
    }

    /// Waits until the flag is set (`true`).
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn wait(&self) -> Result<bool, ManagerError> {
        boolean(self.proxy.call("wait", vec![Value::None])?, "wait")
    }

    /// Waits at most `timeout`; whether the flag is set.
    ///
    /// # Errors
    /// The errors of [`Proxy::call`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        boolean(self.proxy.call("wait", vec![secs(timeout)])?, "wait")
    }
}

/// A `Value` on a manager server (Python's `ValueProxy`).
///
/// # Examples
/// ```
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let v = client.value("d", &1.5f64)?;
/// v.set(&2.5)?;
/// assert_eq!(v.get()?, 2.5);
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
#[derive(Debug)]
pub struct ValueProxy<T> {
    proxy: Proxy,
    _types: PhantomData<fn() -> (T,)>,
}
typed_proxy!(ValueProxy<T>);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// The value.
    ///
    /// # Errors
    /// [`ManagerError::Codec`] when it is not a `T`; the errors of [`Proxy::call`].
    pub fn get(&self) -> Result<T, ManagerError> {
        from_value(self.proxy.call("get", vec![])?, "the value")
    }

    /// Replaces the value.
    ///
    /// # Errors
    /// [`ManagerError::Codec`] when `value` cannot be pickled; the errors of
    /// [`Proxy::call`].
    pub fn set(&self, value: &T) -> Result<(), ManagerError> {
        unit(self.proxy.call("set", vec![to_value(value, "the value")?]))
    }
}

/// Keyword arguments for [`Proxy::call_kw`], from pairs.
///
/// # Examples
/// ```
/// use shoal::manager::{kwds, Value};
///
/// let kw = kwds([("timeout", Value::F64(0.5))]);
/// assert_eq!(kw["timeout"], Value::F64(0.5));
/// ```
pub fn kwds<const N: usize>(pairs: [(&str, Value); N]) -> Kwds {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
