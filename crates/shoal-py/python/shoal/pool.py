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
import types
import warnings
import weakref
from multiprocessing import TimeoutError
from multiprocessing import context as _std_context
from multiprocessing import util as _std_util
from multiprocessing.pool import MaybeEncodingError as _StdMaybeEncodingError
from multiprocessing.pool import ThreadPool
from typing import Any, Callable, Iterable, Optional

from . import _shoal
from ._errors import ProcessError

__all__ = ["AsyncResult", "IMapIterator", "MapResult", "MaybeEncodingError", "Pool", "ThreadPool", "WorkerDied"]

# A pool's states, as the standard library names them.
RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"


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


class MaybeEncodingError(_StdMaybeEncodingError):
    """A task's result could not be pickled to travel back (``exc``: why, ``value``:
    the result, both as `repr` strings); the standard library's class, so its
    ``except`` clauses catch it."""

    def __str__(self) -> str:
        return f"the task's result could not be pickled: {self.exc}; {self.value:.200}"

    def __reduce__(self) -> Any:
        return (_rebuild_encoding_error, (self.exc, self.value))


def _rebuild_encoding_error(exc: str, value: str) -> MaybeEncodingError:
    err = MaybeEncodingError.__new__(MaybeEncodingError)
    err.exc, err.value, err.args = exc, value, (exc, value)
    return err


# -- the worker side ------------------------------------------------------------------
#
# A message to a worker is a list of spans, ``(kind, func, units)``; each unit is one
# task (one failure unit): an item (`MAP`), an argument tuple (`STAR`), a chunk of items
# (`CHUNK`, `STARCHUNK`: a chunk fails as a whole, as in the standard library), or
# ``(args, kwds)`` (`APPLY`). Many tasks travel in one message and their results in one
# answer, ``(values, failures)``: ``values`` a list per span, ``failures`` a dict from a
# unit's position in the message to its pickled ``(exception, traceback)``.
#
# Before each unit the worker writes ``(message number << 32) | position`` into a word
# of shared memory (its `mark`): when it dies, the supervisor reads there which task it
# was running, fails (or retries) that one only and hands the others out again (those
# it had finished but not yet answered run once more).

MAP, STAR, CHUNK, STARCHUNK, APPLY = range(5)

# A plain function travels once to each worker, as ``(number, function)``, and then as
# its number alone: a message of plain data is pickled and unpickled in Rust, and the
# worker does not look the function up by name again. (Other callables carry state
# that may change between calls: they travel whole every time.)
_BY_NAME = (types.FunctionType, types.BuiltinFunctionType)


def _run(kind: int, func: Callable, unit: Any) -> Any:
    if kind == MAP:
        return func(unit)
    if kind == STAR:
        return func(*unit)
    if kind == CHUNK or kind == STARCHUNK:
        # Each result pickled as it is made (sent as the list of them).
        return _shoal.map_encoded(func, unit, kind == STARCHUNK)
    args, kwds = unit
    return func(*args, **kwds)


def _failure(e: BaseException, tb: str) -> bytes:
    """A task's exception, pickled on its own: one that cannot travel becomes a
    `_TaskError` saying so."""
    try:
        return pickle.dumps((e, tb), 5)
    except BaseException as err:  # noqa: BLE001 - an unpicklable exception
        return pickle.dumps((_TaskError(f"the task's exception could not be pickled: {err!r}; {e!r:.200}"), ""), 5)


def _worker(conn: Any, mark: Any, initializer: Optional[Callable], initargs: tuple, maxtasks: Optional[int]) -> None:
    # Ctrl-C goes to the parent, which terminates the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    recv, send = conn.recv, conn.send
    funcs: dict = {}
    done = seq = 0
    while maxtasks is None or done < maxtasks:
        try:
            spans = recv()
        except (EOFError, OSError):
            return
        if spans is None:
            return
        seq += 1
        base = seq << 32
        values: list = []
        failures: dict = {}
        pos = 0
        for kind, ref, units in spans:
            if type(ref) is int:
                func = funcs[ref]
            elif type(ref) is tuple:
                funcs[ref[0]] = func = ref[1]
            else:
                func = ref
            out: list = []
            for unit in units:
                mark.value = base | pos
                try:
                    out.append(_run(kind, func, unit))
                except BaseException as e:  # noqa: BLE001 - every failure is the task's result
                    out.append(None)
                    failures[pos] = _failure(e, traceback.format_exc())
                pos += 1
            values.append(out)
        done += pos
        try:
            send((values, failures))
        except BaseException:  # noqa: BLE001 - a result that cannot be pickled fails its task only
            pos = 0
            for out in values:
                for k, v in enumerate(out):
                    if pos not in failures:
                        try:
                            pickle.dumps(v, 5)
                        except BaseException as e:  # noqa: BLE001
                            err = MaybeEncodingError(e, v)
                            failures[pos] = _failure(err, "")
                            out[k] = None
                    pos += 1
            send((values, failures))


# -- results ------------------------------------------------------------------------

class AsyncResult:
    """The result of `apply_async` (and, as `MapResult`, of `map_async`)."""

    # A waiting thread usually takes its task's answer itself (`Pool._help`), so no
    # thread sleeps on most results: the `threading.Event` a sleeper needs (the costliest
    # object of a call) is made only when one does. `_set` writes `_ready` before it
    # reads `_event`; a sleeper writes `_event` before it reads `_ready`: under the
    # GIL, one of the two sees the other's write.
    _event: Optional[threading.Event] = None

    def __init__(self, pool: Pool, callback: Optional[Callable], error_callback: Optional[Callable]) -> None:
        self._pool = pool
        self._callback, self._error_callback = callback, error_callback
        # Set once the value is in and the callbacks have run.
        self._ready = False
        self._success: Optional[bool] = None
        self._value: Any = None
        # The worker its task was last sent to (a waiting thread takes the answer there).
        self._worker: Optional[_Worker] = None

    def ready(self) -> bool:
        """Whether the call has completed."""
        if not self._ready and self._worker is not None:
            self._pool._help(self, 0.0)
        return self._ready

    def successful(self) -> bool:
        """Whether the call completed without raising; `ValueError` if not ready."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return bool(self._success)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Wait until the result is available or `timeout` seconds pass."""
        if self._ready:
            return
        left = self._pool._help(self, timeout)
        if not self._ready:
            _sleep_until_ready(self, left)

    def get(self, timeout: Optional[float] = None) -> Any:
        """The result; raises the task's exception (or `WorkerDied`), or
        `multiprocessing.TimeoutError` after `timeout` seconds."""
        self.wait(timeout)
        if not self._ready:
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
        self._ready = True
        event = self._event
        if event is not None:
            event.set()

    # What the supervisor calls: the values of units ``lo …`` of the call, or the
    # failure of ``n`` units from ``lo``.
    def _deliver(self, lo: int, values: list) -> None:
        self._set(True, values[0])

    def _fail(self, lo: int, n: int, exc: BaseException) -> None:
        if not self._ready:
            self._set(False, exc)


def _sleep_until_ready(call: Any, timeout: Optional[float]) -> None:
    """Sleeps until `call` (an `AsyncResult`) is ready or `timeout` seconds pass."""
    event = call._event
    if event is None:
        with call._pool._lock:  # two sleepers make one event
            event = call._event
            if event is None:
                event = call._event = threading.Event()
    if not call._ready:
        event.wait(timeout)


ApplyResult = AsyncResult


class MapResult(AsyncResult):
    """The result of `map_async`: a list, in order, once every task is back."""

    def __init__(self, pool: Pool, units: int, chunksize: int, items: int, callback: Optional[Callable],
                 error_callback: Optional[Callable], bar: Any = None) -> None:
        super().__init__(pool, callback, error_callback)
        # Unit ``i`` holds items ``i * chunksize …``: each answer is put in its place
        # as it comes (nothing is joined at the end).
        self._parts: list = [None] * items
        self._chunksize = chunksize
        self._left = units
        self._bar = bar
        self._error: Optional[BaseException] = None
        if units == 0:
            self._set(True, [])

    def _deliver(self, lo: int, values: list) -> None:
        n = len(values)
        if self._chunksize == 1:
            self._parts[lo : lo + n] = values
            done = n
        else:
            at = lo * self._chunksize
            for chunk in values:
                end = at + len(chunk)
                self._parts[at:end] = chunk
                at = end
            done = at - lo * self._chunksize
        if self._bar is not None:
            self._bar.inc(done)
        self._done(n)

    def _fail(self, lo: int, n: int, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        if self._bar is not None:
            cs = self._chunksize
            self._bar.inc(min(len(self._parts), (lo + n) * cs) - lo * cs)
        self._done(n)

    def _done(self, n: int) -> None:
        self._left -= n
        if self._left == 0:
            if self._bar is not None:
                self._bar.finish()
            if self._error is not None:
                self._set(False, self._error)
            else:
                self._set(True, self._parts)


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

class _Span:
    """Units ``lo … hi`` of one call, run by the same function: what the pending queue
    and a worker's messages hold (a span is split when a message takes part of it)."""

    __slots__ = ("attempts", "call", "deadline", "func", "hi", "kind", "lo", "timeout", "units")

    def __init__(self, kind: int, func: Callable, units: list, lo: int, hi: int, call: Any,
                 timeout: Optional[float] = None, attempts: int = 0) -> None:
        self.kind, self.func, self.units, self.lo, self.hi = kind, func, units, lo, hi
        self.call, self.timeout, self.attempts = call, timeout, attempts
        self.deadline: Optional[float] = None

    def cut(self, lo: int, hi: int) -> _Span:
        return _Span(self.kind, self.func, self.units, lo, hi, self.call, self.timeout, self.attempts)

    def fail(self, exc: BaseException) -> None:
        self.call._fail(self.lo, self.hi - self.lo, exc)

    def describe(self, index: int) -> str:
        unit = self.units[index]
        if self.kind == MAP:
            return _describe(self.func, (unit,))
        if self.kind == STAR:
            return _describe(self.func, tuple(unit) if isinstance(unit, (tuple, list)) else (unit,))
        if self.kind in (CHUNK, STARCHUNK):
            return _describe(self.func, tuple(unit[:3]))
        return _describe(self.func, tuple(unit[0]))


class _ChunkSink:
    """Where the answer for one chunk of an `imap` goes."""

    __slots__ = ("bar", "index", "n", "target", "window")

    def __init__(self, target: Any, index: int, n: int, bar: Any, window: threading.Semaphore) -> None:
        self.target, self.index, self.n, self.bar, self.window = target, index, n, bar, window

    def _settle(self, ok: bool, v: Any) -> None:
        live = self.target()
        if live is not None:
            live._set_chunk(self.index, ok, v, self.n)
        if self.bar is not None:
            self.bar.inc(self.n)
        self.window.release()

    def _deliver(self, lo: int, values: list) -> None:
        self._settle(True, values[0])

    def _fail(self, lo: int, n: int, exc: BaseException) -> None:
        self._settle(False, exc)


# Messages handed to one worker ahead of its answers: it runs them in order, so the
# oldest unanswered one is the one running.
INFLIGHT = 4
# Tasks in one message, at most (fewer when there is less to share among the workers).
MAX_BATCH = 512
# A call sent straight to an idle worker does not wake the supervisor (the thread that
# waits for it takes the answer): while such calls come, the supervisor looks every
# TICK seconds for answers nobody waits for (a `ready()` poll, a future's waiters), and
# goes back to sleeping until woken once none came for IDLE seconds.
TICK = 0.002
IDLE = 1.0
# Functions numbered for the workers, at most (others travel whole every time).
MAX_FUNCS = 1024


class _Worker:
    __slots__ = ("answered", "conn", "known", "mark", "msgs", "process", "reader", "sent")

    def __init__(self, process: Any, conn: Any, mark: Any) -> None:
        self.process, self.conn, self.mark = process, conn, mark
        self.answered = self.sent = 0
        # Whether a thread waiting for a result reads this worker's answers now (the
        # supervisor leaves them to it).
        self.reader = False
        # The numbers of the functions it has been sent.
        self.known: set = set()
        self.msgs: collections.deque = collections.deque()

    def start_clock(self) -> None:
        """The oldest message starts running now (as far as the supervisor can tell);
        a task with a timeout travels alone."""
        if self.msgs:
            s = self.msgs[0][0]
            s.deadline = None if s.timeout is None else time.monotonic() + s.timeout


def _progress_bar(progress: bool, iterable: Any) -> Any:
    """A progress bar drawn by the Rust side (on a terminal only), or None."""
    if not progress:
        return None
    try:
        total: Optional[int] = len(iterable)
    except TypeError:
        total = None
    return _shoal.Progress(total)


def _describe(func: Callable, args: Any) -> str:
    name = getattr(func, "__qualname__", None) or repr(func)
    text = f"{name}{args!r}" if isinstance(args, tuple) else f"{name}({args!r})"
    return text if len(text) <= 120 else text[:117] + "..."


def _load_failure(raw: bytes) -> BaseException:
    try:
        exc, tb = pickle.loads(raw)
    except BaseException as e:  # noqa: BLE001 - an exception that fails to unpickle
        return _TaskError(f"the task's exception could not be unpickled: {e!r}")
    return _rebuild_exc(exc, tb) if tb else exc


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
        self._ctx = _context._default_context
        self._Process = self._ctx.Process
        if isinstance(context, _context.ShoalContext):
            self._ctx = context
            self._Process = context.Process
        elif isinstance(context, _std_context.BaseContext):
            # The standard library's: shoal's context of the same start method.
            self._ctx = _context._default_context.get_context(context.get_start_method())
            self._Process = self._ctx.Process
        elif context is not None:
            # Another object with a `Process` factory: its processes, shoal's pipes.
            self._Process = context.Process
        self._processes = processes
        self._initializer, self._initargs = initializer, tuple(initargs)
        self._maxtasks, self._retries = maxtasksperchild, retries
        # Reentrant: callbacks run under it (in the supervisor) and may submit more.
        self._lock = threading.RLock()
        self._pending: collections.deque = collections.deque()
        self._pending_units = 0
        self._feeders = 0
        self._workers: list = []
        self._state = RUN
        self._funcs: dict = {}
        self._last_direct = -IDLE
        self._ticking = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            for _ in range(processes):
                self._workers.append(self._start_worker())
        except BaseException:
            # None of the workers started so far outlives the failed pool.
            for w in self._workers:
                getattr(w.process, "kill", w.process.terminate)()
            for w in self._workers:
                w.process.join()
                w.conn.close()
            self._state = TERMINATE
            os.close(self._wake_r)
            os.close(self._wake_w)
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="shoal-pool-supervisor", daemon=True)
        self._supervisor.start()

    # -- workers ------------------------------------------------------------------
    def _start_worker(self) -> _Worker:
        ours, theirs = self._ctx.Pipe()
        mark = self._ctx.RawValue("q", 0)
        p = self._Process(target=_worker, args=(theirs, mark, self._initializer, self._initargs, self._maxtasks),
                              daemon=True)
        p.name = p.name.replace("Process", "PoolWorker")
        try:
            p.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return _Worker(p, ours, mark)

    @property
    def _pool(self) -> list:
        """The worker processes (as the standard library's `Pool._pool`)."""
        return [w.process for w in self._workers]

    def _repopulate_pool(self) -> None:
        """Starts workers until there are `processes` of them (the supervisor also
        replaces each worker that ends)."""
        with self._lock:
            while self._state == RUN and len(self._workers) < self._processes:
                self._workers.append(self._start_worker())

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _supervise(self) -> None:
        from .connection import wait

        while True:
            with self._lock:
                if self._state == TERMINATE:
                    return
                if (self._state == CLOSE and not self._pending and not self._feeders
                        and not any(w.msgs for w in self._workers)):
                    return
                self._dispatch()
                busy = [w for w in self._workers if w.msgs and not w.reader]
                deadlines = [w.msgs[0][0].deadline for w in busy if w.msgs[0][0].deadline is not None]
                conns = {w.conn: w for w in busy}
                sentinels = {w.process.sentinel: w for w in self._workers}
                now = time.monotonic()
                timeout = None if not deadlines else max(0.0, min(deadlines) - now)
                self._ticking = now - self._last_direct < IDLE
                if self._ticking:
                    timeout = TICK if timeout is None else min(timeout, TICK)
            ready = wait([*conns, *sentinels, self._wake_r], timeout)
            with self._lock:
                if self._state == TERMINATE:
                    # Its workers were stopped on purpose: their tasks fail as
                    # terminated (`terminate`), not as deaths.
                    return
                if self._wake_r in ready:
                    os.read(self._wake_r, 4096)
                for obj in ready:
                    if obj in conns and not conns[obj].reader:
                        self._receive(conns[obj])
                for obj in ready:
                    w = sentinels.get(obj)
                    # A worker whose answer a waiting thread is reading is reaped once
                    # that thread has taken it (its sentinel stays ready).
                    if w is not None and w in self._workers and not w.reader:
                        self._reap(w, timed_out=False)
                now = time.monotonic()
                for w in list(self._workers):
                    s = w.msgs[0][0] if w.msgs else None
                    if s is not None and s.deadline is not None and now >= s.deadline:
                        self._reap(w, timed_out=True)

    def _dispatch(self) -> None:
        for w in self._workers:
            while self._pending and len(w.msgs) < INFLIGHT:
                room = MAX_BATCH
                if self._maxtasks is not None:
                    # A worker that ran its `maxtasksperchild` exits: give it no more.
                    room = min(room, self._maxtasks - w.sent)
                    if room <= 0:
                        break
                # Shared out among the workers, INFLIGHT messages each: a worker has
                # the next one while the supervisor is busy (or not yet scheduled).
                share = -(-self._pending_units // (INFLIGHT * len(self._workers)))
                room = max(1, min(room, share))
                spans: list = []
                n = 0
                while self._pending and n < room:
                    span = self._pending[0]
                    if span.timeout is not None and spans:
                        break
                    size = span.hi - span.lo
                    take = min(size, room - n)
                    if take == size:
                        self._pending.popleft()
                        part = span
                    else:
                        part = span.cut(span.lo, span.lo + take)
                        span.lo += take
                    spans.append(part)
                    n += take
                    if part.timeout is not None:
                        break
                self._pending_units -= n
                if not self._send(w, spans, n):
                    return

    def _send(self, w: _Worker, spans: list, n: int) -> bool:
        """Sends one message of `spans` (`n` tasks) to `w`; False if `w` is gone."""
        w.msgs.append(spans)
        w.sent += n
        if len(w.msgs) == 1:
            w.start_clock()
        for s in spans:
            if s.kind == APPLY:
                s.call._worker = w
        new: list = []
        try:
            w.conn.send([self._wire(w, s, new) for s in spans])
            w.known.update(new)
            return True
        except OSError:
            return False  # the worker died: its sentinel will tell, and its tasks go back
        except Exception:  # noqa: BLE001 - a function or argument that cannot be pickled
            w.msgs.pop()
            w.sent -= n
        # One span at a time: only those that cannot be pickled fail.
        for s in spans:
            new = []
            try:
                wire = [self._wire(w, s, new)]
                pickle.dumps(wire, 5)
            except Exception as e:  # noqa: BLE001 - that span's own error
                s.fail(e)
                continue
            w.msgs.append([s])
            w.sent += s.hi - s.lo
            if len(w.msgs) == 1:
                w.start_clock()
            try:
                w.conn.send(wire)
            except OSError:
                return False
            w.known.update(new)
        return True

    def _wire(self, w: _Worker, s: _Span, new: list) -> tuple:
        """What travels of span `s` to `w` (the numbers of functions `w` learns
        from it go to `new`)."""
        func: Any = s.func
        if type(func) in _BY_NAME:
            entry = self._funcs.get(id(func))
            if entry is None and len(self._funcs) < MAX_FUNCS:
                # Held here, so that its id is not reused by another function.
                entry = self._funcs[id(func)] = (func, len(self._funcs))
            if entry is not None:
                number = entry[1]
                if number in w.known:
                    func = number
                else:
                    func = (number, func)
                    new.append(number)
        return (s.kind, func, s.units[s.lo : s.hi])

    def _receive(self, w: _Worker) -> None:
        # Take every answer that is there already.
        while w.msgs:
            try:
                if not w.conn.poll(0):
                    return
                answer = w.conn.recv()
            except (EOFError, OSError):
                return  # the worker died; its sentinel will tell
            except BaseException as e:  # noqa: BLE001 - a result that fails to unpickle
                self._unreadable(w, e)
                continue
            self._take(w, answer)

    def _unreadable(self, w: _Worker, e: BaseException) -> None:
        """The oldest message's answer could not be unpickled: its tasks fail."""
        spans = w.msgs.popleft()
        w.answered += 1
        w.start_clock()
        for s in spans:
            s.fail(_TaskError(f"the task's result could not be unpickled: {e!r}"))

    def _take(self, w: _Worker, answer: tuple) -> None:
        """Hands the answer to `w`'s oldest message to the calls it came from."""
        spans = w.msgs.popleft()
        w.answered += 1
        w.start_clock()
        values, failures = answer
        pos = 0
        for s, out in zip(spans, values):
            n = s.hi - s.lo
            if failures and any(pos <= k < pos + n for k in failures):
                for j in range(n):
                    raw = failures.get(pos + j)
                    if raw is None:
                        s.call._deliver(s.lo + j, out[j : j + 1])
                    else:
                        s.call._fail(s.lo + j, 1, _load_failure(raw))
            else:
                s.call._deliver(s.lo, out)
            pos += n

    def _help(self, result: AsyncResult, timeout: Optional[float]) -> Optional[float]:
        """Takes the answer for `result` from its worker in this thread, while that
        worker has no other reader: no hand-over by the supervisor. Returns what is
        left of `timeout` for waiting on the result as usual."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not result._ready:
            with self._lock:
                w = result._worker
                if w is None or w.reader or not w.msgs or w not in self._workers:
                    break
                w.reader = True
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            answer: Any = None
            error: Optional[BaseException] = None
            gone = False
            try:
                answer = _shoal.recv_answer(w.conn._raw, max(left, 0.0))
            except (EOFError, OSError):
                gone = True  # the worker died: the supervisor reaps it and says so
            except Exception as e:  # noqa: BLE001 - an answer that fails to unpickle
                error = e
            finally:
                with self._lock:
                    w.reader = False
                    if w in self._workers and w.msgs:
                        if answer is not None:
                            self._take(w, answer)
                        elif error is not None:
                            self._unreadable(w, error)
                    if w.msgs:
                        # Its other answers are the supervisor's again.
                        self._wake()
            if gone or left <= 0:
                break
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _reap(self, w: _Worker, timed_out: bool) -> None:
        p = w.process
        if timed_out:
            p.kill()
        p.join(5)
        if not w.reader:
            self._receive(w)  # answers sent before it died still count
        self._workers.remove(w)
        w.conn.close()
        msgs, w.msgs = list(w.msgs), collections.deque()
        # Which task it was running: the mark it wrote, if it had started the oldest
        # message (a task with a timeout travels alone).
        culprit: Optional[int] = None
        if msgs:
            mark = w.mark.value
            if timed_out:
                culprit = 0
            elif mark >> 32 == w.answered + 1:
                culprit = mark & 0xFFFFFFFF
        back: list = []
        for i, spans in enumerate(msgs):
            pos = 0
            for s in spans:
                n = s.hi - s.lo
                if i == 0 and culprit is not None and pos <= culprit < pos + n:
                    at = s.lo + culprit - pos
                    if at > s.lo:
                        back.append(s.cut(s.lo, at))
                    bad = s.cut(at, at + 1)
                    if timed_out:
                        bad.fail(TimeoutError(f"task {s.describe(at)} ran past its timeout of {s.timeout} s"))
                    elif bad.attempts < self._retries:
                        bad.attempts += 1
                        back.append(bad)
                    else:
                        code = p.exitcode
                        sig = -code if code is not None and code < 0 else None
                        bad.fail(WorkerDied(p.pid, sig, code, s.describe(at)))
                    if at + 1 < s.hi:
                        back.append(s.cut(at + 1, s.hi))
                else:
                    back.append(s)
                pos += n
        # The tasks it had not answered go back first, in their order.
        self._pending.extendleft(reversed(back))
        self._pending_units += sum(s.hi - s.lo for s in back)
        # Not while the interpreter exits: the worker was terminated with the other
        # daemonic children, and one started now would outlive the program.
        if (self._state == RUN or (self._state == CLOSE and self._pending)) and not _std_util._exiting:
            self._workers.append(self._start_worker())

    # -- submitting ---------------------------------------------------------------------
    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _submit(self, spans: list) -> None:
        with self._lock:
            self._check_running()
            self._pending.extend(spans)
            self._pending_units += sum(s.hi - s.lo for s in spans)
        self._wake()

    def _enqueue(self, spans: list) -> bool:
        """Queue tasks of a call already accepted (an `imap` read lazily); False once
        the pool is terminated."""
        with self._lock:
            if self._state == TERMINATE:
                return False
            self._pending.extend(spans)
            self._pending_units += sum(s.hi - s.lo for s in spans)
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
        return self._apply(func, args, kwds, callback, error_callback, timeout,
                           callback is not None or error_callback is not None)

    def _apply(self, func: Callable, args: tuple, kwds: Optional[dict], callback: Optional[Callable],
               error_callback: Optional[Callable], timeout: Optional[float], wake: bool) -> AsyncResult:
        """`apply_async`; ``wake``: see `_apply_call`."""
        self._check_running()
        result = AsyncResult(self, callback, error_callback)
        self._apply_call(result, func, args, kwds, timeout, wake)
        return result

    def _apply_call(self, call: Any, func: Callable, args: tuple, kwds: Optional[dict],
                    timeout: Optional[float], wake: bool) -> None:
        """Submits `func(*args, **kwds)` for `call` (an `AsyncResult`, or an object with
        its `_worker`, `_ready`, `_deliver` and `_fail`). ``wake``: the supervisor must
        take the answer at once (a callback waits for it) even when the call goes
        straight to an idle worker."""
        span = _Span(APPLY, func, [(tuple(args), dict(kwds) if kwds else {})], 0, 1, call, timeout)
        with self._lock:
            self._check_running()
            idle = None
            if timeout is None and not self._pending:
                # Straight to an idle worker from this thread: no hand-over.
                for w in self._workers:
                    if not w.msgs and not w.reader and (self._maxtasks is None or w.sent < self._maxtasks):
                        idle = w
                        break
            if idle is not None:
                self._send(idle, [span], 1)
                self._last_direct = time.monotonic()
                # A ticking supervisor finds the answer if no waiting thread takes it.
                wake = wake or not self._ticking
            else:
                self._pending.append(span)
                self._pending_units += 1
                wake = True
        if wake:
            self._wake()

    def _map_async(self, func: Callable, iterable: Iterable, chunksize: Optional[int], star: bool,
                   callback: Optional[Callable], error_callback: Optional[Callable],
                   progress: bool = False) -> MapResult:
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        # A range stays one: its slices are ranges, a few bytes to send.
        items = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            chunksize += bool(extra)
        chunksize = max(1, chunksize)
        if chunksize == 1:
            units = items if isinstance(items, range) else list(items)
            kind = STAR if star else MAP
        else:
            units = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
            if not isinstance(items, range):
                units = [list(u) for u in units]
            kind = STARCHUNK if star else CHUNK
        bar = _progress_bar(progress, items)
        result = MapResult(self, len(units), chunksize, len(items), callback, error_callback, bar)
        if units:
            self._submit([_Span(kind, func, units, 0, len(units), result)])
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
        window = threading.Semaphore(self._processes * MAX_BATCH)

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
                    sink = _ChunkSink(target, index, n, bar, window)
                    window.acquire()
                    if not self._enqueue([_Span(CHUNK, func, [chunk], 0, 1, sink)]):
                        sink._fail(0, 1, ValueError("the pool was terminated"))
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
            if self._state == RUN:
                self._state = CLOSE
        self._wake()

    def terminate(self) -> None:
        """Stop the workers now; unfinished tasks fail."""
        with self._lock:
            self._state = TERMINATE
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
        for s in pending + [s for w in workers for spans in w.msgs for s in spans]:
            s.fail(err)
        self._supervisor.join(10)

    def join(self) -> None:
        """Wait for the workers to exit (after `close` or `terminate`)."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        self._supervisor.join()
        for w in list(self._workers):
            try:
                w.conn.send(None)
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

    def __del__(self, _warn: Callable = warnings.warn) -> None:
        if getattr(self, "_state", None) == RUN:
            _warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, source=self)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} state={self._state} pool_size={self._processes}>"
