"""`Pool`: a process pool that never hangs when a worker dies.

A supervisor thread hands each task to one idle worker over that worker's own pipe, so
it always knows which task each worker holds. When a worker dies (SIGKILL, the OOM
killer, a segfault, `os._exit`), only the task it held fails, with `WorkerDied` (or is
run again on another worker when ``retries`` allows); a new worker takes its place and
the pool goes on. A task that raises, a result or exception that cannot be pickled or
unpickled, a `BaseException` such as `SystemExit` in a task, a per-task ``timeout``
(the worker is killed and replaced): each is an error for that task, never a hang.

The surface is `multiprocessing.pool.Pool`'s: `apply`, `apply_async` (with
`callback` and `error_callback`), `map`, `map_async`, `imap`, `imap_unordered`
(`next(timeout)`), `starmap`, `starmap_async`, `close`, `join`, `terminate`, and the
context manager (which terminates). `ThreadPool` is the standard library's.
"""

from __future__ import annotations

import collections
import itertools
import os
import pickle
import signal
import threading
import time
import traceback
import weakref
from multiprocessing import TimeoutError
from multiprocessing.pool import ThreadPool
from typing import Any, Callable, Iterable, Iterator, Optional

from ._errors import ProcessError

__all__ = ["AsyncResult", "IMapIterator", "MapResult", "Pool", "ThreadPool", "WorkerDied"]


class WorkerDied(ProcessError):
    """The worker running a task died before finishing it.

    `pid`, `signal` (the signal number, or None when it exited) and `task` (a
    description of the call) say which.
    """

    def __init__(self, pid: int, signal: Optional[int], exitcode: Optional[int], task: str) -> None:
        self.pid, self.signal, self.exitcode, self.task = pid, signal, exitcode, task
        how = f"from signal {signal}" if signal is not None else f"with exit code {exitcode}"
        super().__init__(f"worker {pid} died {how} while running {task}")

    def __reduce__(self) -> Any:
        return (WorkerDied, (self.pid, self.signal, self.exitcode, self.task))


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in a worker (its `__cause__`)."""

    def __init__(self, tb: str) -> None:
        self.tb = tb
        super().__init__(tb)

    def __str__(self) -> str:
        return self.tb


def _rebuild_exc(exc: BaseException, tb: str) -> BaseException:
    exc.__cause__ = RemoteTraceback(tb)
    return exc


class _TaskError(Exception):
    """An exception that could not travel as itself."""


# -- the worker side ------------------------------------------------------------------

def _call(func: Callable, args: tuple, kwds: dict, star: bool, chunk: Optional[list]) -> Any:
    if chunk is None:
        return func(*args, **kwds)
    if star:
        return [func(*a) for a in chunk]
    return [func(a) for a in chunk]


def _worker(conn: Any, initializer: Optional[Callable], initargs: tuple, maxtasks: Optional[int]) -> None:
    # Ctrl-C goes to the parent, which terminates the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    done = 0
    while maxtasks is None or done < maxtasks:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not data:
            return
        try:
            func, args, kwds, star, chunk = pickle.loads(data)
            result = (True, _call(func, args, kwds, star, chunk))
        except BaseException as e:  # noqa: BLE001 - every failure is the task's result
            result = (False, (e, traceback.format_exc()))
        try:
            payload = pickle.dumps(result, 5)
        except BaseException as e:  # noqa: BLE001 - an unpicklable result or exception
            what = "result" if result[0] else "exception"
            err = _TaskError(f"the task's {what} could not be pickled: {e!r}; {result[1]!r:.200}")
            payload = pickle.dumps((False, (err, "")), 5)
        conn.send_bytes(payload)
        done += 1


# -- results ------------------------------------------------------------------------

class AsyncResult:
    """The result of `apply_async` (and, as `MapResult`, of `map_async`)."""

    def __init__(self, pool: Pool, callback: Optional[Callable], error_callback: Optional[Callable]) -> None:
        self._pool = pool
        self._event = threading.Event()
        self._callback, self._error_callback = callback, error_callback
        self._success: Optional[bool] = None
        self._value: Any = None

    def ready(self) -> bool:
        """Whether the call has completed."""
        return self._event.is_set()

    def successful(self) -> bool:
        """Whether the call completed without raising; `ValueError` if not ready."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return bool(self._success)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Wait until the result is available or `timeout` seconds pass."""
        self._event.wait(timeout)

    def get(self, timeout: Optional[float] = None) -> Any:
        """The result; raises the task's exception (or `WorkerDied`), or
        `multiprocessing.TimeoutError` after `timeout` seconds."""
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        if self._success:
            return self._value
        raise self._value

    def _set(self, success: bool, value: Any) -> None:
        self._success, self._value = success, value
        cb = self._callback if success else self._error_callback
        if cb is not None:
            try:
                cb(value)
            except Exception:  # noqa: BLE001 - a callback's failure is printed, as the stdlib does
                traceback.print_exc()
        self._event.set()


ApplyResult = AsyncResult


class MapResult(AsyncResult):
    """The result of `map_async`: a list, in order, once every chunk is back."""

    def __init__(self, pool: Pool, chunks: int, length: int, callback: Optional[Callable],
                 error_callback: Optional[Callable]) -> None:
        super().__init__(pool, callback, error_callback)
        self._parts: list = [None] * chunks
        self._left = chunks
        self._error: Optional[BaseException] = None
        if chunks == 0:
            self._set(True, [])

    def _set_part(self, index: int, success: bool, value: Any) -> None:
        if success:
            self._parts[index] = value
        elif self._error is None:
            self._error = value
        self._left -= 1
        if self._left == 0:
            if self._error is not None:
                self._set(False, self._error)
            else:
                self._set(True, list(itertools.chain.from_iterable(self._parts)))


class IMapIterator:
    """The iterator of `imap` (in order) and `imap_unordered`; `next(timeout)`."""

    _on_end: Optional[Callable[[], None]] = None

    def __init__(self, ordered: bool) -> None:
        self._ordered = ordered
        self._cond = threading.Condition(threading.Lock())
        self._ready: dict = {}
        self._items: collections.deque = collections.deque()
        self._next_index = 0
        self._length: Optional[int] = None
        self._yielded = 0

    def __iter__(self) -> IMapIterator:
        return self

    def next(self, timeout: Optional[float] = None) -> Any:
        """The next result; `multiprocessing.TimeoutError` after `timeout` seconds."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._length is not None and self._yielded >= self._length:
                    if self._on_end is not None:
                        self._on_end()
                        self._on_end = None
                    raise StopIteration
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._cond.wait(left)
            success, value = self._items.popleft()
            self._yielded += 1
        if success:
            return value
        raise value

    __next__ = next

    def _set_chunk(self, index: int, success: bool, values: Any, count: int) -> None:
        with self._cond:
            items = [(True, v) for v in values] if success else [(False, values)] * count
            if self._ordered:
                self._ready[index] = items
                while self._next_index in self._ready:
                    self._items.extend(self._ready.pop(self._next_index))
                    self._next_index += 1
            else:
                self._items.extend(items)
            self._cond.notify_all()

    def _set_length(self, length: int) -> None:
        with self._cond:
            self._length = length
            self._cond.notify_all()


# -- the pool -----------------------------------------------------------------------

class _Task:
    __slots__ = ("attempts", "count", "deadline", "describe", "index", "payload", "sink", "timeout")

    def __init__(self, payload: bytes, sink: Callable[[bool, Any], None], describe: str, timeout: Optional[float],
                 count: int = 1, index: int = 0) -> None:
        self.payload, self.sink, self.describe, self.timeout = payload, sink, describe, timeout
        self.attempts, self.deadline, self.count, self.index = 0, None, count, index


# Tasks handed to one worker ahead of its results: it runs them in order and answers
# each, so the supervisor always knows which one is running (the oldest unanswered).
PREFETCH = 8


class _Worker:
    __slots__ = ("conn", "done", "process", "tasks")

    def __init__(self, process: Any, conn: Any) -> None:
        self.process, self.conn, self.done = process, conn, 0
        self.tasks: collections.deque = collections.deque()

    def start_clock(self) -> None:
        """The oldest task starts running now (as far as the supervisor can tell)."""
        if self.tasks:
            t = self.tasks[0]
            t.deadline = None if t.timeout is None else time.monotonic() + t.timeout


def _progress_bar(progress: bool, iterable: Any) -> Any:
    """A progress bar drawn by the Rust side (on a terminal only), or None."""
    if not progress:
        return None
    from . import _shoal

    try:
        total: Optional[int] = len(iterable)
    except TypeError:
        total = None
    return _shoal.Progress(total)


def _describe(func: Callable, args: Any) -> str:
    name = getattr(func, "__qualname__", None) or repr(func)
    text = f"{name}{args!r}" if isinstance(args, tuple) else f"{name}({args!r})"
    return text if len(text) <= 120 else text[:117] + "..."


class Pool:
    """A pool of worker processes (as `multiprocessing.Pool(processes, initializer,
    initargs, maxtasksperchild, context)`), supervised: see the module doc.

    ``retries`` (shoal's own): how many times a task whose worker died is run again
    before it fails with `WorkerDied`.
    """

    def __init__(self, processes: Optional[int] = None, initializer: Optional[Callable] = None,
                 initargs: Iterable = (), maxtasksperchild: Optional[int] = None, context: Any = None,
                 *, retries: int = 0) -> None:
        from . import context as _context

        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._ctx = context if isinstance(context, _context.ShoalContext) else _context._default_context
        self._processes = processes
        self._initializer, self._initargs = initializer, tuple(initargs)
        self._maxtasks, self._retries = maxtasksperchild, retries
        self._lock = threading.Lock()
        self._pending: collections.deque = collections.deque()
        self._feeders = 0
        self._workers: list = []
        self._state = "RUN"
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        for _ in range(processes):
            self._workers.append(self._start_worker())
        self._supervisor = threading.Thread(target=self._supervise, name="shoal-pool-supervisor", daemon=True)
        self._supervisor.start()

    # -- workers ------------------------------------------------------------------
    def _start_worker(self) -> _Worker:
        ours, theirs = self._ctx.Pipe()
        p = self._ctx.Process(target=_worker, args=(theirs, self._initializer, self._initargs, self._maxtasks),
                              daemon=True)
        p.name = p.name.replace("Process", "PoolWorker")
        p.start()
        theirs.close()
        return _Worker(p, ours)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _supervise(self) -> None:
        from .connection import wait

        while True:
            with self._lock:
                if self._state == "TERMINATE":
                    return
                if (self._state == "CLOSE" and not self._pending and not self._feeders
                        and not any(w.tasks for w in self._workers)):
                    return
                self._dispatch()
                busy = [w for w in self._workers if w.tasks]
                deadlines = [w.tasks[0].deadline for w in busy if w.tasks[0].deadline is not None]
                conns = {w.conn: w for w in busy}
                sentinels = {w.process.sentinel: w for w in self._workers}
            timeout = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
            ready = wait([*conns, *sentinels, self._wake_r], timeout)
            with self._lock:
                if self._wake_r in ready:
                    os.read(self._wake_r, 4096)
                for obj in ready:
                    if obj in conns:
                        self._receive(conns[obj])
                for obj in ready:
                    w = sentinels.get(obj)
                    if w is not None and w in self._workers:
                        self._reap(w, timed_out=False)
                now = time.monotonic()
                for w in list(self._workers):
                    t = w.tasks[0] if w.tasks else None
                    if t is not None and t.deadline is not None and now >= t.deadline:
                        self._reap(w, timed_out=True)

    def _dispatch(self) -> None:
        for w in self._workers:
            if not self._pending:
                return
            if not w.process.is_alive():
                continue
            room = PREFETCH - len(w.tasks)
            if self._maxtasks is not None:
                # A worker that ran its `maxtasksperchild` exits: give it no more.
                room = min(room, self._maxtasks - w.done - len(w.tasks))
            while room > 0 and self._pending:
                task = self._pending.popleft()
                task.attempts += 1
                task.deadline = None
                w.tasks.append(task)
                if len(w.tasks) == 1:
                    w.start_clock()
                room -= 1
                try:
                    w.conn.send_bytes(task.payload)
                except OSError:
                    break  # the worker died: its sentinel will tell

    def _receive(self, w: _Worker) -> None:
        # Take every answer that is there already.
        while w.tasks:
            try:
                if not w.conn.poll(0):
                    return
                data = w.conn.recv_bytes()
            except (EOFError, OSError):
                return  # the worker died; its sentinel will tell
            task = w.tasks.popleft()
            w.done += 1
            w.start_clock()
            try:
                success, value = pickle.loads(data)
                if not success:
                    exc, tb = value
                    value = _rebuild_exc(exc, tb) if tb else exc
            except BaseException as e:  # noqa: BLE001 - an exception that fails to unpickle
                success, value = False, _TaskError(f"the task's result could not be unpickled: {e!r}")
            task.sink(success, value)

    def _reap(self, w: _Worker, timed_out: bool) -> None:
        p = w.process
        if timed_out:
            p.kill()
        p.join(5)
        self._receive(w)  # answers sent before it died still count
        self._workers.remove(w)
        w.conn.close()
        tasks, w.tasks = list(w.tasks), collections.deque()
        if tasks:
            task, waiting = tasks[0], tasks[1:]
            # The tasks it had not started go back first, in their order.
            self._pending.extendleft(reversed(waiting))
            for t in waiting:
                t.attempts -= 1
            if timed_out:
                task.sink(False, TimeoutError(f"task {task.describe} ran past its timeout of {task.timeout} s"))
            elif task.attempts <= self._retries:
                self._pending.appendleft(task)
            else:
                code = p.exitcode
                sig = -code if code is not None and code < 0 else None
                task.sink(False, WorkerDied(p.pid, sig, code, task.describe))
        if self._state == "RUN" or (self._state == "CLOSE" and self._pending):
            self._workers.append(self._start_worker())

    # -- submitting ---------------------------------------------------------------------
    def _check_running(self) -> None:
        if self._state != "RUN":
            raise ValueError("Pool not running")

    def _submit(self, tasks: list) -> None:
        with self._lock:
            self._check_running()
            self._pending.extend(tasks)
        self._wake()

    def _enqueue(self, tasks: list) -> bool:
        """Queue tasks of a call already accepted (an `imap` read lazily); False once
        the pool is terminated."""
        with self._lock:
            if self._state == "TERMINATE":
                return False
            self._pending.extend(tasks)
        self._wake()
        return True

    def apply(self, func: Callable, args: tuple = (), kwds: Optional[dict] = None) -> Any:
        """`func(*args, **kwds)` in a worker; its result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func: Callable, args: tuple = (), kwds: Optional[dict] = None,
                    callback: Optional[Callable] = None, error_callback: Optional[Callable] = None,
                    *, timeout: Optional[float] = None) -> AsyncResult:
        """`func(*args, **kwds)` in a worker, as an `AsyncResult`. ``timeout``
        (shoal's own): seconds after which the worker is killed and the task fails."""
        self._check_running()
        result = AsyncResult(self, callback, error_callback)
        payload = pickle.dumps((func, tuple(args), dict(kwds or {}), False, None), 5)
        self._submit([_Task(payload, result._set, _describe(func, tuple(args)), timeout)])
        return result

    def _chunks(self, func: Callable, iterable: Iterable, chunksize: Optional[int], star: bool,
                length: Optional[int] = None) -> Iterator[tuple]:
        items = iterable if isinstance(iterable, (list, tuple)) else list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            chunksize += bool(extra)
        chunksize = max(1, chunksize)
        for index, start in enumerate(range(0, len(items), chunksize)):
            chunk = list(items[start : start + chunksize])
            payload = pickle.dumps((func, (), {}, star, chunk), 5)
            yield index, payload, len(chunk), _describe(func, tuple(chunk[:3]))

    def _map_async(self, func: Callable, iterable: Iterable, chunksize: Optional[int], star: bool,
                   callback: Optional[Callable], error_callback: Optional[Callable],
                   progress: bool = False) -> MapResult:
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        chunks = list(self._chunks(func, iterable, chunksize, star))
        length = sum(c[2] for c in chunks)
        result = MapResult(self, len(chunks), length, callback, error_callback)
        bar = _progress_bar(progress, range(length))

        def part_sink(i: int, n: int) -> Callable[[bool, Any], None]:
            def sink(ok: bool, v: Any) -> None:
                if bar is not None:
                    bar.inc(n)
                    if result._left == 1:
                        bar.finish()
                result._set_part(i, ok, v)

            return sink

        tasks = [
            _Task(payload, part_sink(index, count), describe, None, count, index)
            for index, payload, count, describe in chunks
        ]
        self._submit(tasks)
        return result

    def map(self, func: Callable, iterable: Iterable, chunksize: Optional[int] = None, *,
            progress: bool = False) -> list:
        """`[func(x) for x in iterable]`, in the workers, in order. ``progress``
        (shoal's own) draws a progress bar on a terminal."""
        return self._map_async(func, iterable, chunksize, False, None, None, progress).get()

    def map_async(self, func: Callable, iterable: Iterable, chunksize: Optional[int] = None,
                  callback: Optional[Callable] = None, error_callback: Optional[Callable] = None) -> MapResult:
        """`map` as a `MapResult`."""
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap(self, func: Callable, iterable: Iterable, chunksize: Optional[int] = None) -> list:
        """`[func(*args) for args in iterable]`, in the workers, in order."""
        return self._map_async(func, iterable, chunksize, True, None, None).get()

    def starmap_async(self, func: Callable, iterable: Iterable, chunksize: Optional[int] = None,
                      callback: Optional[Callable] = None,
                      error_callback: Optional[Callable] = None) -> MapResult:
        """`starmap` as a `MapResult`."""
        return self._map_async(func, iterable, chunksize, True, callback, error_callback)

    def _imap(self, func: Callable, iterable: Iterable, chunksize: int, ordered: bool,
              progress: bool) -> IMapIterator:
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        it = IMapIterator(ordered)
        bar = _progress_bar(progress, iterable)
        # The iterable is read as results come back (it may be long, or endless):
        # at most this many chunks are out at once.
        window = threading.Semaphore(self._processes * PREFETCH * 2)

        # The feeder holds the iterator weakly: once the caller drops it, the rest of
        # the iterable is left unread (an endless one included).
        target = weakref.ref(it)

        def feed() -> None:
            count = index = 0
            source = iter(iterable)
            try:
                while target() is not None:
                    chunk = list(itertools.islice(source, chunksize))
                    if not chunk:
                        break
                    n = len(chunk)

                    def sink(ok: bool, v: Any, i: int = index, n: int = n) -> None:
                        live = target()
                        if live is not None:
                            live._set_chunk(i, ok, v, n)
                        if bar is not None:
                            bar.inc(n)
                        window.release()

                    window.acquire()
                    try:
                        payload = pickle.dumps((func, (), {}, False, chunk), 5)
                    except Exception as e:  # noqa: BLE001 - an item that cannot be pickled fails its chunk
                        sink(False, e)
                    else:
                        task = _Task(payload, sink, _describe(func, tuple(chunk[:3])), None, n, index)
                        if not self._enqueue([task]):
                            sink(False, ValueError("the pool was terminated"))
                    count += n
                    index += 1
            except Exception as e:  # noqa: BLE001 - the iterable's own error, raised at its place
                live = target()
                if live is not None:
                    live._set_chunk(index, False, e, 1)
                count += 1
            finally:
                live = target()
                if live is not None:
                    live._set_length(count)
                    if bar is not None:
                        live._on_end = bar.finish
                with self._lock:
                    self._feeders -= 1
                self._wake()

        with self._lock:
            self._feeders += 1
        threading.Thread(target=feed, name="shoal-pool-feeder", daemon=True).start()
        return it

    def imap(self, func: Callable, iterable: Iterable, chunksize: int = 1, *, progress: bool = False) -> IMapIterator:
        """Results of `func` over `iterable`, in order, as they come (the iterable is
        read as the work goes). ``progress`` (shoal's own) draws a progress bar on a
        terminal."""
        return self._imap(func, iterable, chunksize, True, progress)

    def imap_unordered(self, func: Callable, iterable: Iterable, chunksize: int = 1, *,
                       progress: bool = False) -> IMapIterator:
        """Results of `func` over `iterable`, in completion order."""
        return self._imap(func, iterable, chunksize, False, progress)

    # -- ending ---------------------------------------------------------------------------
    def close(self) -> None:
        """No more tasks; the workers exit once the submitted ones are done."""
        with self._lock:
            if self._state == "RUN":
                self._state = "CLOSE"
        self._wake()

    def terminate(self) -> None:
        """Stop the workers now; unfinished tasks fail."""
        with self._lock:
            self._state = "TERMINATE"
            pending, self._pending = list(self._pending), collections.deque()
            workers = list(self._workers)
        self._wake()
        for w in workers:
            w.process.terminate()
        for w in workers:
            w.process.join(5)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(5)
        err = ValueError("the pool was terminated")
        for t in pending + [t for w in workers for t in w.tasks]:
            t.sink(False, err)
        self._supervisor.join(10)

    def join(self) -> None:
        """Wait for the workers to exit (after `close` or `terminate`)."""
        if self._state == "RUN":
            raise ValueError("Pool is still running")
        self._supervisor.join()
        for w in list(self._workers):
            try:
                w.conn.send_bytes(b"")
            except OSError:
                pass
            w.conn.close()
            w.process.join()

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    def __reduce__(self) -> Any:
        raise TypeError("pool objects cannot be passed between processes or pickled")

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} state={self._state} pool_size={self._processes}>"
