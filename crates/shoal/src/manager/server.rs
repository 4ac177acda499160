use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_pickle::Value;

use crate::manager::args::Kwds;
use crate::manager::object::{Builtin, Ctx, Managed, Object, Reply};
use crate::manager::pickle::{self, Wire};
use crate::manager::{CallError, ManagerError};
use crate::net::{Address, Connection, Listener, NetError, ToAddress};

type Factory = Box<dyn Fn(Vec<Value>, Kwds) -> Result<Box<dyn Managed>, CallError> + Send + Sync>;

enum Kind {
    Builtin(Builtin),
    /// One object, the same for every `create` (Python's `register(typeid, callable=lambda: obj)`).
    Shared(String, Arc<Object>),
    User(Factory),
}

struct Entry {
    object: Arc<Object>,
    exposed: Vec<String>,
    refs: u64,
}

struct Shared {
    address: Address,
    registry: RwLock<HashMap<String, Kind>>,
    objects: Mutex<HashMap<String, Entry>>,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    next_conn: AtomicU64,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A manager server on the wire protocol of Python's `multiprocessing.managers`: Python
/// proxies (`SyncManager(address, authkey).connect()`, `BaseManager` subclasses) and
/// Rust [`Client`](crate::manager::Client)s use its objects alike.
///
/// It serves the standard type ids of Python's `SyncManager` with plain-data objects —
/// `dict`, `list`, `Namespace`, `Value`, `Array`, `Queue`/`JoinableQueue`, `Lock`,
/// `RLock`, `Semaphore`, `BoundedSemaphore`, `Condition`, `Event`, `Barrier` (see
/// [`Builtin`]; not `Pool`) — and the types registered with [`register`](Server::register) or
/// [`register_shared`](Server::register_shared). Objects are reference-counted as
/// CPython's server counts them (`incref`/`decref`; an object goes at zero). Every
/// connection is authenticated with the key (HMAC, as `multiprocessing.connection`),
/// and each client connection is served on a thread of its own.
///
/// Beyond Python: a lock (or condition) whose holder's connection ends (the client
/// exited or was killed) is released, and a blocking call (`Queue.get`,
/// `Lock.acquire`, `Event.wait`, `Condition.wait`, `Barrier.wait`) whose client went
/// away gives up instead of taking an item or the lock later.
///
/// # Examples
/// ```
/// use shoal::manager::{Client, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"secret")?.start()?;
/// let client = Client::connect(server.address(), b"secret")?;
/// let d = client.dict::<String, i64>()?;
/// d.insert(&"answer".to_owned(), &42)?;
/// assert_eq!(d.get(&"answer".to_owned())?, Some(42));
/// server.shutdown();
/// # Ok::<(), shoal::manager::ManagerError>(())
/// ```
pub struct Server {
    shared: Arc<Shared>,
    listener: Listener,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.shared.address)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `address` (TCP `"127.0.0.1:0"` for a free port, a Unix socket path, an
    /// `@abstract` name); clients must authenticate with `authkey`.
    ///
    /// # Errors
    /// [`ManagerError::Net`] when the address cannot be bound.
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::Server;
    /// use shoal::net::Address;
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?;
    /// assert!(matches!(server.address(), Address::Tcp(a) if a.port() != 0));
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn bind(address: impl ToAddress, authkey: &[u8]) -> Result<Server, ManagerError> {
        Ok(Server::from_listener(Listener::bind(
            address,
            Some(authkey),
        )?))
    }

    /// A server on a listener of the caller's: for TLS, another digest or frame limit
    /// ([`net::ListenerBuilder`](crate::net::ListenerBuilder)). The listener should
    /// carry an auth key: a manager without one serves anyone who connects.
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Client, Server};
    /// use shoal::net::{self, Digest};
    ///
    /// let listener = net::Listener::builder()
    ///     .authkey(b"key")
    ///     .digest(Digest::Sha384)
    ///     .bind("127.0.0.1:0")?;
    /// let server = Server::from_listener(listener).start()?;
    /// let client = Client::connect_with(server.address(), net::Client::builder().authkey(b"key"))?;
    /// assert_eq!(client.number_of_objects()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_listener(listener: Listener) -> Server {
        let registry = Builtin::TYPEIDS
            .iter()
            .map(|(t, b)| ((*t).to_owned(), Kind::Builtin(*b)))
            .collect();
        Server {
            shared: Arc::new(Shared {
                address: listener.address().clone(),
                registry: RwLock::new(registry),
                objects: Mutex::new(HashMap::new()),
                connections: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                next_conn: AtomicU64::new(1),
                stop: AtomicBool::new(false),
            }),
            listener,
        }
    }

    /// The address clients connect to (with the port the kernel chose for port 0).
    pub fn address(&self) -> &Address {
        &self.shared.address
    }

    /// Registers `typeid`: each `create` request for it makes a new object with
    /// `factory`, from the request's arguments. A Python client reaches it through
    /// `BaseManager.register(typeid)` (an `AutoProxy` with the type's exposed methods).
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{CallError, Client, Kwds, Managed, Server, Value};
    ///
    /// struct Greeter(String);
    /// impl Managed for Greeter {
    ///     fn exposed(&self) -> &[&str] {
    ///         &["greet"]
    ///     }
    ///     fn call(&mut self, _: &str, args: Vec<Value>, _: Kwds) -> Result<Value, CallError> {
    ///         Ok(Value::String(format!("{} {}", self.0, shoal::manager::repr(&Value::List(args)))))
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?;
    /// server.register("Greeter", |args, _kwds| match args.as_slice() {
    ///     [Value::String(s)] => Ok(Greeter(s.clone())),
    ///     _ => Err(CallError::type_error("Greeter(greeting) takes one string")),
    /// });
    /// let server = server.start()?;
    /// let client = Client::connect(server.address(), b"key")?;
    /// let g = client.create("Greeter", vec![Value::String("hello".into())])?;
    /// assert_eq!(g.call("greet", vec![Value::I64(1)])?, Value::String("hello [1]".into()));
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn register<M, F>(&self, typeid: &str, factory: F)
    where
        M: Managed,
        F: Fn(Vec<Value>, Kwds) -> Result<M, CallError> + Send + Sync + 'static,
    {
        let factory: Factory = Box::new(move |args, kwds| {
            factory(args, kwds).map(|m| Box::new(m) as Box<dyn Managed>)
        });
        self.shared
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(typeid.to_owned(), Kind::User(factory));
    }

    /// Registers `typeid` as one shared object of the standard kind `kind`: every
    /// `create` request for it hands out the same object (Python's
    /// `register('get_shared', callable=lambda: shared_dict, proxytype=DictProxy)`).
    /// The object lives as long as the server, even while no client refers to it.
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Builtin, Client, Server};
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?;
    /// server.register_shared("get_shared", Builtin::Dict);
    /// let server = server.start()?;
    /// let client = Client::connect(server.address(), b"key")?;
    /// client.shared_dict::<String, u32>("get_shared")?.insert(&"a".into(), &1)?;
    /// assert_eq!(client.shared_dict::<String, u32>("get_shared")?.len()?, 1);
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn register_shared(&self, typeid: &str, kind: Builtin) {
        let object = Object::builtin(kind, Vec::new(), Kwds::new())
            .map(Arc::new)
            .unwrap_or_else(|_| unreachable!("a builtin without arguments is always made"));
        let ident = self.shared.new_ident();
        self.shared
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(typeid.to_owned(), Kind::Shared(ident, object));
    }

    /// Serves clients in the current thread until one sends `shutdown` (Python's
    /// `BaseManager.shutdown`, [`Client::shutdown`](crate::manager::Client::shutdown)).
    ///
    /// # Errors
    /// None so far: failures of single clients (a wrong key, a broken connection) end
    /// those clients only. The `Result` leaves room for listener failures.
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Client, Server};
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?;
    /// let address = server.address().clone();
    /// let serving = std::thread::spawn(move || server.serve_forever());
    /// Client::connect(&address, b"key")?.shutdown()?;
    /// serving.join().unwrap()?;
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn serve_forever(self) -> Result<(), ManagerError> {
        let Server { shared, listener } = self;
        while !shared.stop.load(Ordering::Acquire) {
            match listener.accept_timeout(Duration::from_millis(100)) {
                Ok(conn) => {
                    let shared = Arc::clone(&shared);
                    let spawned = std::thread::Builder::new()
                        .name("shoal-manager-conn".into())
                        .spawn(move || shared.handle(conn));
                    if let Err(e) = spawned {
                        // No thread for this client: it sees its connection close.
                        drop(e);
                    }
                }
                // A client that failed its handshake, or none yet: serve on.
                Err(_) => continue,
            }
        }
        // Stopping: every connection ends, so that clients see the server go.
        for conn in lock(&shared.connections).values() {
            conn.close();
        }
        Ok(())
    }

    /// Starts serving on a background thread; the handle stops the server when
    /// dropped or [`shutdown`](ServerHandle::shutdown).
    ///
    /// # Errors
    /// [`ManagerError::Net`] when no thread can be started.
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Client, ManagerError, Server};
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
    /// let client = Client::connect(server.address(), b"key")?;
    /// let list = client.list::<u8>()?;
    /// server.shutdown();
    /// assert!(matches!(list.len(), Err(ManagerError::ServerGone { .. })));
    /// # Ok::<(), ManagerError>(())
    /// ```
    pub fn start(self) -> Result<ServerHandle, ManagerError> {
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("shoal-manager".into())
            .spawn(move || self.serve_forever())
            .map_err(|e| {
                ManagerError::Net(NetError::Io {
                    op: "start the manager's thread".to_owned(),
                    source: e,
                })
            })?;
        Ok(ServerHandle {
            shared,
            thread: Some(thread),
        })
    }
}

/// A [`Server`] serving on a background thread ([`Server::start`]).
#[derive(Debug)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), ManagerError>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address clients connect to.
    pub fn address(&self) -> &Address {
        &self.shared.address
    }

    /// How many objects the server holds (Python's `_number_of_objects`).
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Client, Server};
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
    /// let client = Client::connect(server.address(), b"key")?;
    /// let d = client.dict::<u8, u8>()?;
    /// assert_eq!(server.number_of_objects(), 1);
    /// drop(d); // the proxy's reference goes, and the object with it
    /// assert_eq!(server.number_of_objects(), 0);
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn number_of_objects(&self) -> usize {
        lock(&self.shared.objects).len()
    }

    /// Stops the server and waits for its accepting thread: every client connection
    /// is closed, so proxies fail with [`ManagerError::ServerGone`].
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A request: `(ident, methodname, args, kwds)`.
struct Request {
    ident: Option<String>,
    method: String,
    args: Vec<Value>,
    kwds: Kwds,
}

/// The globals a request of plain data may name: the builtins that rebuild plain
/// values, `slice` (list indices), and `Token` (what `get_methods` carries).
const PLAIN_GLOBALS: &[(&str, &str)] = &[
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "slice"),
    ("builtins", "list"),
    ("builtins", "int"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("__builtin__", "bytearray"),
    ("_codecs", "encode"),
    ("multiprocessing.managers", "Token"),
];

/// Reads a request; the error is the reply to send: `#ERROR` with a `TypeError` for
/// objects a Rust server cannot hold, `#TRACEBACK` for a malformed request.
fn parse_request(bytes: &[u8]) -> Result<Request, Vec<u8>> {
    match pickle::globals(bytes) {
        None => {
            return Err(traceback(
                "ValueError: the request is not a well-formed pickle",
            ))
        }
        Some(found) => {
            if let Some((module, name)) = found
                .iter()
                .find(|(m, n)| !PLAIN_GLOBALS.contains(&(m.as_str(), n.as_str())))
            {
                return Err(error(CallError::type_error(format!(
                    "a Rust manager server holds plain data only (numbers, strings, bytes, \
                     lists, tuples, dicts, sets, None), and this call carries {module}.{name}"
                ))));
            }
        }
    }
    parse_plain(bytes).map_err(|text| traceback(format!("ValueError: {text}")))
}

fn parse_plain(bytes: &[u8]) -> Result<Request, String> {
    let v = pickle::decode(bytes)
        .map_err(|e| format!("the request is not a pickle of plain data: {e}"))?;
    let Value::Tuple(parts) = v else {
        return Err(format!("a request is a 4-tuple, not {}", pickle::repr(&v)));
    };
    let [ident, method, args, kwds]: [Value; 4] = parts
        .try_into()
        .map_err(|p: Vec<Value>| format!("a request is a 4-tuple, not a {}-tuple", p.len()))?;
    let ident = match ident {
        Value::None => None,
        Value::String(s) => Some(s),
        other => {
            return Err(format!(
                "an object id is a string, not {}",
                pickle::repr(&other)
            ))
        }
    };
    let Value::String(method) = method else {
        return Err(format!(
            "a method name is a string, not {}",
            pickle::repr(&method)
        ));
    };
    let args = match args {
        Value::Tuple(a) | Value::List(a) => a,
        other => {
            return Err(format!(
                "the arguments are a tuple, not {}",
                pickle::repr(&other)
            ))
        }
    };
    let kwds = match kwds {
        Value::Dict(d) => d
            .into_iter()
            .map(|(k, v)| match k.into_value() {
                Value::String(k) => Ok((k, v)),
                other => Err(format!(
                    "a keyword is a string, not {}",
                    pickle::repr(&other)
                )),
            })
            .collect::<Result<Kwds, String>>()?,
        Value::None => Kwds::new(),
        other => {
            return Err(format!(
                "the keywords are a dict, not {}",
                pickle::repr(&other)
            ))
        }
    };
    Ok(Request {
        ident,
        method,
        args,
        kwds,
    })
}

fn reply(kind: &str, value: Wire) -> Vec<u8> {
    pickle::encode(&Wire::Tuple(vec![
        Wire::Value(Value::String(kind.to_owned())),
        value,
    ]))
}

fn ok(v: Value) -> Vec<u8> {
    reply("#RETURN", Wire::Value(v))
}

/// A `#TRACEBACK` reply: what CPython's server sends when a request itself fails.
fn traceback(text: impl Into<String>) -> Vec<u8> {
    let text = text.into();
    reply(
        "#TRACEBACK",
        Wire::Value(Value::String(format!(
            "Traceback (most recent call last):\n  (a Rust manager server)\n{text}\n"
        ))),
    )
}

fn error(e: CallError) -> Vec<u8> {
    reply(
        "#ERROR",
        Wire::Call {
            module: e.module().to_owned(),
            name: e.name().to_owned(),
            args: e.args().to_vec(),
        },
    )
}

impl Shared {
    fn new_ident(&self) -> String {
        // Python's idents are `'%x' % id(obj)`: any unique string will do.
        format!("{:x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Serves one client connection: one top-level request, or (after
    /// `accept_connection`) the calls of a proxy until the connection ends.
    fn handle(self: Arc<Self>, conn: Connection) {
        let conn = Arc::new(conn);
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        lock(&self.connections).insert(id, Arc::clone(&conn));
        // Checked again now that the connection is listed, so that a shutdown that
        // closed the list before the insertion is not missed.
        if !self.stop.load(Ordering::Acquire) {
            if let Ok(bytes) = conn.recv_bytes() {
                let answer = match parse_request(&bytes) {
                    Err(answer) => answer,
                    Ok(req) if req.method == "accept_connection" => {
                        if conn.send_bytes(&ok(Value::None)).is_ok() {
                            self.serve_client(&conn, id);
                        }
                        Vec::new()
                    }
                    Ok(req) => self.top_level(req),
                };
                if !answer.is_empty() {
                    let _ = conn.send_bytes(&answer);
                }
            }
        }
        lock(&self.connections).remove(&id);
        conn.close();
    }

    fn top_level(&self, req: Request) -> Vec<u8> {
        let ident_arg = |args: &[Value]| match args {
            [Value::String(s)] => Ok(s.clone()),
            // A `Token` arrives as its state, `(typeid, address, id)`.
            [Value::Tuple(t)] if t.len() == 3 => match &t[2] {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "a token's id is a string, not {}",
                    pickle::repr(other)
                )),
            },
            other => Err(format!(
                "{} takes an object id, not {}",
                req.method,
                pickle::repr(&Value::Tuple(other.to_vec()))
            )),
        };
        match req.method.as_str() {
            "dummy" => ok(Value::None),
            "shutdown" => {
                self.stop.store(true, Ordering::Release);
                ok(Value::None)
            }
            "number_of_objects" => ok(Value::I64(lock(&self.objects).len() as i64)),
            "debug_info" => {
                let objects = lock(&self.objects);
                let mut idents: Vec<&String> = objects.keys().collect();
                idents.sort();
                let lines: Vec<String> = idents
                    .into_iter()
                    .map(|i| {
                        let e = &objects[i];
                        let r: String = e.object.repr().chars().take(75).collect();
                        format!("  {i}:       refcount={}\n    {r}", e.refs)
                    })
                    .collect();
                ok(Value::String(lines.join("\n")))
            }
            "create" => match self.create(req.args, req.kwds) {
                Ok((ident, exposed)) => ok(Value::Tuple(vec![
                    Value::String(ident),
                    Value::Tuple(exposed.into_iter().map(Value::String).collect()),
                ])),
                Err(e) => traceback(e.to_string()),
            },
            "incref" | "decref" | "get_methods" => {
                let ident = match ident_arg(&req.args) {
                    Ok(i) => i,
                    Err(text) => return traceback(format!("TypeError: {text}")),
                };
                let mut objects = lock(&self.objects);
                let Some(entry) = objects.get_mut(&ident) else {
                    return traceback(format!("KeyError: {}", pickle::repr(&Value::String(ident))));
                };
                match req.method.as_str() {
                    "incref" => {
                        entry.refs += 1;
                        ok(Value::None)
                    }
                    "decref" => {
                        entry.refs = entry.refs.saturating_sub(1);
                        if entry.refs == 0 {
                            objects.remove(&ident);
                        }
                        ok(Value::None)
                    }
                    _ => ok(Value::Tuple(
                        entry.exposed.iter().cloned().map(Value::String).collect(),
                    )),
                }
            }
            other => traceback(format!("AssertionError: {:?} unrecognized", other)),
        }
    }

    /// `create(typeid, *args, **kwds)`: a new object (or the shared one) with one
    /// reference, its id and its exposed methods.
    fn create(&self, mut args: Vec<Value>, kwds: Kwds) -> Result<(String, Vec<String>), CallError> {
        if args.is_empty() {
            return Err(CallError::type_error("create() needs a type id"));
        }
        let typeid = match args.remove(0) {
            Value::String(t) => t,
            other => {
                return Err(CallError::type_error(format!(
                    "a type id is a string, not {}",
                    pickle::repr(&other)
                )))
            }
        };
        let (ident, object) = {
            let registry = self.registry.read().unwrap_or_else(|p| p.into_inner());
            match registry.get(&typeid) {
                None => {
                    return Err(CallError::key_error(Value::String(typeid)));
                }
                Some(Kind::Builtin(b)) => {
                    (self.new_ident(), Arc::new(Object::builtin(*b, args, kwds)?))
                }
                Some(Kind::Shared(ident, object)) => (ident.clone(), Arc::clone(object)),
                Some(Kind::User(f)) => (
                    self.new_ident(),
                    Arc::new(Object::User(Mutex::new(f(args, kwds)?))),
                ),
            }
        };
        let exposed = object.exposed();
        let mut objects = lock(&self.objects);
        let entry = objects.entry(ident.clone()).or_insert(Entry {
            object,
            exposed: exposed.clone(),
            refs: 0,
        });
        entry.refs += 1;
        Ok((ident, exposed))
    }

    /// The address as Python writes it in a `Token`.
    fn address_value(&self) -> Value {
        match &self.address {
            Address::Tcp(a) => Value::Tuple(vec![
                Value::String(a.ip().to_string()),
                Value::I64(i64::from(a.port())),
            ]),
            Address::Unix(p) => Value::String(p.display().to_string()),
            Address::Abstract(n) => Value::String(format!("\0{}", String::from_utf8_lossy(n))),
        }
    }

    /// Serves a proxy's calls on `conn` until it ends.
    fn serve_client(&self, conn: &Connection, conn_id: u64) {
        let abandoned =
            || self.stop.load(Ordering::Acquire) || conn.poll(Duration::ZERO).unwrap_or(true);
        let ctx = Ctx {
            conn: conn_id,
            abandoned: &abandoned,
        };
        let mut locks: Vec<Arc<Object>> = Vec::new();
        while let Ok(bytes) = conn.recv_bytes() {
            let answer = match parse_request(&bytes) {
                Err(answer) => answer,
                Ok(req) => self.call(req, &ctx, &mut locks),
            };
            if conn.send_bytes(&answer).is_err() {
                break;
            }
        }
        for l in locks {
            l.release_held_by(conn_id);
        }
    }

    fn call(&self, req: Request, ctx: &Ctx<'_>, locks: &mut Vec<Arc<Object>>) -> Vec<u8> {
        let Some(ident) = req.ident else {
            return traceback("TypeError: a call needs an object id");
        };
        let found = lock(&self.objects)
            .get(&ident)
            .map(|e| (Arc::clone(&e.object), e.exposed.contains(&req.method)));
        let Some((object, exposed)) = found else {
            return traceback(format!("KeyError: {}", pickle::repr(&Value::String(ident))));
        };
        if !exposed {
            // CPython's fallbacks for methods outside `exposed`.
            return match req.method.as_str() {
                "__repr__" | "__str__" => ok(Value::String(object.repr())),
                "#GETVALUE" => match object.value() {
                    Ok(w) => reply("#RETURN", w),
                    Err(e) => error(e),
                },
                m => traceback(format!(
                    "AttributeError: method {m:?} is not in exposed={:?}",
                    object.exposed()
                )),
            };
        }
        match object.call(&req.method, req.args, req.kwds, ctx) {
            Ok(Reply::Wire(w)) => {
                if object.held_by(ctx.conn) && !locks.iter().any(|l| Arc::ptr_eq(l, &object)) {
                    locks.push(Arc::clone(&object));
                }
                reply("#RETURN", w)
            }
            Ok(Reply::Iterator(items)) => {
                let object = Arc::new(Object::iterator(items));
                let exposed = object.exposed();
                let ident = self.new_ident();
                lock(&self.objects).insert(
                    ident.clone(),
                    Entry {
                        object,
                        exposed: exposed.clone(),
                        refs: 1,
                    },
                );
                let token = Wire::Object {
                    module: "multiprocessing.managers",
                    name: "Token",
                    state: Value::Tuple(vec![
                        Value::String("Iterator".into()),
                        self.address_value(),
                        Value::String(ident),
                    ]),
                };
                reply(
                    "#PROXY",
                    Wire::Tuple(vec![
                        Wire::Value(Value::Tuple(
                            exposed.into_iter().map(Value::String).collect(),
                        )),
                        token,
                    ]),
                )
            }
            Err(e) => error(e),
        }
    }
}
