use std::fmt;

use serde_pickle::Value;

use crate::manager::pickle;
use crate::net::{Address, NetError};

/// A Python exception: what a managed object's method raises on the server, and what a
/// client receives (`('#ERROR', exception)` on the wire).
///
/// The server pickles it as `module.name(*args)`, so a Python client raises that very
/// exception (`KeyError('x')`, `queue.Empty()`); a Rust client gets it back inside
/// [`ManagerError::Remote`].
///
/// # Examples
/// ```
/// use shoal::manager::{CallError, Value};
///
/// let e = CallError::key_error(Value::String("missing".into()));
/// assert_eq!(e.type_name(), "KeyError");
/// assert_eq!(e.to_string(), "KeyError: 'missing'");
/// let e = CallError::new("queue", "Empty", vec![]);
/// assert_eq!(e.type_name(), "queue.Empty");
/// assert!(e.is("queue", "Empty"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    module: String,
    name: String,
    args: Vec<Value>,
}

impl CallError {
    /// The exception `module.name(*args)`.
    pub fn new(module: impl Into<String>, name: impl Into<String>, args: Vec<Value>) -> CallError {
        let mut module = module.into();
        // CPython defines `queue.Empty` in its C module `_queue`: one name for both.
        if module == "_queue" {
            module = "queue".to_owned();
        }
        CallError {
            module,
            name: name.into(),
            args,
        }
    }

    fn builtin(name: &str, message: impl Into<String>) -> CallError {
        CallError::new("builtins", name, vec![Value::String(message.into())])
    }

    /// `KeyError(key)`.
    pub fn key_error(key: Value) -> CallError {
        CallError::new("builtins", "KeyError", vec![key])
    }

    /// `IndexError(message)`.
    pub fn index_error(message: impl Into<String>) -> CallError {
        CallError::builtin("IndexError", message)
    }

    /// `ValueError(message)`.
    pub fn value_error(message: impl Into<String>) -> CallError {
        CallError::builtin("ValueError", message)
    }

    /// `TypeError(message)`.
    pub fn type_error(message: impl Into<String>) -> CallError {
        CallError::builtin("TypeError", message)
    }

    /// `AttributeError(message)`.
    pub fn attribute_error(message: impl Into<String>) -> CallError {
        CallError::builtin("AttributeError", message)
    }

    /// `RuntimeError(message)`.
    pub fn runtime_error(message: impl Into<String>) -> CallError {
        CallError::builtin("RuntimeError", message)
    }

    /// The module of the exception's class (`"builtins"`, `"queue"`).
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The class name (`"KeyError"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as Python users write it: `KeyError` for builtins, `queue.Empty` else.
    pub fn type_name(&self) -> String {
        if self.module == "builtins" {
            self.name.clone()
        } else {
            format!("{}.{}", self.module, self.name)
        }
    }

    /// The exception's arguments.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// Whether this is `module.name` (`is("builtins", "KeyError")`).
    pub fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }

    /// Python's `str(exception)`.
    pub fn message(&self) -> String {
        match self.args.as_slice() {
            [] => String::new(),
            [Value::String(s)] if self.name != "KeyError" => s.clone(),
            [one] => pickle::repr(one),
            many => pickle::repr(&Value::Tuple(many.to_vec())),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message();
        if message.is_empty() {
            write!(f, "{}", self.type_name())
        } else {
            write!(f, "{}: {message}", self.type_name())
        }
    }
}

impl std::error::Error for CallError {}

/// Why a manager operation failed.
///
/// # Examples
/// ```
/// use shoal::manager::{Client, ManagerError, Server};
///
/// let server = Server::bind("127.0.0.1:0", b"right key")?.start()?;
/// let refused = Client::connect(server.address(), b"wrong key").unwrap_err();
/// assert!(matches!(refused, ManagerError::AuthRefused { .. }));
/// assert!(refused.to_string().contains("refused the authentication key"));
/// # Ok::<(), ManagerError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ManagerError {
    /// The server refused the authentication key (or the client refused the server's).
    AuthRefused {
        /// The server's address.
        address: Address,
        /// The handshake's error.
        source: NetError,
    },
    /// The server cannot be reached any more: its connection ended or it refuses
    /// connections (it exited or was killed).
    ServerGone {
        /// The server's address.
        address: Address,
        /// What showed it.
        source: NetError,
    },
    /// The method raised an exception on the server.
    Remote(CallError),
    /// The server failed to handle the request (`#TRACEBACK` or `#UNSERIALIZABLE`: an
    /// unknown object, method or type id, or a result it could not send); the text is
    /// the server's.
    Server {
        /// The server's description (a Python traceback from a Python server).
        text: String,
    },
    /// A value could not be encoded to or decoded from a pickle.
    Codec {
        /// What was being encoded or decoded.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The peer sent a message outside the manager protocol.
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// Any other network error (binding the server's address, for one).
    Net(NetError),
}

impl ManagerError {
    /// The remote exception, when the error is one.
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Client, Server};
    ///
    /// let server = Server::bind("127.0.0.1:0", b"key")?.start()?;
    /// let client = Client::connect(server.address(), b"key")?;
    /// let q = client.queue::<u8>()?;
    /// let err = q.get_nowait().unwrap_err();
    /// assert!(err.remote().is_some_and(|e| e.is("queue", "Empty")));
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn remote(&self) -> Option<&CallError> {
        match self {
            ManagerError::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// Sorts a network error met while talking to the server at `address`.
    pub(crate) fn from_net(address: &Address, e: NetError) -> ManagerError {
        let gone = match &e {
            NetError::Eof | NetError::Truncated { .. } | NetError::Closed => true,
            NetError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        };
        if gone {
            ManagerError::ServerGone {
                address: address.clone(),
                source: e,
            }
        } else if matches!(e, NetError::Authentication(_)) {
            ManagerError::AuthRefused {
                address: address.clone(),
                source: e,
            }
        } else {
            ManagerError::Net(e)
        }
    }
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagerError::AuthRefused { address, source } => write!(
                f,
                "the manager at {address} refused the authentication key ({source})"
            ),
            ManagerError::ServerGone { address, source } => {
                write!(f, "the manager at {address} is gone ({source})")
            }
            ManagerError::Remote(e) => write!(f, "the managed object raised {e}"),
            ManagerError::Server { text } => {
                write!(
                    f,
                    "the manager failed to handle the request: {}",
                    text.trim_end()
                )
            }
            ManagerError::Codec { what, reason } => write!(f, "could not {what}: {reason}"),
            ManagerError::Protocol { reason } => {
                write!(f, "the manager protocol was broken: {reason}")
            }
            ManagerError::Net(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ManagerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ManagerError::AuthRefused { source, .. } | ManagerError::ServerGone { source, .. } => {
                Some(source)
            }
            ManagerError::Remote(e) => Some(e),
            ManagerError::Net(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NetError> for ManagerError {
    fn from(e: NetError) -> ManagerError {
        ManagerError::Net(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_python_str() {
        assert_eq!(
            CallError::key_error(Value::I64(3)).to_string(),
            "KeyError: 3"
        );
        assert_eq!(
            CallError::index_error("list index out of range").to_string(),
            "IndexError: list index out of range"
        );
        assert_eq!(
            CallError::new("_queue", "Empty", vec![]).to_string(),
            "queue.Empty"
        );
        let e = ManagerError::Remote(CallError::value_error("bad"));
        assert_eq!(e.to_string(), "the managed object raised ValueError: bad");
    }
}
