"""`Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Condition` and
`Barrier` on shoal's robust primitives.

A lock whose holder died (a process SIGKILLed while holding it) is never a deadlock:
the next `acquire` takes it and reports it with `shoal.OwnerDiedWarning` (or raises
`shoal.OwnerDiedError`, the lock held, after ``shoal.set_owner_died_policy("raise")``).
Locks belong to the thread that acquired them: only that thread may release them
(`multiprocessing.Lock` lets any thread release; this is what lets shoal know the
holder). Every object can be passed to a child process when it starts.
"""

from __future__ import annotations

import threading
import time
from multiprocessing import context as _std_context
from typing import Any, Callable

from . import _shoal
from ._errors import owner_died
from ._reduce import dup_parts, rebuild_raw

__all__ = ["Barrier", "BoundedSemaphore", "Condition", "Event", "Lock", "RLock", "Semaphore"]

_ACQUIRED_FROM_DEAD = 2


def _rebuild(cls: type, factory: Any, data: bytes, dupfds: list) -> Any:
    obj = cls.__new__(cls)
    obj._raw = rebuild_raw(factory, data, dupfds)
    obj._after_rebuild()
    return obj


class _Shared:
    """Pickled as its raw object's descriptors, only while a process starts."""

    _raw: Any
    _factory: Any

    def _after_rebuild(self) -> None:
        pass

    def __reduce__(self) -> Any:
        _std_context.assert_spawning(self)
        data, dupfds = dup_parts(self._raw)
        return (_rebuild, (type(self), self._factory, data, dupfds))


class _LockBase(_Shared):
    _what = "lock"

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; False when not taken (not blocking, or after `timeout`)."""
        r = self._raw.acquire(block, timeout)
        if r == _ACQUIRED_FROM_DEAD:
            owner_died(self._what)
        return r != 0

    def release(self) -> None:
        """Release the lock held by the calling thread."""
        self._raw.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Lock(_LockBase):
    """A non-recursive lock shared between processes."""

    _factory = _shoal.RawLock._from_parts

    def __init__(self, *, ctx: Any = None) -> None:
        self._raw = _shoal.RawLock()

    def _is_mine(self) -> bool:
        return self._raw.is_mine()

    def __repr__(self) -> str:
        if self._raw.is_mine():
            me = threading.current_thread()
            owner = "MainThread" if me is threading.main_thread() else me.name
            state = f"owner={owner}"
        elif self._raw.is_locked():
            state = "owner=SomeOtherThread"
        else:
            state = "unlocked"
        return f"<Lock({state})>"


class RLock(_LockBase):
    """A recursive lock shared between processes."""

    _factory = _shoal.RawRLock._from_parts

    def __init__(self, *, ctx: Any = None) -> None:
        self._raw = _shoal.RawRLock()

    def _is_mine(self) -> bool:
        return self._raw.depth() > 0

    def release(self) -> None:
        """Release one level held by the calling thread."""
        try:
            self._raw.release()
        except RuntimeError:
            raise AssertionError("attempt to release recursive lock not owned by thread") from None

    def __repr__(self) -> str:
        depth = self._raw.depth()
        if depth:
            return f"<RLock({threading.current_thread().name}, {depth})>"
        if self._raw.is_locked():
            return "<RLock(SomeOtherThread, nonzero)>"
        return "<RLock(None, 0)>"


class Semaphore(_Shared):
    """A counting semaphore shared between processes."""

    _factory = _shoal.RawSemaphore._from_parts
    _bounded = False

    def __init__(self, value: int = 1, *, ctx: Any = None) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._raw = _shoal.RawSemaphore(value, self._bounded)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take one unit; False when none came (not blocking, or after `timeout`)."""
        return self._raw.acquire(block, timeout)

    def release(self) -> None:
        """Give one unit back."""
        self._raw.release()

    def get_value(self) -> int:
        """The current value."""
        return self._raw.get_value()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self.get_value()})>"


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses to be released past its initial value."""

    _bounded = True


class Event(_Shared):
    """An event shared between processes."""

    _factory = _shoal.RawEvent._from_parts

    def __init__(self, *, ctx: Any = None) -> None:
        self._raw = _shoal.RawEvent()

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._raw.is_set()

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._raw.set()

    def clear(self) -> None:
        """Reset the flag."""
        self._raw.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the flag; returns whether it is set."""
        return self._raw.wait(timeout)

    def __repr__(self) -> str:
        state = "set" if self.is_set() else "unset"
        return f"<{type(self).__qualname__} at {id(self):#x} {state}>"


class _Unreported:
    """Where `multiprocessing.Condition` has a semaphore counting sleepers, wakeups or
    pending notifications: shoal's condition is one futex word and keeps no such count,
    so, as `SemLock.get_value` where the platform cannot tell, `get_value` raises
    `NotImplementedError`."""

    def __init__(self, what: str) -> None:
        self._what = what

    def get_value(self) -> int:
        raise NotImplementedError(f"a shoal Condition does not count its {self._what}")


class Condition(_Shared):
    """A condition variable over a shoal `Lock` or `RLock` (a new `RLock` when none
    is given)."""

    _factory = _shoal.RawCondition._from_parts
    _sleeping_count = _Unreported("sleepers")
    _woken_count = _Unreported("wakeups")
    _wait_semaphore = _Unreported("pending notifications")

    def __init__(self, lock: Any | None = None, *, ctx: Any = None) -> None:
        if lock is None:
            lock = RLock()
        if not isinstance(lock, (Lock, RLock)):
            raise TypeError("a shoal Condition needs a shoal Lock or RLock")
        self._lock = lock
        self._raw = _shoal.RawCondition(lock._raw)

    def __reduce__(self) -> Any:
        _std_context.assert_spawning(self)
        return (_rebuild_condition, (self._lock, dup_parts(self._raw)))

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take the condition's lock."""
        return self._lock.acquire(block, timeout)

    def release(self) -> None:
        """Release the condition's lock."""
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notification (or `timeout`), take the lock
        back; returns False on timeout."""
        notified, how = self._raw.wait(timeout)
        if how == _ACQUIRED_FROM_DEAD:
            owner_died("condition's lock")
        return notified

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait until `predicate()` is true (or `timeout`); returns its last value."""
        import time

        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else time.monotonic() + timeout
        while not result:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.wait(left)
            else:
                self.wait()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to `n` waiters (the lock must be held)."""
        if not self._lock._is_mine():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._raw.notify(n)

    def notify_all(self) -> None:
        """Wake every waiter (the lock must be held)."""
        if not self._lock._is_mine():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._raw.notify_all()

    def __repr__(self) -> str:
        return f"<Condition({self._lock!r})>"


def _rebuild_condition(lock: Any, parts: tuple) -> Condition:
    c = Condition.__new__(Condition)
    c._lock = lock
    c._raw = rebuild_raw(_shoal.RawCondition._from_parts, *parts)
    return c


class Barrier(_Shared):
    """A barrier for `parties` threads or processes (as `threading.Barrier`).

    With an `action`, a round has two rendezvous: the last party to arrive runs the
    action while the others wait at the second, so that no party leaves before the
    action has run (an action that raises breaks the barrier for everyone)."""

    _factory = _shoal.RawBarrier._from_parts

    def __init__(self, parties: int, action: Callable[[], Any] | None = None,
                 timeout: float | None = None, *, ctx: Any = None) -> None:
        self._raw = _shoal.RawBarrier(parties)
        self._after = _shoal.RawBarrier(parties) if action is not None else None
        self._action = action
        self._timeout = timeout

    def __reduce__(self) -> Any:
        _std_context.assert_spawning(self)
        after = None if self._after is None else dup_parts(self._after)
        return (_rebuild_barrier, (dup_parts(self._raw), after, self._action, self._timeout))

    def wait(self, timeout: float | None = None) -> int:
        """Wait for every party; returns this caller's place (0 … parties-1). The
        action, if any, runs in one caller once all have arrived, before any leaves."""
        if timeout is None:
            timeout = self._timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            index, leader = self._raw.wait(timeout)
        except RuntimeError:
            raise threading.BrokenBarrierError from None
        if self._after is None:
            return index
        if leader:
            try:
                self._action()  # type: ignore[misc]
            except BaseException:
                self.abort()
                raise
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            self._after.wait(left)
        except RuntimeError:
            self._raw.abort()
            raise threading.BrokenBarrierError from None
        return index

    def reset(self) -> None:
        """Back to the initial state; current waiters get `BrokenBarrierError`."""
        self._raw.reset()
        if self._after is not None:
            self._after.reset()

    def abort(self) -> None:
        """Break the barrier: current and later waiters get `BrokenBarrierError`."""
        self._raw.abort()
        if self._after is not None:
            self._after.abort()

    @property
    def parties(self) -> int:
        return self._raw.parties

    @property
    def n_waiting(self) -> int:
        return self._raw.n_waiting + (0 if self._after is None else self._after.n_waiting)

    @property
    def broken(self) -> bool:
        return self._raw.broken or (self._after is not None and self._after.broken)

    def __repr__(self) -> str:
        if self.broken:
            return f"<{type(self).__qualname__} at {id(self):#x}: broken>"
        return (f"<{type(self).__qualname__} at {id(self):#x}: waiters={self.n_waiting}/"
                f"{self.parties}>")


def _rebuild_barrier(parts: tuple, after: Any, action: Any, timeout: Any) -> Barrier:
    b = Barrier.__new__(Barrier)
    b._raw = rebuild_raw(_shoal.RawBarrier._from_parts, *parts)
    b._after = None if after is None else rebuild_raw(_shoal.RawBarrier._from_parts, *after)
    b._action = action
    b._timeout = timeout
    return b
