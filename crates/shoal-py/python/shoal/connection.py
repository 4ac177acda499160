"""`Pipe`, `Connection`, `Listener`, `Client` and `wait`, as in
`multiprocessing.connection`.

A pipe is a pair of shared-memory rings (no system call per message while both sides
are busy); `Listener`/`Client` speak `multiprocessing.connection`'s wire protocol
over TCP or Unix sockets (a plain Python peer can talk to them), with the HMAC
challenge when an `authkey` is given. `close()` closes one handle, as a descriptor:
the peer sees end of stream (`EOFError`) once every copy of this end, in every
process, is closed or gone.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable
from multiprocessing import BufferTooShort, reduction, util
from multiprocessing import connection as _std_connection
from multiprocessing.connection import answer_challenge, deliver_challenge
from typing import TYPE_CHECKING, Any

from . import _shoal
from ._pickle import dumps, loads
from ._reduce import dup_parts, rebuild_raw

if TYPE_CHECKING:  # annotations only: never imported at run time
    from typing_extensions import Self

__all__ = [
    "Client",
    "Connection",
    "Listener",
    "Pipe",
    "answer_challenge",
    "deliver_challenge",
    "wait",
]

_names = itertools.count()

# The address families `Listener` and `Client` speak (the wire protocol's constants
# above are the standard library's: a plain Python peer talks to shoal's).
families = ["AF_INET", "AF_UNIX"]
default_family = "AF_UNIX"
# What a failed challenge raises (the standard library's class, as everywhere in shoal).
AuthenticationError = _std_connection.AuthenticationError
BUFSIZE = _std_connection.BUFSIZE
CONNECTION_TIMEOUT = _std_connection.CONNECTION_TIMEOUT
# The handshake's constants under the names of the local Python (public up to 3.11,
# `_CHALLENGE`, `_FAILURE`, `_WELCOME` from 3.12).
for _name in ("CHALLENGE", "FAILURE", "WELCOME"):
    for _spelling in (_name, "_" + _name):
        if hasattr(_std_connection, _spelling):
            globals()[_spelling] = getattr(_std_connection, _spelling)
del _name, _spelling


def _as_bytes(buf: Any, offset: int, size: int | None) -> bytes:
    m = memoryview(buf)
    if m.itemsize > 1:
        m = m.cast("B")
    n = m.nbytes
    if offset < 0:
        raise ValueError("offset is negative")
    if n < offset:
        raise ValueError("buffer length < offset")
    if size is None:
        size = n - offset
    elif size < 0:
        raise ValueError("size is negative")
    elif offset + size > n:
        raise ValueError("buffer length < offset + size")
    if offset == 0 and size == n and type(buf) is bytes:
        return buf
    return bytes(m[offset : offset + size])


class _ConnectionBase:
    """What pipe and socket connections share: the object and byte API."""

    _raw: Any

    def _check(self) -> Any:
        raw = self._raw
        if raw is None:
            raise OSError("handle is closed")
        return raw

    @property
    def closed(self) -> bool:
        """True once `close` was called on this handle."""
        return self._raw is None

    def send(self, obj: Any) -> None:
        """Send `obj`, pickled."""
        self.send_bytes(dumps(obj))

    def recv(self) -> Any:
        """Receive an object; `EOFError` at end of stream."""
        return loads(self.recv_bytes())

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send `size` bytes of the bytes-like `buf` from `offset` as one message."""
        self._check().send_bytes(_as_bytes(buf, offset, size))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one message as bytes; `OSError` when longer than `maxlength`."""
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = self._check().recv_bytes(None)
        if maxlength is not None and len(data) > maxlength:
            self.close()
            raise OSError("bad message length")
        return data

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        """Receive one message into the writable `buf` from `offset`; returns its
        length. `BufferTooShort` (carrying the message) when it does not fit."""
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        if offset < 0 or offset > m.nbytes:
            raise ValueError("offset out of bounds" if offset >= 0 else "negative offset")
        data = self._check().recv_bytes(None)
        n = len(data)
        if n > m.nbytes - offset:
            raise BufferTooShort(data)
        m[offset : offset + n] = data
        return n

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether there is something to read (a message, or end of stream), waiting
        up to `timeout` seconds (`None`: no limit)."""
        return self._check().poll(timeout)

    def fileno(self) -> int:
        """A descriptor of this connection (see `wait` to wait on several)."""
        return self._check().fileno()

    def close(self) -> None:
        """Close this handle."""
        raw = self._raw
        if raw is not None:
            self._raw = None
            raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        raw = getattr(self, "_raw", None)
        if raw is not None:
            raw.close()


class Connection(_ConnectionBase):
    """One end of a `Pipe` (on shoal's rings).

    ``Connection(fd, readable=True, writable=True)`` over a descriptor, as in
    `multiprocessing.connection`, gives the standard library's descriptor connection:
    a shoal ring has no descriptor to wrap, both its ends come from `Pipe`."""

    def __new__(cls, raw: Any, readable: bool = True, writable: bool = True) -> Any:
        if isinstance(raw, int):
            return _std_connection.Connection(raw, readable, writable)
        return super().__new__(cls)

    def __init__(self, raw: Any, readable: bool = True, writable: bool = True) -> None:
        self._raw = raw
        self._readable = raw.readable
        self._writable = raw.writable

    @property
    def readable(self) -> bool:
        """True if this end receives."""
        return self._readable

    @property
    def writable(self) -> bool:
        """True if this end sends."""
        return self._writable

    def send(self, obj: Any) -> None:
        """Send `obj`, pickled (a pickling error is raised here)."""
        raw = self._raw
        if raw is None:
            raise OSError("handle is closed")
        if not self._writable:
            raise OSError("connection is read-only")
        # Pickled and sent in one call.
        raw.send_obj(obj)

    def recv(self) -> Any:
        """Receive an object; `EOFError` at end of stream."""
        raw = self._raw
        if raw is None:
            raise OSError("handle is closed")
        return raw.recv_obj()

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send `size` bytes of the bytes-like `buf` from `offset` as one message."""
        raw = self._raw
        if raw is None:
            raise OSError("handle is closed")
        if not self._writable:
            raise OSError("connection is read-only")
        if type(buf) is bytes and offset == 0 and size is None:
            raw.send_bytes(buf)
        else:
            raw.send_bytes(_as_bytes(buf, offset, size))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one message as bytes; `OSError` when longer than `maxlength`."""
        raw = self._raw
        if raw is None:
            raise OSError("handle is closed")
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = raw.recv_bytes(None)
        if maxlength is not None and len(data) > maxlength:
            self.close()
            raise OSError("bad message length")
        return data

    def __reduce__(self) -> Any:
        data, dupfds = dup_parts(self._check())
        return (_rebuild_connection, (data, dupfds))

    def __repr__(self) -> str:
        state = "closed" if self._raw is None else ("r" if self._readable else "") + ("w" if self._writable else "")
        return f"<shoal.connection.Connection {state}>"

    async def recv_async(self, timeout: float | None = None) -> Any:
        """`recv` for asyncio: waits on the pipe's readiness descriptor (and its end of
        stream) without blocking the event loop; `TimeoutError` after `timeout`."""
        from .queues import wait_readable

        ready, eof_fd = self._check().readiness()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ready.clear()
            if self.poll(0):
                return self.recv()
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or not await wait_readable([ready.fileno(), eof_fd], left):
                raise TimeoutError("nothing was received before the timeout")


def _rebuild_connection(data: bytes, dupfds: list) -> Connection:
    return Connection(rebuild_raw(_shoal.PipeEnd._from_parts, data, dupfds))


def Pipe(duplex: bool = True) -> tuple:
    """Two connected `Connection`s; with ``duplex=False`` the first only receives and
    the second only sends."""
    a, b = _shoal.pipe(duplex)  # already in Python's order: (receiver, sender)
    return Connection(a), Connection(b)


class SocketConnection(_ConnectionBase):
    """A connection over a socket, from `Listener.accept` or `Client`."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    readable = True
    writable = True

    @property
    def encrypted(self) -> bool:
        """Whether the connection runs over TLS."""
        return self._check().encrypted

    @property
    def compressed(self) -> bool:
        """Whether large frames are compressed (both sides asked for it)."""
        return self._check().compressed

    def __repr__(self) -> str:
        return f"<shoal.connection.SocketConnection {'closed' if self._raw is None else 'open'}>"

    def __reduce__(self) -> Any:
        # Sent to another process (a pool task, a pipe), the socket arrives as the
        # standard library's descriptor connection: the frames on it are the same.
        raw = self._check()
        if not raw.transferable:
            raise TypeError("a socket connection with TLS, compression or input already "
                            "read cannot be sent to another process")
        dup = reduction.DupFd(raw.fileno())
        # Closing this handle now closes the descriptor here and leaves the stream to
        # the other copies (a shut-down socket would end it for them too).
        raw._hand_over()
        return (_std_connection.rebuild_connection, (dup, True, True))


def _arbitrary_address(family: str) -> Any:
    if family == "AF_INET":
        return ("localhost", 0)
    if family == "AF_UNIX":
        return os.path.join(util.get_temp_dir(), f"listener-{os.getpid()}-{next(_names)}")
    raise ValueError(f"unrecognized family {family!r}")


def _family_of(address: Any) -> str:
    if isinstance(address, tuple):
        return "AF_INET"
    if isinstance(address, str) and address.startswith("\\\\"):
        return "AF_PIPE"
    if isinstance(address, (str, bytes)):
        return "AF_UNIX"
    raise ValueError(f"address type of {address!r} unrecognized")


def _check_family(family: str) -> None:
    if family not in families:
        raise ValueError(f"Family {family} is not recognized.")


class Listener:
    """A bound socket that accepts authenticated connections (as
    `multiprocessing.connection.Listener(address=None, family=None, backlog=1,
    authkey=None)`).

    Beyond Python's: ``tls_cert`` and ``tls_key`` (PEM files) serve TLS (clients give
    ``tls_ca``); ``compression`` (a zstd level) compresses large frames for clients
    that ask for it too. Handshakes run before `accept` returns a connection.
    """

    def __init__(self, address: Any = None, family: str | None = None, backlog: int = 1,
                 authkey: bytes | None = None, *, tls_cert: str | None = None,
                 tls_key: str | None = None, compression: int | None = None) -> None:
        family = family or (address and _family_of(address)) or "AF_INET"
        _check_family(family)
        address = address or _arbitrary_address(family)
        if authkey is not None and not isinstance(authkey, bytes):
            raise TypeError("authkey should be a byte string")
        if isinstance(address, tuple) and address[0] == "":
            address = ("0.0.0.0", address[1])
        self._raw = _shoal.RawListener(address, authkey, tls_cert, tls_key, compression)
        self._family = family
        self._last_accepted: Any = None

    def accept(self) -> SocketConnection:
        """The next client that passed the challenge (others are dropped)."""
        if self._raw is None:
            raise OSError("listener is closed")
        conn = SocketConnection(self._raw.accept(None))
        return conn

    def close(self) -> None:
        """Stop listening (a Unix socket's path is removed)."""
        self._raw = None

    @property
    def address(self) -> Any:
        """The bound address (the real port when 0 was asked for)."""
        return self._raw.address if self._raw is not None else None

    @property
    def last_accepted(self) -> Any:
        return self._last_accepted

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def Client(address: Any, family: str | None = None, authkey: bytes | None = None, *,
           tls_ca: str | None = None, tls_server_name: str | None = None,
           compression: int | None = None) -> SocketConnection:
    """Connect to a `Listener` at `address`, answering its challenge with `authkey`.

    Beyond Python's: ``tls_ca`` (a PEM file of trusted certificates) connects with TLS,
    checking the server's certificate for ``tls_server_name`` (default: the host of
    `address`); ``compression`` (a zstd level) asks for compressed large frames.
    """
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")
    _check_family(family or _family_of(address))
    return SocketConnection(_shoal.connect(address, authkey, tls_ca, tls_server_name, compression))


def _raw_of(obj: Any) -> Any:
    raw = getattr(obj, "_raw", None)
    if isinstance(raw, (_shoal.RawQueue, _shoal.PipeEnd)):
        return raw
    if isinstance(obj, int):
        return obj
    if isinstance(raw, (_shoal.RawNetConnection,)):
        return raw.fileno()
    return obj.fileno()


def wait(object_list: Iterable[Any], timeout: float | None = None) -> list[Any]:
    """The objects of `object_list` that are ready: shoal connections and queues with
    something to read (or at end of stream), sockets and descriptors that are
    readable, process sentinels of ended processes. Empty after `timeout` seconds."""
    objects = list(object_list)
    ready: list[Any] = []
    # Socket connections may hold a whole message already read from the socket.
    for o in objects:
        raw = getattr(o, "_raw", None)
        if isinstance(raw, _shoal.RawNetConnection) and raw.poll(0):
            ready.append(o)
    if ready:
        return ready
    if not objects:
        if timeout is not None:
            time.sleep(max(timeout, 0))
        return []
    raws = [_raw_of(o) for o in objects]
    return [objects[i] for i in _shoal.wait(raws, timeout)]
