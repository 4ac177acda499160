//! Managers: objects on a server process that other processes — Rust or Python — use
//! through proxies, on the wire protocol of Python's `multiprocessing.managers`.
//!
//! A [`Server`] holds the objects; a [`Client`] connects to one (a Rust server or a
//! Python `SyncManager`/`BaseManager` one) and creates objects there, each reached
//! through a proxy: [`DictProxy`], [`ListProxy`], [`NamespaceProxy`], [`QueueProxy`],
//! [`LockProxy`], [`EventProxy`], [`ValueProxy`], or the untyped [`Proxy`] for
//! registered types. A Python program connects to a Rust server with the standard
//! library alone (`SyncManager(address, authkey).connect()`), so a Rust and a Python
//! process can share one dict.
//!
//! The protocol is CPython's: every connection is authenticated with the key (the HMAC
//! challenge of `multiprocessing.connection`, through [`crate::net`]); each message is
//! a pickle. A request is `(ident, method, args, kwds)`; a reply is
//! `('#RETURN', value)`, `('#ERROR', exception)` or `('#TRACEBACK', text)`. Top-level
//! requests (ident `None`, one per connection) are `create`, `incref`, `decref`,
//! `get_methods`, `number_of_objects`, `debug_info`, `dummy`, `shutdown`, and
//! `accept_connection`, after which the connection carries a proxy's calls.
//!
//! A Rust server holds **plain data only**: the values its objects keep are what
//! pickles of numbers, strings, bytes, lists, tuples, dicts, sets and `None` give
//! ([`Value`]). A Python client can store those and read them back; instances of its
//! own classes reach the server as their pickled state, not as objects, and functions
//! (a `sort(key=...)`) cannot be called there. Python objects keep Python semantics
//! only on a Python server — which a Rust [`Client`] can use just as well.
//!
//! # Examples
//! ```
//! use shoal::manager::{Client, Server};
//!
//! // The server, here on a thread (`serve_forever` serves in the current one).
//! let server = Server::bind("127.0.0.1:0", b"secret")?.start()?;
//!
//! // A client, in this process or any other that knows the address and the key.
//! let client = Client::connect(server.address(), b"secret")?;
//! let scores = client.dict::<String, u32>()?;
//! scores.insert(&"ada".to_owned(), &3)?;
//! scores.insert(&"bob".to_owned(), &5)?;
//! assert_eq!(scores.keys()?, ["ada", "bob"]);
//!
//! let jobs = client.queue::<(u32, String)>()?;
//! jobs.put(&(1, "first".to_owned()))?;
//! assert_eq!(jobs.get()?, (1, "first".to_owned()));
//! # Ok::<(), shoal::manager::ManagerError>(())
//! ```
//!
//! The same dict from Python, given the address and the key:
//!
//! ```python
//! from multiprocessing.managers import SyncManager
//! m = SyncManager(address=("127.0.0.1", port), authkey=b"secret")
//! m.connect()
//! d = m.dict()           # or a shared one, registered on both sides
//! d["ada"] = 3
//! ```
#![deny(unsafe_code)]

mod args;
mod client;
mod error;
mod object;
mod pickle;
mod proxies;
mod server;
mod spawned;

pub use args::Kwds;
pub use client::{Client, Proxy};
pub use error::{CallError, ManagerError};
pub use object::{Builtin, Managed};
pub use proxies::{
    kwds, DictProxy, EventProxy, ListProxy, LockProxy, NamespaceProxy, QueueProxy, ValueProxy,
};
/// The plain values a manager's objects hold and its calls carry (serde-pickle's).
pub use serde_pickle::{HashableValue, Value};
pub use server::{Server, ServerHandle};
pub use spawned::ServerProcess;

/// Python's `repr` of a plain value (`"['a', 1, None]"`).
///
/// # Examples
/// ```
/// use shoal::manager::{repr, Value};
///
/// let v = Value::Tuple(vec![Value::String("a".into()), Value::None]);
/// assert_eq!(repr(&v), "('a', None)");
/// ```
pub fn repr(v: &Value) -> String {
    pickle::repr(v)
}
