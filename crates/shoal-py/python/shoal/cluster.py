"""`shoal.cluster.Pool`: the same pool across machines, on Redis Streams.

Tasks are Python functions named by their importable name (``math.sqrt``,
``mypkg.jobs.resize``); worker hosts (``python -m shoal.worker --redis URL --pool
NAME``) import them and run them in a local `shoal.Pool`. Everything on the Redis side
(signed messages, leases, reclaim of dead hosts' tasks, dead letters, results stored
before their task is acknowledged, at-least-once delivery with duplicates dropped
here) is `shoal-cluster`'s, in Rust; this module only pickles calls and results.

A task travels as its name, ``py:<module>.<qualname>``, and a pickled call; its
result as a pickled outcome. Every message is signed with the cluster key (``key``,
else ``SHOAL_CLUSTER_KEY``) and checked before anything in it is unpickled: a
mis-signed task is dead-lettered and never unpickled, so write access to Redis is not
code execution on the hosts. Pickles are trusted once their signature checks: every
holder of the key can run code on every host.

A task's exception is raised in the caller (with the remote traceback as its
``__cause__``); when it cannot be pickled or unpickled, `RemoteError` carries its
traceback text instead. A task that went to the dead-letter stream raises
`DeadLettered`; a task past ``task_timeout`` raises `multiprocessing.TimeoutError`;
Redis unreachable raises `ConnectionError`.
"""

from __future__ import annotations

import concurrent.futures as _cf
import itertools
import pickle
import threading
import time
import weakref
from multiprocessing import TimeoutError
from typing import Any, Callable, Iterable, Iterator, Optional

from . import _shoal

__all__ = ["KEY_ENV", "DeadLettered", "Pool", "RemoteError", "task_name"]

#: The environment variable the cluster key is read from when none is given.
KEY_ENV = "SHOAL_CLUSTER_KEY"

# Task names of Python functions start with this (a Rust worker host refuses them as
# not registered, a Python one refuses other names).
PREFIX = "py:"
# The pickle protocol of calls and results.
PROTOCOL = 5
# Tasks submitted per call into Rust (one pipeline each).
SUBMIT_BATCH = 512


class RemoteError(Exception):
    """A task failed on a worker host and its exception could not come back as itself
    (it could not be pickled there or unpickled here), or the host reported a failure
    of its own. `traceback` holds the remote traceback text (or the host's message)."""

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.traceback = traceback

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n\n{self.traceback}" if self.traceback else text

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0] if self.args else "", self.traceback))


class DeadLettered(RemoteError):
    """The task was delivered more than ``max_deliveries`` times without a result and
    went to the pool's dead-letter stream."""


class _RemoteTraceback(Exception):
    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def task_name(func: Callable | str) -> str:
    """The cluster task name of `func`: ``py:`` and its importable name."""
    if isinstance(func, str):
        name = func
    else:
        module = getattr(func, "__module__", None)
        qualname = getattr(func, "__qualname__", None)
        if not module or not qualname:
            raise TypeError(f"{func!r} has no importable name: pass a module-level function")
        if "<locals>" in qualname or "<lambda>" in qualname:
            raise TypeError(f"{module}.{qualname} is not importable by a worker host: "
                            "pass a module-level function")
        if module == "__main__":
            raise TypeError(f"{qualname} is defined in __main__, which worker hosts cannot "
                            "import: move it into a module they can import")
        name = f"{module}.{qualname}"
    if not name or name.startswith(".") or name.endswith("."):
        raise ValueError(f"{name!r} is not an importable name")
    return PREFIX + name


def _key(key: bytes | str | None) -> Optional[bytes]:
    if key is None:
        return None
    return key.encode() if isinstance(key, str) else bytes(key)


def _outcome(result: Optional[bytes], kind: Optional[str], message: Optional[str]) -> tuple:
    """(True, value) or (False, exception) from what the Rust side collected."""
    if result is None:
        if kind == "dead_lettered":
            return False, DeadLettered(message or "dead-lettered")
        if kind == "timeout":
            return False, TimeoutError(message)
        if kind == "cancelled":
            return False, _cf.CancelledError(message)
        return False, RemoteError(message or f"the task failed ({kind})")
    try:
        out = pickle.loads(result)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is the task's
        return False, RemoteError(f"the task's result could not be unpickled here: {e!r}")
    if out[0]:
        return True, out[1]
    exc, tb = out[1], out[2]
    if exc is None:
        return False, RemoteError("the task failed on its worker host", tb)
    exc.__cause__ = _RemoteTraceback(tb)
    return False, exc


class AsyncResult:
    """The result of `Pool.apply_async` (as `multiprocessing.pool.AsyncResult`)."""

    def __init__(self, future: _cf.Future, callback: Optional[Callable],
                 error_callback: Optional[Callable]) -> None:
        self._future = future
        if callback is not None or error_callback is not None:
            def done(f: _cf.Future) -> None:
                if f.cancelled():
                    return
                e = f.exception()
                if e is None:
                    if callback is not None:
                        callback(f.result())
                elif error_callback is not None:
                    error_callback(e)
            future.add_done_callback(done)

    def ready(self) -> bool:
        return self._future.done()

    def successful(self) -> bool:
        if not self._future.done():
            raise ValueError(f"{self!r} not ready")
        return not self._future.cancelled() and self._future.exception() is None

    def wait(self, timeout: Optional[float] = None) -> None:
        _cf.wait([self._future], timeout=timeout)

    def get(self, timeout: Optional[float] = None) -> Any:
        try:
            return self._future.result(timeout)
        except _cf.TimeoutError:
            raise TimeoutError(f"no result within {timeout} s") from None


class Pool:
    """A pool whose tasks run on worker hosts across machines (``python -m
    shoal.worker``), through the Redis at `url`: see the module doc.

    ``key``: the cluster key (bytes or str, at least 16 bytes; default: from
    ``SHOAL_CLUSTER_KEY``). ``max_in_flight`` bounds the tasks submitted and not yet
    answered (calls wait for room); ``task_timeout`` (seconds) bounds each task's run;
    ``max_deliveries`` bounds how often a task is delivered before it is
    dead-lettered; ``priority`` is ``"high"``, ``"normal"`` or ``"low"``.
    """

    def __init__(self, url: str, name: str, key: bytes | str | None = None, *,
                 max_in_flight: Optional[int] = None, task_timeout: Optional[float] = None,
                 max_deliveries: Optional[int] = None, priority: str = "normal") -> None:
        self._raw = _shoal.ClusterPool(url, name, _key(key), max_in_flight, task_timeout,
                                       max_deliveries, priority)
        self._window = max_in_flight or 4096
        self._lock = threading.Lock()
        self._futures: dict = {}
        # Outcomes that came before their future was registered.
        self._early: dict = {}
        self._closed = threading.Event()
        self._collector = threading.Thread(target=Pool._collect, args=(weakref.ref(self),),
                                           name=f"shoal-cluster-{name}", daemon=True)
        self._collector.start()

    @property
    def name(self) -> str:
        """The pool's name."""
        return self._raw.name

    def stats(self) -> dict:
        """The submitter's counters: submitted, completed, duplicates, refused."""
        s = self._raw.stats()
        return dict(zip(("submitted", "completed", "duplicates", "refused"), s))

    @staticmethod
    def _collect(ref: weakref.ref) -> None:
        while True:
            pool = ref()
            if pool is None or pool._closed.is_set():
                return
            raw = pool._raw
            del pool
            try:
                got = raw.collect(1024, 0.1)
            except BaseException:  # noqa: BLE001 - interpreter shutdown
                return
            pool = ref()
            if pool is None:
                return
            for tid, result, kind, message in got:
                with pool._lock:
                    fut = pool._futures.pop(tid, None)
                    if fut is None:
                        pool._early[tid] = (result, kind, message)
                        continue
                _settle(fut, result, kind, message)
            del pool

    def _submit(self, name: str, payloads: list) -> list:
        """Futures of the tasks `name(payload)`, submitted in order."""
        self._check()
        futures = []
        for i in range(0, len(payloads), SUBMIT_BATCH):
            ids = self._raw.submit(name, payloads[i:i + SUBMIT_BATCH])
            for tid in ids:
                fut: _cf.Future = _cf.Future()
                with self._lock:
                    early = self._early.pop(tid, None)
                    if early is None:
                        self._futures[tid] = fut
                if early is not None:
                    _settle(fut, *early)
                else:
                    fut.add_done_callback(self._withdraw_cancelled(tid))
                futures.append(fut)
        return futures

    def _withdraw_cancelled(self, tid: int) -> Callable[[_cf.Future], None]:
        def done(f: _cf.Future) -> None:
            if f.cancelled():
                with self._lock:
                    self._futures.pop(tid, None)
                self._raw.withdraw([tid])
        return done

    def _check(self) -> None:
        if self._closed.is_set():
            raise ValueError("Pool not running")

    # -- the multiprocessing.Pool surface ---------------------------------------------
    def submit(self, fn: Callable | str, /, *args: Any, **kwargs: Any) -> _cf.Future:
        """Runs ``fn(*args, **kwargs)`` on a worker host; a `concurrent.futures.Future`
        of its result (``cancel()`` withdraws the task: it never runs when no host took
        it yet)."""
        return self._submit(task_name(fn), [_call(args, kwargs)])[0]

    def apply_async(self, func: Callable | str, args: tuple = (), kwds: Optional[dict] = None,
                    callback: Optional[Callable] = None,
                    error_callback: Optional[Callable] = None) -> AsyncResult:
        """As `multiprocessing.pool.Pool.apply_async`."""
        fut = self._submit(task_name(func), [_call(tuple(args), dict(kwds or {}))])[0]
        return AsyncResult(fut, callback, error_callback)

    def apply(self, func: Callable | str, args: tuple = (), kwds: Optional[dict] = None) -> Any:
        """Runs ``func(*args, **kwds)`` on a worker host and returns its result."""
        return self.apply_async(func, args, kwds).get()

    def map(self, func: Callable | str, iterable: Iterable, chunksize: Optional[int] = None,
            timeout: Optional[float] = None) -> list:
        """``[func(x) for x in iterable]``, run across the worker hosts, in input order.
        ``chunksize`` items travel in one task (default 1); ``timeout`` (seconds) bounds
        the whole call. The first failure, in input order, is raised; the tasks not yet
        taken by a host are then withdrawn."""
        return list(self._imap(func, iterable, chunksize or 1, timeout))

    def imap(self, func: Callable | str, iterable: Iterable, chunksize: int = 1,
             timeout: Optional[float] = None) -> Iterator:
        """As `map`, lazily: results are yielded in input order as they come, the
        input read as room frees (at most ``max_in_flight`` tasks out)."""
        return self._imap(func, iterable, chunksize, timeout)

    def starmap(self, func: Callable | str, iterable: Iterable,
                chunksize: Optional[int] = None) -> list:
        """``[func(*args) for args in iterable]``, across the worker hosts."""
        return list(self._imap(func, iterable, chunksize or 1, None, kind="starmap"))

    def _imap(self, func: Callable | str, iterable: Iterable, chunksize: int,
              timeout: Optional[float], kind: str = "map") -> Iterator:
        if chunksize < 1:
            raise ValueError("chunksize must be at least 1")
        name = task_name(func)
        deadline = None if timeout is None else time.monotonic() + timeout
        window = max(1, self._window // 2)
        items = iter(iterable)
        out: list = []  # futures submitted, not yet yielded
        done = False
        try:
            while True:
                if not done and len(out) < window:
                    chunk = list(itertools.islice(items, chunksize * min(SUBMIT_BATCH, window)))
                    if not chunk:
                        done = True
                    else:
                        payloads = [pickle.dumps((kind, chunk[i:i + chunksize]), PROTOCOL)
                                    for i in range(0, len(chunk), chunksize)]
                        out.extend(self._submit(name, payloads))
                        continue
                if not out:
                    return
                fut = out.pop(0)
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    values = fut.result(left)
                except _cf.TimeoutError:
                    raise TimeoutError(f"no result within {timeout} s") from None
                yield from values
        finally:
            left_over = [f for f in out if not f.done()]
            for f in left_over:
                f.cancel()

    def close(self) -> None:
        """Stops the pool: no more tasks; waiting calls fail with `ValueError`."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._collector.join(5)
        with self._lock:
            pending = list(self._futures.items())
            self._futures.clear()
        if pending:
            self._raw.withdraw([tid for tid, _ in pending])
        for _, f in pending:
            f.cancel()

    terminate = close

    def join(self) -> None:
        """Nothing to wait for: the tasks run on the worker hosts."""

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<shoal.cluster.Pool {self.name!r} in_flight={self._raw.in_flight}>"


def _call(args: tuple, kwargs: dict) -> bytes:
    return pickle.dumps(("call", (args, kwargs)), PROTOCOL)


def _settle(fut: _cf.Future, result: Optional[bytes], kind: Optional[str],
            message: Optional[str]) -> None:
    ok, value = _outcome(result, kind, message)
    if fut.cancelled():
        return
    try:
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
    except _cf.InvalidStateError:
        pass
