"""`shoal.managers`: managers (`BaseManager`, `SyncManager`, `Server`, the proxies) on
shoal's connections, speaking the standard library's protocol.

A manager is a server process holding objects; proxies in other processes call their
methods over authenticated connections. Requests are the pickled tuples
``(ident, methodname, args, kwds)`` and answers ``('#RETURN', value)``,
``('#ERROR', exception)``, ``('#TRACEBACK', text)`` or ``('#PROXY', (exposed, token))``,
as in `multiprocessing.managers`, so a standard-library client can use a shoal manager
and a shoal client a standard-library one.

What is shoal's: the transport (`shoal.connection`'s Rust connections, with the HMAC
handshake done in Rust before the server sees a connection), and the round trip of a
proxy call, which pickles the request, sends it, waits without the GIL and unpickles
the answer in one native call (plain data is pickled and unpickled in Rust); the
server's loop per connection runs in Rust too, receiving and unpickling without the
GIL and calling a plain method without Python bytecode around it. A proxy
whose server is gone raises `ManagerConnectionError` (an `EOFError` and a
`ConnectionError`, naming the manager's address) at once, on every later call too.

The data types that travel (`Token`, `Namespace`, `Value`, `RemoteError`) are the
standard library's classes, so that the pickles are the same on both sides. Proxies and
managers are subclasses of the standard library's (``isinstance`` checks keep working).
The ``'xmlrpclib'`` serializer uses the standard library's XML connections.
`SharedMemoryManager` makes and tracks shoal's segments.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from multiprocessing import connection as _std_connection
from multiprocessing import managers as _std
from multiprocessing import process, util
from multiprocessing.context import AuthenticationError, ProcessError, get_spawning_popen
from multiprocessing.managers import (
    Array,
    Namespace,
    RebuildProxy,
    RemoteError,
    State,
    Token,
    Value,
    convert_to_error,
)
from traceback import format_exc
from typing import Any, ClassVar

from . import _shoal, connection, shared_memory
from ._errors import ManagerConnectionError
from ._pickle import loads as _loads

__all__ = [
    "Array",
    "AutoProxy",
    "BaseManager",
    "BaseProxy",
    "ManagerConnectionError",
    "Namespace",
    "RemoteError",
    "Server",
    "SharedMemoryManager",
    "SyncManager",
    "Token",
    "Value",
]

_RawNet = _shoal.RawNetConnection

# Listener and client per serializer: shoal's for pickle, the standard library's XML
# ones for xmlrpclib.
listener_client: dict[str, tuple[Any, Any]] = {
    "pickle": (connection.Listener, connection.Client),
    "xmlrpclib": (_std_connection.XmlListener, _std_connection.XmlClient),
}


def _serializer_pair(serializer: str) -> tuple[Any, Any]:
    try:
        return listener_client[serializer]
    except KeyError:
        raise ValueError(f"unknown serializer {serializer!r}: use 'pickle' or 'xmlrpclib'") from None


def _caller(conn: Any) -> Any:
    """The round trip of `conn`: one native call on a shoal connection."""
    raw = getattr(conn, "_raw", None)
    if type(raw) is _RawNet:
        return raw.call

    def call(request: tuple) -> Any:
        conn.send(request)
        return conn.recv()

    return call


def _unreachable(address: Any, e: BaseException) -> ManagerConnectionError:
    return ManagerConnectionError(
        f"the manager at {address!r} cannot be reached (its server process died, shut "
        f"down, or the connection broke): {type(e).__name__}: {e}".rstrip(": "))


def _client(Client: Any, address: Any, authkey: Any) -> Any:
    """A connection to the manager at `address`; `ManagerConnectionError` when nothing
    answers there."""
    try:
        return Client(address, authkey=authkey)
    except (EOFError, OSError) as e:  # refused, or the server went during the handshake
        raise _unreachable(address, e) from e


def dispatch(c: Any, id: Any, methodname: str, args: tuple = (), kwds: Any = None) -> Any:
    """Send the request ``(id, methodname, args, kwds)`` over `c` and return the
    answer's value (or raise its error)."""
    kind, result = _caller(c)((id, methodname, args, {} if kwds is None else kwds))
    if kind == "#RETURN":
        return result
    try:
        raise convert_to_error(kind, result)
    finally:
        del result


# -- the server ------------------------------------------------------------------------

class Server(_std.Server):
    """The server a manager's process runs: it holds the shared objects and serves
    each connection in a thread of its own."""

    def __init__(self, registry: dict, address: Any, authkey: bytes, serializer: str) -> None:
        if not isinstance(authkey, bytes):
            raise TypeError(f"Authkey {authkey!r} is type {type(authkey)!s}, not bytes")
        self.registry = registry
        self.authkey = process.AuthenticationString(authkey)
        Listener, _ = _serializer_pair(serializer)
        if serializer == "pickle":
            # The listener asks every client for the key before `accept` returns it.
            family = None if address else "AF_UNIX"
            self.listener = Listener(address=address, family=family, backlog=128, authkey=bytes(authkey))
            self._handshake_done = True
        else:
            self.listener = Listener(address=address, backlog=128)
            self._handshake_done = False
        self.address = self.listener.address
        self.id_to_obj = {"0": (None, ())}
        self.id_to_refcount: dict[str, int] = {}
        self.id_to_local_proxy_obj: dict[str, Any] = {}
        self.mutex = threading.Lock()

    def accepter(self) -> None:
        """Accept connections for ever, each served by a thread of its own. A client
        that fails the handshake is dropped (the listener runs handshakes side by side:
        a silent client holds up nobody)."""
        while True:
            try:
                c = self.listener.accept()
            except (OSError, AuthenticationError):
                continue
            t = threading.Thread(target=self.handle_request, args=(c,))
            t.daemon = True
            t.start()

    def _handle_request(self, c: Any) -> None:
        request = None
        try:
            if not self._handshake_done:
                _std_connection.deliver_challenge(c, self.authkey)
                _std_connection.answer_challenge(c, self.authkey)
            request = c.recv()
            _ignore, funcname, args, kwds = request
            assert funcname in self.public, f"{funcname!r} unrecognized"
            func = getattr(self, funcname)
        except Exception:  # noqa: BLE001 - the failure is the answer
            msg: tuple = ("#TRACEBACK", format_exc())
        else:
            try:
                result = func(c, *args, **kwds)
            except Exception:  # noqa: BLE001 - the failure is the answer
                msg = ("#TRACEBACK", format_exc())
            else:
                msg = ("#RETURN", result)
        try:
            c.send(msg)
        except Exception as e:  # noqa: BLE001 - the answer could not be sent: a traceback is tried
            try:
                c.send(("#TRACEBACK", format_exc()))
            except Exception:  # noqa: BLE001 - the client may be gone
                pass
            util.info("Failure to send message: %r", msg)
            util.info(" ... request was %r", request)
            util.info(" ... exception was %r", e)

    def handle_request(self, conn: Any) -> None:
        """Serve a new connection: one request, or (``accept_connection``) all of its
        requests until it closes."""
        try:
            self._handle_request(conn)
        except SystemExit:
            pass  # `serve_client` leaves with sys.exit at end of stream
        finally:
            conn.close()

    def serve_client(self, conn: Any) -> None:
        """Answer the requests of one proxy connection until it closes.

        On a shoal connection the loop runs in Rust: requests are received and
        unpickled without the GIL, and a plain method call (one that returns a value)
        runs there; the rest comes to `_answer`."""
        raw = getattr(conn, "_raw", None)
        if type(raw) is _RawNet:
            try:
                raw.serve_manager(self.id_to_obj, self.stop_event,
                                  lambda data: self._answer(conn, data, loads=True),
                                  lambda msg: self._send_answer(conn, msg))
            except OSError as e:
                util.info("exception in thread serving %r", threading.current_thread().name)
                util.info(" ... exception was %r", e)
                conn.close()
                sys.exit(1)
            util.debug("got EOF -- exiting thread serving %r", threading.current_thread().name)
            sys.exit(0)
        while not self.stop_event.is_set():
            try:
                request = conn.recv()
            except EOFError:
                util.debug("got EOF -- exiting thread serving %r", threading.current_thread().name)
                sys.exit(0)
            except Exception:  # noqa: BLE001 - the failure is the answer
                msg: tuple = ("#TRACEBACK", format_exc())
            else:
                msg = self._answer(conn, request)
            self._send_answer(conn, msg)

    def _answer(self, conn: Any, request: Any, loads: bool = False) -> tuple:
        """The answer to one request (its pickle, with `loads`)."""
        methodname = obj = ident = None
        try:
            if loads:
                request = _loads(request)
            ident, methodname, args, kwds = request
            try:
                obj, exposed, gettypeid = self.id_to_obj[ident]
            except KeyError as ke:
                try:
                    obj, exposed, gettypeid = self.id_to_local_proxy_obj[ident]
                except KeyError:
                    raise ke from None
            if methodname not in exposed:
                raise AttributeError(
                    f"method {methodname!r} of {type(obj)!r} object is not in exposed={exposed!r}")
            function = getattr(obj, methodname)
            try:
                res = function(*args, **kwds)
            except Exception as e:  # noqa: BLE001 - the method's exception is the answer
                return ("#ERROR", e)
            typeid = gettypeid and gettypeid.get(methodname, None)
            if typeid:
                rident, rexposed = self.create(conn, typeid, res)
                token = Token(typeid, self.address, rident)
                return ("#PROXY", (rexposed, token))
            return ("#RETURN", res)
        except AttributeError:
            if methodname is None:
                return ("#TRACEBACK", format_exc())
            try:
                fallback = self.fallback_mapping[methodname]
                return ("#RETURN", fallback(self, conn, ident, obj, *args, **kwds))
            except Exception:  # noqa: BLE001 - the failure is the answer
                return ("#TRACEBACK", format_exc())
        except Exception:  # noqa: BLE001 - the failure is the answer
            return ("#TRACEBACK", format_exc())

    def _send_answer(self, conn: Any, msg: tuple) -> None:
        """Send `msg`, or the traceback of its pickling; a connection that fails ends
        the thread."""
        try:
            try:
                conn.send(msg)
            except Exception:  # noqa: BLE001 - the failure is the answer
                conn.send(("#UNSERIALIZABLE", format_exc()))
        except Exception as e:  # noqa: BLE001 - the connection is dropped, the server goes on
            util.info("exception in thread serving %r", threading.current_thread().name)
            util.info(" ... message was %r", msg)
            util.info(" ... exception was %r", e)
            conn.close()
            sys.exit(1)


# -- the manager -----------------------------------------------------------------------

def _default_context() -> Any:
    from . import context

    return context._default_context.get_context()


class BaseManager(_std.BaseManager):
    """A manager: `start()` runs its server in a new process (or `connect()` reaches
    a running one at `address`); `register` adds the types it serves."""

    _registry: ClassVar[dict] = {}
    _Server = Server

    def __init__(self, address: Any = None, authkey: bytes | None = None, serializer: str = "pickle",
                 ctx: Any = None, *, shutdown_timeout: float = 1.0) -> None:
        if authkey is None:
            authkey = process.current_process().authkey
        self._address = address
        self._authkey = process.AuthenticationString(authkey)
        self._state = State()
        self._state.value = State.INITIAL
        self._serializer = serializer
        self._Listener, self._Client = _serializer_pair(serializer)
        self._ctx = ctx or _default_context()
        self._shutdown_timeout = shutdown_timeout
        self._process: Any = None

    def _check_initial(self) -> None:
        if self._state.value != State.INITIAL:
            if self._state.value == State.STARTED:
                raise ProcessError("Already started server")
            if self._state.value == State.SHUTDOWN:
                raise ProcessError("Manager has shut down")
            raise ProcessError(f"Unknown state {self._state.value!r}")

    def get_server(self) -> Server:
        """A server for this manager's types, to run in this process with
        `serve_forever()` (its `address` says where it listens)."""
        self._check_initial()
        return self._Server(self._registry, self._address, self._authkey, self._serializer)

    def connect(self) -> None:
        """Connect this manager object to a running server at its address."""
        conn = _client(self._Client, self._address, self._authkey)
        try:
            dispatch(conn, None, "dummy")
        finally:
            conn.close()
        self._state.value = State.STARTED

    def start(self, initializer: Any = None, initargs: tuple = ()) -> None:
        """Start the server in a new process (`initializer(*initargs)` runs there
        first)."""
        self._check_initial()
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        reader, writer = _std_connection.Pipe(duplex=False)
        self._process = self._ctx.Process(
            target=type(self)._run_server,
            args=(self._registry, self._address, self._authkey, self._serializer, writer,
                  initializer, initargs),
        )
        ident = ":".join(str(i) for i in self._process._identity)
        self._process.name = type(self).__name__ + "-" + ident
        self._process.start()
        writer.close()
        try:
            self._address = reader.recv()
        except EOFError:
            self._process.join(self._shutdown_timeout)
            raise ProcessError(
                f"the server process of {type(self).__name__} ended before it reported its address "
                f"(exit code {self._process.exitcode})") from None
        finally:
            reader.close()
        self._state.value = State.STARTED
        self.shutdown = util.Finalize(
            self, type(self)._finalize_manager,
            args=(self._process, self._address, self._authkey, self._state, self._Client,
                  self._shutdown_timeout),
            exitpriority=0,
        )

    @classmethod
    def _run_server(cls, registry: dict, address: Any, authkey: bytes, serializer: str, writer: Any,
                    initializer: Any = None, initargs: tuple = ()) -> None:
        # The server ignores Ctrl-C meant for its parent (bpo-36368).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if initializer is not None:
            initializer(*initargs)
        server = cls._Server(registry, address, authkey, serializer)
        writer.send(server.address)
        writer.close()
        util.info("manager serving at %r", server.address)
        server.serve_forever()

    def _create(self, typeid: str, /, *args: Any, **kwds: Any) -> tuple[Token, Any]:
        assert self._state.value == State.STARTED, "server not yet started"
        conn = _client(self._Client, self._address, self._authkey)
        try:
            id, exposed = dispatch(conn, None, "create", (typeid, *args), kwds)
        finally:
            conn.close()
        return Token(typeid, self._address, id), exposed

    @staticmethod
    def _finalize_manager(process: Any, address: Any, authkey: Any, state: Any, _Client: Any,
                          shutdown_timeout: float = 1.0) -> None:
        if process.is_alive():
            util.info("sending shutdown message to manager")
            try:
                conn = _Client(address, authkey=authkey)
                try:
                    dispatch(conn, None, "shutdown")
                finally:
                    conn.close()
            except Exception:  # noqa: BLE001 - the server may be gone already
                pass
            process.join(timeout=shutdown_timeout)
            if process.is_alive():
                util.info("manager still alive")
                process.terminate()
                process.join(timeout=shutdown_timeout)
                if process.is_alive():
                    util.info("manager still alive after terminate")
                    process.kill()
                    process.join()
        state.value = State.SHUTDOWN
        BaseProxy._address_to_local.pop(address, None)

    @classmethod
    def register(cls, typeid: str, callable: Any = None, proxytype: Any = None, exposed: Any = None,
                 method_to_typeid: Any = None, create_method: bool = True) -> None:
        """Register `typeid`: the manager makes its objects with `callable` and hands
        out `proxytype` proxies for them (an `AutoProxy` by default)."""
        super().register(typeid, callable, proxytype or AutoProxy, exposed, method_to_typeid,
                         create_method)


# -- proxies ---------------------------------------------------------------------------

class BaseProxy(_std.BaseProxy):
    """A proxy for an object held by a manager's server: method calls travel to it."""

    _address_to_local: ClassVar[dict] = {}
    _mutex = util.ForkAwareThreadLock()

    def __init__(self, token: Token, serializer: str, manager: Any = None, authkey: Any = None,
                 exposed: Any = None, incref: bool = True, manager_owned: bool = False) -> None:
        with BaseProxy._mutex:
            tls_idset = BaseProxy._address_to_local.get(token.address, None)
            if tls_idset is None:
                tls_idset = util.ForkAwareLocal(), _std.ProcessLocalSet()
                BaseProxy._address_to_local[token.address] = tls_idset
        # The connection this thread uses for the manager at `token.address`, and the
        # ids of the objects there this process holds references to.
        self._tls, self._idset = tls_idset
        self._token = token
        self._id = token.id
        self._manager = manager
        self._serializer = serializer
        self._Client = _serializer_pair(serializer)[1]
        # True for a proxy rebuilt inside the manager's own server (nested proxies).
        self._owned_by_manager = manager_owned
        if authkey is not None:
            self._authkey = process.AuthenticationString(authkey)
        elif manager is not None:
            self._authkey = manager._authkey
        else:
            # A proxy unpickled from an answer (nested proxies) uses the key this
            # thread's connection to that manager uses (the standard library's falls
            # back to the process's key, which a remote manager does not know).
            self._authkey = getattr(self._tls, "authkey", None) or process.current_process().authkey
        if incref:
            self._incref()
        util.register_after_fork(self, BaseProxy._after_fork)

    def _connect(self) -> None:
        util.debug("making connection to manager")
        name = process.current_process().name
        if threading.current_thread().name != "MainThread":
            name += "|" + threading.current_thread().name
        conn = _client(self._Client, self._token.address, self._authkey)
        try:
            dispatch(conn, None, "accept_connection", (name,))
        except (EOFError, OSError) as e:
            conn.close()
            raise _unreachable(self._token.address, e) from e
        self._tls.connection = conn
        self._tls.call = _caller(conn)
        self._tls.authkey = self._authkey

    def _drop_connection(self) -> None:
        tls = self._tls
        conn = tls.__dict__.pop("connection", None)
        tls.__dict__.pop("call", None)
        if conn is not None:
            conn.close()

    def _callmethod(self, methodname: str, args: tuple = (), kwds: Any = None) -> Any:
        """Call `methodname(*args, **kwds)` on the referent; returns a copy of the
        result (or a proxy, for methods that return one)."""
        tls = self._tls
        try:
            call = tls.call
        except AttributeError:
            self._connect()
            call = tls.call
        try:
            kind, result = call((self._id, methodname, args, {} if kwds is None else kwds))
        except (EOFError, OSError) as e:
            self._drop_connection()
            raise _unreachable(self._token.address, e) from e
        except BaseException:
            # Interrupted between request and answer: the answer would be read by the
            # next call. A new connection starts clean.
            self._drop_connection()
            raise
        if kind == "#RETURN":
            return result
        if kind == "#PROXY":
            exposed, token = result
            if self._manager is not None:
                proxytype = self._manager._registry[token.typeid][-1]
            else:
                proxytype = AutoProxy
            token.address = self._token.address
            proxy = proxytype(token, self._serializer, manager=self._manager, authkey=self._authkey,
                              exposed=exposed)
            conn = _client(self._Client, token.address, self._authkey)
            try:
                dispatch(conn, None, "decref", (token.id,))
            finally:
                conn.close()
            return proxy
        try:
            raise convert_to_error(kind, result)
        finally:
            del result

    def _incref(self) -> None:
        if self._owned_by_manager:
            util.debug("owned_by_manager skipped INCREF of %r", self._token.id)
            return
        conn = _client(self._Client, self._token.address, self._authkey)
        try:
            dispatch(conn, None, "incref", (self._id,))
        finally:
            conn.close()
        util.debug("INCREF %r", self._token.id)
        self._idset.add(self._id)
        state = self._manager and self._manager._state
        self._close = util.Finalize(
            self, BaseProxy._decref,
            args=(self._token, self._authkey, state, self._tls, self._idset, self._Client),
            exitpriority=10,
        )

    @staticmethod
    def _decref(token: Token, authkey: Any, state: Any, tls: Any, idset: Any, _Client: Any) -> None:
        idset.discard(token.id)
        if state is None or state.value == State.STARTED:
            # This process no longer holds the referent.
            try:
                util.debug("DECREF %r", token.id)
                conn = _Client(token.address, authkey=authkey)
                try:
                    dispatch(conn, None, "decref", (token.id,))
                finally:
                    conn.close()
            except Exception as e:  # noqa: BLE001 - the server may be gone already
                util.debug("... decref failed %s", e)
        else:
            util.debug("DECREF %r -- manager already shutdown", token.id)
        # The thread's connection goes with the process's last reference.
        if not idset and hasattr(tls, "connection"):
            util.debug("thread %r has no more proxies so closing conn", threading.current_thread().name)
            conn = tls.__dict__.pop("connection")
            tls.__dict__.pop("call", None)
            conn.close()

    def __reduce__(self) -> Any:
        kwds: dict[str, Any] = {}
        if get_spawning_popen() is not None:
            kwds["authkey"] = self._authkey
        if getattr(self, "_isauto", False):
            kwds["exposed"] = self._exposed_
            return (RebuildProxy, (AutoProxy, self._token, self._serializer, kwds))
        return (RebuildProxy, (type(self), self._token, self._serializer, kwds))


def MakeProxyType(name: str, exposed: Any, _cache: dict = {}) -> type:  # noqa: B006 - the cache
    """A proxy type whose methods are the names in `exposed`."""
    exposed = tuple(exposed)
    try:
        return _cache[(name, exposed)]
    except KeyError:
        pass
    dic: dict[str, Any] = {}
    for meth in exposed:
        exec(f"def {meth}(self, /, *args, **kwds):\n    return self._callmethod({meth!r}, args, kwds)", dic)
    ProxyType = type(name, (BaseProxy,), dic)
    ProxyType._exposed_ = exposed
    _cache[(name, exposed)] = ProxyType
    return ProxyType


def AutoProxy(token: Token, serializer: str, manager: Any = None, authkey: Any = None, exposed: Any = None,
              incref: bool = True, manager_owned: bool = False) -> Any:
    """A proxy for `token` exposing the referent's public methods (asked of the
    server when `exposed` is not given)."""
    _Client = _serializer_pair(serializer)[1]
    if exposed is None:
        conn = _client(_Client, token.address, authkey)
        try:
            exposed = dispatch(conn, None, "get_methods", (token,))
        finally:
            conn.close()
    if authkey is None and manager is not None:
        authkey = manager._authkey
    if authkey is None:
        authkey = process.current_process().authkey
    ProxyType = MakeProxyType(f"AutoProxy[{token.typeid}]", exposed)
    proxy = ProxyType(token, serializer, manager=manager, authkey=authkey, incref=incref,
                      manager_owned=manager_owned)
    proxy._isauto = True
    return proxy


class IteratorProxy(BaseProxy, _std.IteratorProxy):
    """A proxy for an iterator (or generator)."""


class AcquirerProxy(BaseProxy, _std.AcquirerProxy):
    """A proxy for a lock or semaphore."""


class ConditionProxy(BaseProxy, _std.ConditionProxy):
    """A proxy for a condition variable."""


class EventProxy(BaseProxy, _std.EventProxy):
    """A proxy for an event."""


class BarrierProxy(BaseProxy, _std.BarrierProxy):
    """A proxy for a barrier."""


class NamespaceProxy(BaseProxy, _std.NamespaceProxy):
    """A proxy for a `Namespace`: attribute access travels to the server."""


class ValueProxy(BaseProxy, _std.ValueProxy):
    """A proxy for a `Value`."""


class BaseListProxy(BaseProxy, _std.BaseListProxy):
    """A proxy for a list (without the in-place operators)."""


class ListProxy(BaseProxy, _std.ListProxy):
    """A proxy for a list."""


class DictProxy(BaseProxy, _std.DictProxy):
    """A proxy for a dict."""


class ArrayProxy(BaseProxy, _std.ArrayProxy):
    """A proxy for an array."""


class BasePoolProxy(BaseProxy, _std.BasePoolProxy):
    """A proxy for a pool (without the context manager)."""


class PoolProxy(BaseProxy, _std.PoolProxy):
    """A proxy for a pool."""


def _shoal_proxy(std_type: Any) -> Any:
    """shoal's counterpart of a proxy type of the standard library's registry."""
    if std_type is _std.AutoProxy:
        return AutoProxy
    for ours in (IteratorProxy, AcquirerProxy, ConditionProxy, EventProxy, BarrierProxy, NamespaceProxy,
                 ValueProxy, BaseListProxy, ListProxy, DictProxy, ArrayProxy, BasePoolProxy, PoolProxy):
        if ours.__mro__[2] is std_type:
            return ours
    # A type that a later Python added: the same methods, on shoal's transport.
    made = type(std_type.__name__, (BaseProxy, std_type), {"__module__": __name__})
    globals()[std_type.__name__] = made
    return made


class SyncManager(BaseManager, _std.SyncManager):
    """The manager `shoal.Manager()` starts: shared `dict`, `list`, `Namespace`,
    `Value`, `Array`, `Queue`, locks, events, conditions, barriers and pools, held by
    its server process."""


# The standard library's types, with shoal's proxies.
for _typeid, (_callable, _exposed, _method_to_typeid, _proxytype) in _std.SyncManager._registry.items():
    SyncManager.register(_typeid, _callable, _shoal_proxy(_proxytype), _exposed, _method_to_typeid,
                         create_method=_typeid in vars(_std.SyncManager))
del _typeid, _callable, _exposed, _method_to_typeid, _proxytype


# -- shared memory ---------------------------------------------------------------------

class _SharedMemoryTracker(_std._SharedMemoryTracker):
    """The server's list of segments to remove at shutdown, for shoal segments."""

    def destroy_segment(self, segment_name: str) -> None:
        self.segment_names.remove(segment_name)
        segment = shared_memory.SharedMemory(segment_name, track=False)
        segment.close()
        segment.unlink()


class SharedMemoryServer(Server, _std.SharedMemoryServer):
    """shoal's server with the standard one's segment bookkeeping (`track_segment`,
    `release_segment`, `list_segments`), for shoal segments."""

    def __init__(self, registry: dict, address: Any, authkey: bytes, serializer: str) -> None:
        Server.__init__(self, registry, address, authkey, serializer)
        address = self.address
        if isinstance(address, bytes):  # a Linux abstract socket's name
            address = os.fsdecode(address)
        self.shared_memory_context = _SharedMemoryTracker(f"shm_{address}_{os.getpid()}")
        util.debug(f"SharedMemoryServer started by pid {os.getpid()}")


class SharedMemoryManager(BaseManager, _std.SharedMemoryManager):
    """`multiprocessing.managers.SharedMemoryManager` for shoal segments, on shoal's
    server: the server process removes every segment made through it when it shuts
    down."""

    _Server = SharedMemoryServer

    def _track(self, name: str, undo: Any) -> None:
        try:
            conn = _client(self._Client, self._address, self._authkey)
            try:
                dispatch(conn, None, "track_segment", (name,))
            finally:
                conn.close()
        except BaseException:
            undo()
            raise

    def SharedMemory(self, size: int) -> shared_memory.SharedMemory:
        """A new `shoal.shared_memory.SharedMemory` of `size` bytes, owned by the
        manager's server."""
        sms = shared_memory.SharedMemory(None, create=True, size=size)
        self._track(sms.name, sms.unlink)
        return sms

    def ShareableList(self, sequence: Any) -> shared_memory.ShareableList:
        """A new `shoal.shared_memory.ShareableList` of `sequence`, owned by the
        manager's server."""
        sl = shared_memory.ShareableList(sequence)
        self._track(sl.shm.name, sl.shm.unlink)
        return sl


def __getattr__(name: str) -> Any:
    # The rest of `multiprocessing.managers` (helpers such as `public_methods`).
    return getattr(_std, name)
