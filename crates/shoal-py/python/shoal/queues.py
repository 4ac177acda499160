"""`Queue`, `SimpleQueue` and `JoinableQueue` on shoal's shared-memory rings.

Messages are pickled in the calling thread, so a pickling error is raised by `put`
itself. A `Queue` without `maxsize` never blocks in `put`, as in `multiprocessing`:
when its ring is full, messages wait in this process and a feeder thread moves them
in as room appears (`close`, `join_thread` and `cancel_join_thread` are about that
thread). Every queue can be passed to a child process when it starts (not through
another queue or pool task: the same rule as `multiprocessing`).
"""

from __future__ import annotations

import collections
import queue as _queue
import threading
import time
import weakref
from multiprocessing import context as _std_context
from multiprocessing import util
from typing import Any

from . import _shoal
from ._pickle import dumps, loads
from ._reduce import dup_parts, rebuild_raw

__all__ = ["JoinableQueue", "Queue", "SimpleQueue"]

_RawQueue = _shoal.RawQueue


def _rebuild(cls: type, data: bytes, dupfds: list, joinable: bool, maxsize: int) -> Any:
    raw = rebuild_raw(_RawQueue._from_parts, data, dupfds, joinable)
    q = cls.__new__(cls)
    q._attach(raw, maxsize)
    return q


class Queue:
    """A process-shared FIFO queue, as `multiprocessing.Queue(maxsize=0)`.

    `put` with ``maxsize`` 0 never blocks; `get(block=True, timeout=None)` raises
    `queue.Empty` after `timeout` seconds; `put` on a full bounded queue raises
    `queue.Full` after its timeout. ``capacity`` (bytes of ring, shoal's own option)
    bounds the memory the queue uses; messages larger than half of it are streamed.

    shoal's own options, for queues shared with unrelated programs (Rust or Python):

    - ``name``: the queue is served under this name on this machine while it lives, so
      that any process of this user opens it with ``Queue(name=..., create=False)``
      (Rust: ``Queue::open_named``); `FileExistsError` when a live process serves
      the name already. With ``create=False`` the queue is opened instead, as its
      creator made it: `FileNotFoundError` when no live process serves the name,
      `ValueError` for a queue of the other kind (`JoinableQueue`), `PermissionError`
      when another user holds the name.
    - ``codec``: what ``put``/``get`` exchange. ``"pickle"`` (the default: any
      picklable object, for Python peers), ``"msgpack"`` (None, bool, int, float, str,
      bytes, list, tuple and dict: what a Rust program's ``Codec::MessagePack`` reads
      as its own types, structs as maps of field names) or ``"bytes"`` (each message's
      bytes as they are: ``Codec::Raw``). Opening, the queue's own codec is taken;
      ``codec=`` given, another one is a `ValueError` that names the queue's. A Rust
      codec Python does not read (bincode, JSON) leaves ``put_bytes``/``get_bytes``.
    """

    _joinable = False

    def __init__(
        self,
        maxsize: int = 0,
        *,
        ctx: Any = None,
        capacity: int | None = None,
        name: str | None = None,
        create: bool = True,
        codec: str | None = None,
    ) -> None:
        maxsize = max(maxsize, 0)
        if name is not None and not create:
            if maxsize or capacity is not None:
                raise ValueError(
                    "maxsize and capacity belong to the queue's creator: Queue(name=..., create=False) "
                    "opens the queue as it was made"
                )
            raw, maxsize = _RawQueue.open_named(name, self._joinable)
            found = _CODEC_NAMES.get(raw.codec, raw.codec)
            if codec is not None and codec != found:
                raise ValueError(
                    f"the queue {name!r} carries {found} messages, not {codec}: open it with "
                    f"codec={found!r}, or without codec= to take the queue's own"
                )
        else:
            raw = _RawQueue(maxsize, capacity or (4 << 20), self._joinable, codec or "pickle", name)
        self._attach(raw, maxsize)

    def _attach(self, raw: Any, maxsize: int) -> None:
        self._raw = raw
        self._maxsize = maxsize
        self._reset()
        util.register_after_fork(self, Queue._after_fork)
        if type(self) in (Queue, JoinableQueue) and raw.codec != "pickle":
            # put/get speak the queue's codec (the same object, another class's methods).
            self.__class__ = _codec_class(type(self), raw.codec)

    @property
    def codec(self) -> str:
        """What the queue's messages are: ``"pickle"``, ``"msgpack"``, ``"bytes"``, or
        the name of a Rust program's codec (``"bincode"``, ``"json"``)."""
        return _CODEC_NAMES.get(self._raw.codec, self._raw.codec)

    def _reset(self) -> None:
        self._closed = False
        self._pending: collections.deque = collections.deque()
        self._notempty = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._jointhread: util.Finalize | None = None
        self._joincancelled = False

    def _after_fork(self) -> None:
        # The feeder thread and its buffer belong to the parent.
        self._reset()

    def __reduce__(self) -> Any:
        _std_context.assert_spawning(self)
        data, dupfds = dup_parts(self._raw)
        return (_rebuild, (type(self), data, dupfds, self._joinable, self._maxsize))

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} maxsize={self._maxsize} size={self.qsize()}>"

    # -- putting -----------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put `obj` on the queue (pickled now: a pickling error is raised here)."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        if type(self)._on_queue_feeder_error is not Queue._on_queue_feeder_error:
            # The subclass takes unpicklable messages itself: try the pickling here.
            try:
                dumps(obj)
            except Exception as e:  # noqa: BLE001 - any pickling error goes to the hook
                self._on_queue_feeder_error(e, obj)
                return
        if self._pending:
            # Behind what the feeder thread still holds.
            self._buffer(dumps(obj))
            return
        # Pickled and put in one call; what did not fit comes back as bytes.
        if self._maxsize == 0:
            # Unbounded: never waits; the feeder thread takes what the ring refused.
            left = self._raw.put_obj(obj, False)
            if left is not None:
                self._buffer(left)
        elif block and timeout is None:
            self._raw.put_obj(obj)
        elif self._raw.put_obj(obj, block, timeout) is not None:
            raise _queue.Full

    def put_nowait(self, obj: Any) -> None:
        """`put(obj, False)`."""
        self.put(obj, False)

    @staticmethod
    def _on_queue_feeder_error(e: BaseException, obj: Any) -> None:
        """A subclass that overrides this (as subclasses of `multiprocessing.queues.Queue`
        do) is handed each message that cannot be pickled, and `put` returns; without
        an override, `put` raises the pickling error."""

    def _buffer(self, data: bytes) -> None:
        with self._notempty:
            if self._thread is None:
                self._start_thread()
            self._pending.append(data)
            self._notempty.notify()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=Queue._feed,
            args=(self._pending, self._notempty, self._raw, weakref.ref(self)),
            name="QueueFeederThread",
            daemon=True,
        )
        self._thread.start()
        if not self._joincancelled:
            self._jointhread = util.Finalize(
                self._thread, Queue._finalize_join, [weakref.ref(self._thread)], exitpriority=-5
            )
        util.Finalize(self, Queue._finalize_close, [self._pending, self._notempty], exitpriority=10)

    @staticmethod
    def _feed(pending: collections.deque, notempty: threading.Condition, raw: Any, owner: Any) -> None:
        while True:
            with notempty:
                while not pending:
                    notempty.wait()
                data = pending[0]
            if data is None:
                return
            raw.put(data, True, None)
            with notempty:
                pending.popleft()
                notempty.notify_all()

    @staticmethod
    def _finalize_join(twr: Any) -> None:
        thread = twr()
        if thread is not None:
            thread.join()

    @staticmethod
    def _finalize_close(pending: collections.deque, notempty: threading.Condition) -> None:
        with notempty:
            pending.append(None)
            notempty.notify()

    # -- getting -----------------------------------------------------------------
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item; `queue.Empty` when none came in time."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        # Taken and unpickled in one call, which raises queue.Empty.
        if block and timeout is None:
            return self._raw.get_obj()
        return self._raw.get_obj(block, timeout)

    def get_nowait(self) -> Any:
        """`get(False)`."""
        return self.get(False)

    # -- raw bytes (shoal's own, for queues shared with Rust programs) -------------
    def put_bytes(self, data: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put the bytes-like `data` as one message, not pickled: what a Rust program's
        `get_bytes` takes (and a Python one's `get_bytes`). `queue.Full` as `put`."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        data = bytes(data)
        if self._pending:
            self._buffer(data)
        elif self._maxsize == 0:
            if not self._raw.put(data, False):
                self._buffer(data)
        elif not self._raw.put(data, block, timeout):
            raise _queue.Full

    def get_bytes(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Remove one message and return its bytes as they are (not unpickled): what a
        Rust program's `put_bytes` put. `queue.Empty` as `get`."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        data = self._raw.get(block, timeout)
        if data is None:
            raise _queue.Empty
        return data

    # -- state ---------------------------------------------------------------------
    def qsize(self) -> int:
        """Approximate number of items (those in the ring and those this process
        still holds for the feeder thread)."""
        return self._raw.qsize() + len(self._pending)

    def empty(self) -> bool:
        """Whether the queue is empty (a snapshot)."""
        return not self._pending and self._raw.empty()

    def full(self) -> bool:
        """Whether a bounded queue is full (a snapshot)."""
        return self._maxsize > 0 and self._raw.full()

    def close(self) -> None:
        """No more puts from this process; the feeder thread finishes its buffer."""
        self._closed = True
        if self._thread is not None:
            Queue._finalize_close(self._pending, self._notempty)

    def join_thread(self) -> None:
        """Wait for the feeder thread (after `close`)."""
        if not self._closed:
            raise AssertionError(f"Queue {self!r} not closed")
        if self._jointhread is not None:
            self._jointhread()

    def cancel_join_thread(self) -> None:
        """Do not wait for the feeder thread at process exit (buffered items may be
        lost)."""
        self._joincancelled = True
        if self._jointhread is not None:
            self._jointhread.cancel()

    # -- asyncio -------------------------------------------------------------------
    async def get_async(self, timeout: float | None = None) -> Any:
        """`get` for asyncio: waits on the queue's readiness descriptor, without
        blocking the event loop; `queue.Empty` after `timeout` seconds."""
        data = await _get_when_ready(self._raw, timeout)
        return loads(data)

    async def put_async(self, obj: Any, timeout: float | None = None) -> None:
        """`put` for asyncio (an unbounded queue never waits; a full bounded one is
        retried as room appears, `queue.Full` after `timeout` seconds)."""
        await self._put_bytes_async(dumps(obj), timeout)

    async def _put_bytes_async(self, data: bytes, timeout: float | None) -> None:
        import asyncio

        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0001
        while not self._raw.put(data, False):
            if self._maxsize == 0:
                self._buffer(data)
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise _queue.Full
            # Room is not signalled on a descriptor: poll with a growing delay.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)


async def wait_readable(fds: list, timeout: float | None) -> bool:
    """Wait (in the running event loop) until one of `fds` is readable; False after
    `timeout` seconds."""
    import asyncio

    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    for fd in fds:
        loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(fut, timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        for fd in fds:
            loop.remove_reader(fd)


async def _get_when_ready(raw: Any, timeout: float | None) -> bytes:
    deadline = None if timeout is None else time.monotonic() + timeout
    ready = raw.readiness()
    while True:
        ready.clear()
        data = raw.get(False)
        if data is not None:
            return data
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise _queue.Empty
        await wait_readable([ready.fileno()], left)


class JoinableQueue(Queue):
    """A `Queue` that counts unfinished tasks: `task_done` and `join`."""

    _joinable = True

    def task_done(self) -> None:
        """Mark one item as processed; `ValueError` when called too many times."""
        try:
            self._raw.task_done()
        except ValueError:
            raise ValueError("task_done() called too many times") from None

    def join(self) -> None:
        """Block until every item put has been marked done."""
        # Items still buffered here are not counted yet: wait for the feeder, which
        # notifies after each one it moves into the ring.
        with self._notempty:
            while self._pending:
                self._notempty.wait()
        self._raw.join(None)


# The Rust core's codec names, by the names Python gives them.
_CODEC_NAMES = {
    "pickle": "pickle",
    "MessagePack": "msgpack",
    "raw bytes": "bytes",
    "bincode": "bincode",
    "JSON": "json",
}


class _MsgPackMessages:
    """`put`/`get` of MessagePack messages: what a Rust program's `Codec::MessagePack`
    writes and reads (its structs are maps of field names)."""

    def put(self: Any, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put `obj` encoded as MessagePack (encoded now: an unsupported type raises
        `TypeError` here)."""
        self.put_bytes(_shoal.msgpack_dumps(obj), block, timeout)

    def get(self: Any, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and decode the next message; `queue.Empty` as `Queue.get`."""
        return _shoal.msgpack_loads(self.get_bytes(block, timeout))

    async def get_async(self: Any, timeout: float | None = None) -> Any:
        """`get` for asyncio."""
        return _shoal.msgpack_loads(await _get_when_ready(self._raw, timeout))

    async def put_async(self: Any, obj: Any, timeout: float | None = None) -> None:
        """`put` for asyncio."""
        await self._put_bytes_async(_shoal.msgpack_dumps(obj), timeout)


class _RawMessages:
    """`put`/`get` of raw bytes, as they are: `Codec::Raw` on the Rust side."""

    def put(self: Any, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put the bytes-like `obj` as one message."""
        self.put_bytes(obj, block, timeout)

    def get(self: Any, block: bool = True, timeout: float | None = None) -> bytes:
        """Remove the next message and return its bytes."""
        return self.get_bytes(block, timeout)

    async def get_async(self: Any, timeout: float | None = None) -> bytes:
        """`get` for asyncio."""
        return await _get_when_ready(self._raw, timeout)

    async def put_async(self: Any, obj: Any, timeout: float | None = None) -> None:
        """`put` for asyncio."""
        await self._put_bytes_async(bytes(obj), timeout)


class _MsgPackQueue(_MsgPackMessages, Queue):
    """A `Queue` of MessagePack messages."""


class _MsgPackJoinableQueue(_MsgPackMessages, JoinableQueue):
    """A `JoinableQueue` of MessagePack messages."""


class _RawQueueOfBytes(_RawMessages, Queue):
    """A `Queue` of raw bytes."""


class _RawJoinableQueue(_RawMessages, JoinableQueue):
    """A `JoinableQueue` of raw bytes."""


def _codec_class(cls: type, codec: str) -> type:
    """The class whose `put`/`get` speak `codec` (the Rust core's name), for a queue
    of kind `cls` (`Queue`, `JoinableQueue` or a subclass, kept for pickles)."""
    joinable = cls._joinable  # type: ignore[attr-defined]
    if codec == "pickle":
        return cls
    if codec == "MessagePack":
        return _MsgPackJoinableQueue if joinable else _MsgPackQueue
    if codec == "raw bytes":
        return _RawJoinableQueue if joinable else _RawQueueOfBytes
    from .subprocess import ForeignJoinableQueue, ForeignQueue

    return ForeignJoinableQueue if joinable else ForeignQueue


class SimpleQueue:
    """`multiprocessing.SimpleQueue`: `put`, `get`, `empty`, `close`."""

    def __init__(self, *, ctx: Any = None, capacity: int | None = None) -> None:
        self._raw = _RawQueue(0, capacity or (4 << 20), False)
        self._closed = False

    def __reduce__(self) -> Any:
        _std_context.assert_spawning(self)
        data, dupfds = dup_parts(self._raw)
        return (_rebuild_simple, (data, dupfds))

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.SimpleQueue size={self._raw.qsize()}>"

    def put(self, obj: Any) -> None:
        """Put `obj` (blocks while the ring is full)."""
        if self._closed:
            raise ValueError("SimpleQueue is closed")
        self._raw.put_obj(obj)

    def get(self) -> Any:
        """Remove and return an item, waiting for one."""
        if self._closed:
            raise ValueError("SimpleQueue is closed")
        return self._raw.get_obj()

    def empty(self) -> bool:
        """Whether the queue is empty (a snapshot)."""
        return self._raw.empty()

    def close(self) -> None:
        """No more use from this process."""
        self._closed = True

    async def get_async(self, timeout: float | None = None) -> Any:
        """`get` for asyncio, on the queue's readiness descriptor."""
        return loads(await _get_when_ready(self._raw, timeout))


def _rebuild_simple(data: bytes, dupfds: list) -> SimpleQueue:
    q = SimpleQueue.__new__(SimpleQueue)
    q._raw = rebuild_raw(_RawQueue._from_parts, data, dupfds, False)
    q._closed = False
    return q
