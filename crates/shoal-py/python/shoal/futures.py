"""`ProcessPoolExecutor`: `concurrent.futures` on shoal's supervised `Pool`.

A worker that dies fails only the future of the task it was running, with
`WorkerDiedError` (a `BrokenProcessPool`, so existing ``except`` clauses catch it);
the executor replaces the worker and goes on, where the standard library's breaks
and fails every pending future.
"""

from __future__ import annotations

import concurrent.futures as _cf
import multiprocessing as _mp
import threading
import time
from concurrent.futures import _base
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Optional

from .pool import Pool, WorkerDied

__all__ = ["BrokenProcessPool", "ProcessPoolExecutor", "WorkerDiedError"]


class WorkerDiedError(WorkerDied, BrokenProcessPool):
    """The worker running this future's call died (its pid, signal and task are
    attributes, as on `shoal.WorkerDied`)."""

    def __reduce__(self) -> Any:
        return (WorkerDiedError, (self.pid, self.signal, self.exitcode, self.task))


def _as_future_error(e: BaseException) -> BaseException:
    if isinstance(e, WorkerDied) and not isinstance(e, WorkerDiedError):
        return WorkerDiedError(e.pid, e.signal, e.exitcode, e.task)
    return e


# The states of a `concurrent.futures.Future` (the same names from 3.9 to 3.13).
_PENDING = _base.PENDING
_SETTLED = (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED, _base.FINISHED)


class _Future(_cf.Future):
    """A `concurrent.futures.Future` that is also the pool's call for its task: the
    pool settles it directly, and its `result` and `exception` take the worker's answer
    in the waiting thread (see `Pool._help`) instead of waiting for the pool's
    supervisor thread to pass it on.

    It has the attributes `concurrent.futures.wait`, `as_completed` and asyncio use,
    but its condition is its executor's, shared by all its futures: a future costs no
    lock of its own to make (the dearest part of making one). So a sleeper on the
    condition may be woken by another future's end: `result` and `exception` wait in
    a loop.
    """

    # The pool's side of a call (see `shoal.pool.AsyncResult`): the worker its task
    # was sent to, and whether the future is settled.
    _worker: Any = None
    _ready = False

    def __init__(self, executor: ProcessPoolExecutor) -> None:
        # The base's attributes, but its own condition: not `super().__init__()`.
        self._condition = executor._condition
        self._state = _PENDING
        self._result: Any = None
        self._exception: Optional[BaseException] = None
        self._waiters: list = []
        self._done_callbacks: list = []
        self._executor = executor
        self._pool = executor._pool

    def result(self, timeout: Optional[float] = None) -> Any:
        return super().result(self._wait(timeout))

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        return super().exception(self._wait(timeout))

    def _wait(self, timeout: Optional[float]) -> Optional[float]:
        """Waits until the future is settled or `timeout` seconds pass; then 0 (the
        base method answers without waiting), or `timeout` when already settled."""
        if self._state in _SETTLED:
            return timeout
        if not self._ready and self._worker is not None:
            timeout = self._pool._help(self, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._state not in _SETTLED:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._condition.wait(left)
        return 0

    def add_done_callback(self, fn: Callable) -> None:
        if not self._ready:
            self._pool._wake()  # the supervisor takes the answer at once
        super().add_done_callback(fn)

    # What the pool calls (as on `AsyncResult`).
    def _deliver(self, lo: int, values: list) -> None:
        self._settle(values[0], None)

    def _fail(self, lo: int, n: int, exc: BaseException) -> None:
        if not self._ready:
            self._settle(None, _as_future_error(exc))

    def _settle(self, value: Any, exc: Optional[BaseException]) -> None:
        """Sets the outcome, unless the future was cancelled. (It is never marked
        running before: it can be cancelled until its answer is in.)"""
        self._ready = True
        self._executor._futures.discard(self)
        if not self.set_running_or_notify_cancel():
            return
        if exc is None:
            self.set_result(value)
        else:
            self.set_exception(exc)


class ProcessPoolExecutor(_cf.Executor):
    """As `concurrent.futures.ProcessPoolExecutor(max_workers, mp_context,
    initializer, initargs, max_tasks_per_child)`, on a supervised shoal `Pool`."""

    def __init__(self, max_workers: Optional[int] = None, mp_context: Any = None,
                 initializer: Optional[Callable] = None, initargs: tuple = (), *,
                 max_tasks_per_child: Optional[int] = None) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._pool = Pool(max_workers, initializer, initargs, max_tasks_per_child, context=mp_context)
        self._shutdown = False
        self._lock = threading.Lock()
        self._futures: set = set()
        # The condition of every future of this executor (see `_Future`).
        self._condition = threading.Condition()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> _cf.Future:
        """Schedule ``fn(*args, **kwargs)``; returns its `Future`."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = _Future(self)
            self._futures.add(future)
        # The supervisor need not hurry for it: a waiting thread settles it too.
        self._pool._apply_call(future, fn, args, kwargs, None, False)
        return future

    def map(self, fn: Callable, *iterables: Iterable, timeout: Optional[float] = None,
            chunksize: int = 1) -> Iterator[Any]:
        """``map(fn, *iterables)`` in the workers; results in order, each within
        `timeout` seconds of the call (`TimeoutError` otherwise)."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        results = self._pool.starmap_async(fn, list(zip(*iterables)), chunksize)

        def gen() -> Iterator[Any]:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                values = results.get(left)
            except WorkerDied as e:
                raise _as_future_error(e) from None
            except _mp.TimeoutError:
                raise _cf.TimeoutError from None
            yield from values

        return gen()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; with ``cancel_futures`` cancel those not started; with
        ``wait`` return once the running ones are done."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                for f in list(self._futures):
                    f.cancel()
        if wait:
            self._pool.close()
            self._pool.join()
        else:
            self._pool.close()

    def terminate_workers(self) -> None:
        """Terminate every worker now (SIGTERM); unfinished futures fail."""
        with self._lock:
            self._shutdown = True
        self._pool.terminate()

    def kill_workers(self) -> None:
        """Kill every worker now (SIGKILL); unfinished futures fail."""
        with self._lock:
            self._shutdown = True
        for w in list(self._pool._workers):
            w.process.kill()
        self._pool.terminate()

    def __exit__(self, *exc: Any) -> bool:
        self.shutdown(wait=True)
        return False


