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


class _Future(_cf.Future):
    """A `concurrent.futures.Future` whose `result` and `exception` take the worker's
    answer in the waiting thread (see `Pool._help`) instead of waiting for the pool's
    supervisor thread to pass it on."""

    _call: Any = None

    def result(self, timeout: Optional[float] = None) -> Any:
        call = self._call
        if call is not None and not self.done():
            timeout = call._pool._help(call, timeout)
        return super().result(timeout)

    def add_done_callback(self, fn: Callable) -> None:
        call = self._call
        if call is not None and not self.done():
            call._pool._wake()  # the supervisor takes the answer at once
        super().add_done_callback(fn)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        call = self._call
        if call is not None and not self.done():
            timeout = call._pool._help(call, timeout)
        return super().exception(timeout)


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

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> _cf.Future:
        """Schedule ``fn(*args, **kwargs)``; returns its `Future`."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = _Future()
            self._futures.add(future)

        def done(value: Any) -> None:
            self._futures.discard(future)
            if future.set_running_or_notify_cancel():
                future.set_result(value)

        def failed(exc: BaseException) -> None:
            self._futures.discard(future)
            if future.set_running_or_notify_cancel():
                future.set_exception(_as_future_error(exc))

        # Its callbacks only settle the future, which a waiting thread settles too.
        future._call = self._pool._apply(fn, args, kwargs, done, failed, None, False)
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


