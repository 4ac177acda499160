use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_pickle::Value;

use crate::manager::args::Kwds;
use crate::manager::pickle::{self, Wire};
use crate::manager::proxies::{
    DictProxy, EventProxy, ListProxy, LockProxy, NamespaceProxy, QueueProxy, ValueProxy,
};
use crate::manager::{CallError, ManagerError};
use crate::net::{Address, Connection, ToAddress};

/// How long connecting and authenticating may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

pub(crate) struct Inner {
    address: Address,
    /// The key and any other settings (TLS) of every connection to the server.
    builder: crate::net::ClientBuilder,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Encodes a value for the server, naming it in the error.
pub(crate) fn to_value<T: Serialize + ?Sized>(v: &T, what: &str) -> Result<Value, ManagerError> {
    serde_pickle::to_value(v).map_err(|e| ManagerError::Codec {
        what: format!("encode {what}"),
        reason: e.to_string(),
    })
}

/// Decodes a value from the server, naming it in the error.
pub(crate) fn from_value<T: DeserializeOwned>(v: Value, what: &str) -> Result<T, ManagerError> {
    let shown = pickle::repr(&v);
    serde_pickle::from_value(v).map_err(|e| ManagerError::Codec {
        what: format!(
            "decode {what} ({} as {})",
            shown.chars().take(80).collect::<String>(),
            std::any::type_name::<T>()
        ),
        reason: e.to_string(),
    })
}

impl Inner {
    fn connect(&self) -> Result<Connection, ManagerError> {
        self.builder
            .clone()
            .connect_timeout(CONNECT_LIMIT)
            .handshake_timeout(Some(CONNECT_LIMIT))
            .connect(&self.address)
            .map_err(|e| ManagerError::from_net(&self.address, e))
    }

    /// Sends `(ident, method, args, kwds)` on `conn` and reads the reply.
    fn request(
        &self,
        conn: &Connection,
        ident: Option<&str>,
        method: &str,
        args: Vec<Value>,
        kwds: Kwds,
    ) -> Result<Value, ManagerError> {
        let request = Wire::Value(Value::Tuple(vec![
            ident.map_or(Value::None, |i| Value::String(i.to_owned())),
            Value::String(method.to_owned()),
            Value::Tuple(args),
            Value::Dict(
                kwds.into_iter()
                    .map(|(k, v)| (serde_pickle::HashableValue::String(k), v))
                    .collect(),
            ),
        ]));
        conn.send_bytes(&pickle::encode(&request))
            .map_err(|e| ManagerError::from_net(&self.address, e))?;
        let bytes = conn
            .recv_bytes()
            .map_err(|e| ManagerError::from_net(&self.address, e))?;
        parse_reply(&bytes)
    }

    /// A top-level request on a connection of its own, as Python's `dispatch` makes.
    fn dispatch(&self, method: &str, args: Vec<Value>, kwds: Kwds) -> Result<Value, ManagerError> {
        let conn = self.connect()?;
        self.request(&conn, None, method, args, kwds)
    }

    /// Gives a reference back; waits at most [`CONNECT_LIMIT`] for the answer, so that
    /// dropping a proxy never hangs on a server that stopped answering.
    fn decref(&self, ident: &str) -> Result<(), ManagerError> {
        let conn = self.connect()?;
        conn.set_read_timeout(Some(CONNECT_LIMIT))?;
        self.request(
            &conn,
            None,
            "decref",
            vec![Value::String(ident.to_owned())],
            Kwds::new(),
        )
        .map(drop)
    }
}

fn parse_reply(bytes: &[u8]) -> Result<Value, ManagerError> {
    let v = pickle::decode(bytes).map_err(|e| ManagerError::Codec {
        what: "decode the manager's reply".to_owned(),
        reason: e.to_string(),
    })?;
    let protocol = |v: &Value| ManagerError::Protocol {
        reason: format!(
            "a reply is a (kind, value) pair, not {}",
            pickle::repr(v).chars().take(80).collect::<String>()
        ),
    };
    let Value::Tuple(parts) = &v else {
        return Err(protocol(&v));
    };
    let [Value::String(kind), _] = parts.as_slice() else {
        return Err(protocol(&v));
    };
    let kind = kind.clone();
    let Value::Tuple(mut parts) = v else {
        unreachable!("matched above")
    };
    let value = parts.pop().unwrap_or(Value::None);
    match kind.as_str() {
        "#RETURN" => Ok(value),
        "#ERROR" => {
            // The exception's class is the first global of the pickle; the decoder
            // gives its arguments (or its state, when it has one).
            let (module, name) =
                pickle::first_global(bytes).unwrap_or(("builtins".into(), "Exception".into()));
            let args = match value {
                Value::Tuple(a) => a,
                // The state of an exception with attributes (Python 3.13's
                // AttributeError) carries the arguments under "args".
                Value::Dict(mut state) => {
                    match state.remove(&serde_pickle::HashableValue::String("args".into())) {
                        Some(Value::Tuple(a)) => a,
                        _ => Vec::new(),
                    }
                }
                Value::None => Vec::new(),
                other => vec![other],
            };
            Err(ManagerError::Remote(CallError::new(module, name, args)))
        }
        "#TRACEBACK" | "#UNSERIALIZABLE" => Err(ManagerError::Server {
            text: match value {
                Value::String(s) => s,
                other => pickle::repr(&other),
            },
        }),
        "#PROXY" => Err(ManagerError::Protocol {
            reason: "the manager answered with a proxy; use a method that returns plain data"
                .to_owned(),
        }),
        other => Err(ManagerError::Protocol {
            reason: format!("unknown reply kind {other:?}"),
        }),
    }
}

/// A client of a manager server — a Rust [`Server`](crate::manager::Server) or a
/// Python `BaseManager`/`SyncManager` one — like Python's
/// `SyncManager(address, authkey).connect()`.
///
/// Each object the client creates comes back as a proxy ([`DictProxy`], [`ListProxy`],
/// [`QueueProxy`]... or the generic [`Proxy`]) that holds one reference on the server
/// and gives it back when dropped. A proxy opens its connections to the server as it
/// needs them (one per thread calling at once) and keeps them for the next calls.
/// Values travel as pickles of plain data: any `serde` type whose form is made of
/// numbers, strings, bytes, lists, tuples, dicts and `None`.
///
/// When the server goes (it exited or was killed), every call returns
/// [`ManagerError::ServerGone`] at once: its connections see the end of the stream and
/// new ones are refused.
///
/// # Examples
/// ```
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let q = client.queue::<String>()?;
/// q.put(&"job".to_owned())?;
/// assert_eq!(q.get()?, "job");
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.address)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the server at `address` with `authkey`, checking both with a
    /// `dummy` request (as Python's `BaseManager.connect` does).
    ///
    /// # Errors
    /// [`ManagerError::AuthRefused`] for a wrong key, [`ManagerError::ServerGone`] when
    /// nothing listens there, [`ManagerError::Net`] for an address that does not parse.
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Client, ManagerError};
    ///
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    /// let none = Client::connect(format!("127.0.0.1:{port}"), b"key").unwrap_err();
    /// assert!(matches!(none, ManagerError::ServerGone { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(address: impl ToAddress, authkey: &[u8]) -> Result<Client, ManagerError> {
        Client::connect_with(address, crate::net::Client::builder().authkey(authkey))
    }

    /// Connects as [`connect`](Client::connect) does, every connection to the server
    /// made by `builder` (its auth key, and TLS, a digest or a frame limit); the connect
    /// and handshake limits are the client's own.
    ///
    /// # Errors
    /// As [`connect`](Client::connect).
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Client, ManagerError, Server};
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
    /// let wrong = shoal::net::Client::builder().authkey(b"not the key");
    /// let refused = Client::connect_with(server.address(), wrong).unwrap_err();
    /// assert!(matches!(refused, ManagerError::AuthRefused { .. }), "{refused}");
    /// # Ok::<(), ManagerError>(())
    /// ```
    pub fn connect_with(
        address: impl ToAddress,
        builder: crate::net::ClientBuilder,
    ) -> Result<Client, ManagerError> {
        let client = Client {
            inner: Arc::new(Inner {
                address: address.to_address()?,
                builder,
            }),
        };
        client.inner.dispatch("dummy", Vec::new(), Kwds::new())?;
        Ok(client)
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// Creates an object of `typeid` on the server, with the constructor's positional
    /// arguments.
    ///
    /// # Errors
    /// [`ManagerError::Server`] for a type id the server does not know or arguments
    /// its constructor refuses; the connection errors of [`connect`](Client::connect).
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Client, Server, Value};
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
    /// let client = Client::connect(server.address(), b"key")?;
    /// let l = client.create("list", vec![Value::List(vec![Value::I64(3)])])?;
    /// assert_eq!(l.call("__len__", vec![])?, Value::I64(1));
    /// assert!(client.create("nothing", vec![]).is_err());
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn create(&self, typeid: &str, args: Vec<Value>) -> Result<Proxy, ManagerError> {
        self.create_kw(typeid, args, Kwds::new())
    }

    /// [`create`](Client::create) with keyword arguments too.
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn create_kw(
        &self,
        typeid: &str,
        mut args: Vec<Value>,
        kwds: Kwds,
    ) -> Result<Proxy, ManagerError> {
        args.insert(0, Value::String(typeid.to_owned()));
        let reply = self.inner.dispatch("create", args, kwds)?;
        let bad = |v: &Value| ManagerError::Protocol {
            reason: format!(
                "create answered {}, not (id, exposed)",
                pickle::repr(v).chars().take(80).collect::<String>()
            ),
        };
        let Value::Tuple(parts) = &reply else {
            return Err(bad(&reply));
        };
        let [Value::String(ident), Value::Tuple(exposed) | Value::List(exposed)] = parts.as_slice()
        else {
            return Err(bad(&reply));
        };
        let exposed = exposed
            .iter()
            .map(|m| match m {
                Value::String(s) => Ok(s.clone()),
                _ => Err(bad(&reply)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Proxy {
            client: Arc::clone(&self.inner),
            typeid: typeid.to_owned(),
            ident: ident.clone(),
            exposed,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A new `dict` on the server.
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, ManagerError> {
        self.create("dict", Vec::new()).map(DictProxy::from)
    }

    /// The dict a type id of the server hands out (a shared, named dict:
    /// [`Server::register_shared`](crate::manager::Server::register_shared), or on a
    /// Python server `register('get_shared', callable=lambda: shared, proxytype=DictProxy)`).
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn shared_dict<K, V>(&self, typeid: &str) -> Result<DictProxy<K, V>, ManagerError> {
        self.create(typeid, Vec::new()).map(DictProxy::from)
    }

    /// A new `list` on the server.
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn list<T>(&self) -> Result<ListProxy<T>, ManagerError> {
        self.create("list", Vec::new()).map(ListProxy::from)
    }

    /// A new `Namespace` on the server.
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn namespace(&self) -> Result<NamespaceProxy, ManagerError> {
        self.create("Namespace", Vec::new())
            .map(NamespaceProxy::from)
    }

    /// A new unbounded `Queue` on the server.
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn queue<T>(&self) -> Result<QueueProxy<T>, ManagerError> {
        self.create("Queue", Vec::new()).map(QueueProxy::from)
    }

    /// A new `Queue` holding at most `maxsize` items.
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn queue_with_maxsize<T>(&self, maxsize: usize) -> Result<QueueProxy<T>, ManagerError> {
        self.create("Queue", vec![Value::I64(maxsize as i64)])
            .map(QueueProxy::from)
    }

    /// A new `Lock` on the server.
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn lock(&self) -> Result<LockProxy, ManagerError> {
        self.create("Lock", Vec::new()).map(LockProxy::from)
    }

    /// A new `RLock` on the server (reentrant; held by the connection that took it).
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn rlock(&self) -> Result<LockProxy, ManagerError> {
        self.create("RLock", Vec::new()).map(LockProxy::from)
    }

    /// A new `Event` on the server.
    ///
    /// # Errors
    /// Those of [`create`](Client::create).
    pub fn event(&self) -> Result<EventProxy, ManagerError> {
        self.create("Event", Vec::new()).map(EventProxy::from)
    }

    /// A new `Value` on the server (Python's `manager.Value(typecode, value)`).
    ///
    /// # Errors
    /// Those of [`create`](Client::create), and [`ManagerError::Codec`] when `value`
    /// cannot be pickled.
    pub fn value<T: Serialize>(
        &self,
        typecode: &str,
        value: &T,
    ) -> Result<ValueProxy<T>, ManagerError> {
        let v = to_value(value, "the initial value")?;
        self.create("Value", vec![Value::String(typecode.to_owned()), v])
            .map(ValueProxy::from)
    }

    /// How many objects the server holds.
    ///
    /// # Errors
    /// The connection errors of [`connect`](Client::connect).
    pub fn number_of_objects(&self) -> Result<usize, ManagerError> {
        match self
            .inner
            .dispatch("number_of_objects", Vec::new(), Kwds::new())?
        {
            Value::I64(n) => Ok(n.max(0) as usize),
            other => Err(ManagerError::Protocol {
                reason: format!("number_of_objects answered {}", pickle::repr(&other)),
            }),
        }
    }

    /// The server's description of its objects and their reference counts.
    ///
    /// # Errors
    /// The connection errors of [`connect`](Client::connect).
    pub fn debug_info(&self) -> Result<String, ManagerError> {
        let v = self.inner.dispatch("debug_info", Vec::new(), Kwds::new())?;
        from_value(v, "the debug info")
    }

    /// Asks the server to stop (Python's `BaseManager.shutdown` sends the same).
    ///
    /// # Errors
    /// The connection errors of [`connect`](Client::connect).
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        self.inner
            .dispatch("shutdown", Vec::new(), Kwds::new())
            .map(drop)
    }
}

/// A reference to one object on a manager server, whatever its type: calls of its
/// exposed methods with plain values. The typed proxies wrap one.
///
/// Dropping the proxy gives its reference back (`decref`); the server removes the
/// object when no reference is left.
///
/// # Examples
/// ```
/// use shoal::manager::{Client, Kwds, Server, Value};
///
/// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
/// let client = Client::connect(server.address(), b"key")?;
/// let d = client.create("dict", vec![])?;
/// assert!(d.exposed().iter().any(|m| m == "setdefault"));
/// d.call("__setitem__", vec![Value::String("k".into()), Value::I64(1)])?;
/// let mut kw = Kwds::new();
/// kw.insert("default".into(), Value::I64(0));
/// assert_eq!(d.call_kw("get", vec![Value::String("x".into())], kw)?, Value::I64(0));
/// let err = d.call("__getitem__", vec![Value::String("x".into())]).unwrap_err();
/// assert!(err.remote().is_some_and(|e| e.is("builtins", "KeyError")));
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
pub struct Proxy {
    client: Arc<Inner>,
    typeid: String,
    ident: String,
    exposed: Vec<String>,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("typeid", &self.typeid)
            .field("ident", &self.ident)
            .field("address", &self.client.address)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// The type id the object was created with.
    pub fn typeid(&self) -> &str {
        &self.typeid
    }

    /// The object's id on the server.
    pub fn ident(&self) -> &str {
        &self.ident
    }

    /// The methods the server lets clients call.
    pub fn exposed(&self) -> &[String] {
        &self.exposed
    }

    /// Calls `method` with positional arguments.
    ///
    /// # Errors
    /// [`ManagerError::Remote`] with the exception the method raised;
    /// [`ManagerError::Server`] for a method that is not exposed;
    /// [`ManagerError::ServerGone`] when the server went away.
    pub fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, ManagerError> {
        self.call_kw(method, args, Kwds::new())
    }

    /// Calls `method` with positional and keyword arguments.
    ///
    /// # Errors
    /// Those of [`call`](Proxy::call).
    pub fn call_kw(
        &self,
        method: &str,
        args: Vec<Value>,
        kwds: Kwds,
    ) -> Result<Value, ManagerError> {
        let idle = lock(&self.idle).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = self.client.connect()?;
                let name = format!(
                    "shoal-{}|{:?}",
                    std::process::id(),
                    std::thread::current().id()
                );
                self.client.request(
                    &c,
                    None,
                    "accept_connection",
                    vec![Value::String(name)],
                    Kwds::new(),
                )?;
                c
            }
        };
        let result = self
            .client
            .request(&conn, Some(&self.ident), method, args, kwds);
        // The connection stays sound after a reply, whatever the reply said.
        if matches!(
            result,
            Ok(_) | Err(ManagerError::Remote(_) | ManagerError::Server { .. })
        ) {
            lock(&self.idle).push(conn);
        }
        result
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        lock(&self.idle).clear();
        // Best effort, as Python's finaliser: a server that is gone has nothing to free.
        let _ = self.client.decref(&self.ident);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_exception_with_state_keeps_its_arguments() {
        // pickle.dumps(('#ERROR', AttributeError("no x", name="x")), protocol=4) on 3.13.
        let bytes = b"\x80\x04\x95N\x00\x00\x00\x00\x00\x00\x00\x8c\x06#ERROR\x94\x8c\x08builtins\x94\x8c\x0eAttributeError\x94\x93\x94\x8c\x04no x\x94\x85\x94R\x94}\x94(\x8c\x04name\x94\x8c\x01x\x94\x8c\x04args\x94h\x05ub\x86\x94.";
        match parse_reply(bytes) {
            Err(ManagerError::Remote(e)) => {
                assert!(e.is("builtins", "AttributeError"));
                assert_eq!(e.message(), "no x");
            }
            other => panic!("{other:?}"),
        }
    }
}
