"""Contexts and processes: the standard library's process machinery (its `Popen`
classes for fork, spawn and forkserver, `BaseProcess`, the start-up of spawned
children) with shoal's objects as the context's factories."""

from __future__ import annotations

import multiprocessing as _std
from multiprocessing import context as _std_context
from multiprocessing import process as _std_process
from typing import Any

__all__ = ["BaseContext", "DefaultContext", "ForkContext", "ForkServerContext", "SpawnContext"]


class ShoalContext(_std_context.BaseContext):
    """A context whose factories build shoal objects."""

    _name: str | None = None
    ProcessError = _std.ProcessError
    BufferTooShort = _std.BufferTooShort
    TimeoutError = _std.TimeoutError
    AuthenticationError = _std.AuthenticationError

    def get_context(self, method: str | None = None) -> ShoalContext:
        if method is None:
            return self
        try:
            ctx = _concrete_contexts[method]
        except KeyError:
            raise ValueError(f"cannot find context for {method!r}") from None
        return ctx

    def get_start_method(self, allow_none: bool = False) -> str | None:
        return self._name

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        raise ValueError("cannot set start method of concrete context")

    def get_all_start_methods(self) -> list[str]:
        return list(_concrete_contexts)

    # -- shoal's objects ---------------------------------------------------------
    def Queue(
        self,
        maxsize: int = 0,
        *,
        capacity: int | None = None,
        name: str | None = None,
        create: bool = True,
        codec: str | None = None,
    ) -> Any:
        """A `Queue`; shoal's own options: ``capacity`` (bytes of ring), ``name`` (served
        under that name for unrelated processes; ``create=False`` opens it) and
        ``codec`` (``"pickle"``, ``"msgpack"``, ``"bytes"``): see `shoal.queues.Queue`."""
        from .queues import Queue

        return Queue(maxsize, ctx=self, capacity=capacity, name=name, create=create, codec=codec)

    def JoinableQueue(
        self,
        maxsize: int = 0,
        *,
        capacity: int | None = None,
        name: str | None = None,
        create: bool = True,
        codec: str | None = None,
    ) -> Any:
        """A `JoinableQueue`; shoal's own options as `Queue`'s."""
        from .queues import JoinableQueue

        return JoinableQueue(maxsize, ctx=self, capacity=capacity, name=name, create=create, codec=codec)

    def SimpleQueue(self, *, capacity: int | None = None) -> Any:
        """A `SimpleQueue`; ``capacity``: bytes of ring (shoal's own option)."""
        from .queues import SimpleQueue

        return SimpleQueue(ctx=self, capacity=capacity)

    def Pipe(self, duplex: bool = True) -> Any:
        from .connection import Pipe

        return Pipe(duplex)

    def Lock(self) -> Any:
        from .synchronize import Lock

        return Lock(ctx=self)

    def RLock(self) -> Any:
        from .synchronize import RLock

        return RLock(ctx=self)

    def Condition(self, lock: Any = None) -> Any:
        from .synchronize import Condition

        return Condition(lock, ctx=self)

    def Semaphore(self, value: int = 1) -> Any:
        from .synchronize import Semaphore

        return Semaphore(value, ctx=self)

    def BoundedSemaphore(self, value: int = 1) -> Any:
        from .synchronize import BoundedSemaphore

        return BoundedSemaphore(value, ctx=self)

    def Event(self) -> Any:
        from .synchronize import Event

        return Event(ctx=self)

    def Barrier(self, parties: int, action: Any = None, timeout: float | None = None) -> Any:
        from .synchronize import Barrier

        return Barrier(parties, action, timeout, ctx=self)

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        from .sharedctypes import RawValue

        return RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        from .sharedctypes import RawArray

        return RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        from .sharedctypes import Value

        return Value(typecode_or_type, *args, lock=lock, ctx=self)

    def Array(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
        from .sharedctypes import Array

        return Array(typecode_or_type, size_or_initializer, lock=lock, ctx=self)

    def Manager(self) -> Any:
        """A started `shoal.managers.SyncManager` whose server process starts with this
        context's method."""
        from .managers import SyncManager

        m = SyncManager(ctx=self.get_context())
        m.start()
        return m

    def Pool(self, processes: int | None = None, initializer: Any = None, initargs: tuple = (),
             maxtasksperchild: int | None = None, *, retries: int = 0) -> Any:
        """A supervised `Pool` (see `shoal.pool`): a worker that dies fails only its task."""
        from .pool import Pool

        return Pool(processes, initializer, initargs, maxtasksperchild, context=self, retries=retries)


class ForkProcess(_std_process.BaseProcess):
    _start_method = "fork"

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        from multiprocessing.popen_fork import Popen

        return Popen(process_obj)


class SpawnProcess(_std_process.BaseProcess):
    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        from multiprocessing.popen_spawn_posix import Popen

        return Popen(process_obj)


class ForkServerProcess(_std_process.BaseProcess):
    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        from multiprocessing.popen_forkserver import Popen

        return Popen(process_obj)


class Process(_std_process.BaseProcess):
    """A process object (as `multiprocessing.Process`): subclass it and override
    `run()`, or give a `target`. It starts with the default context's method."""

    _start_method = None

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _default_context.get_context().Process._Popen(process_obj)

    @staticmethod
    def _after_fork() -> None:
        return _default_context.get_context().Process._after_fork()


class ForkContext(ShoalContext):
    _name = "fork"
    Process = ForkProcess


class SpawnContext(ShoalContext):
    _name = "spawn"
    Process = SpawnProcess


class ForkServerContext(ShoalContext):
    _name = "forkserver"
    Process = ForkServerProcess

    def _check_available(self) -> None:
        from multiprocessing import reduction

        if not reduction.HAVE_SEND_HANDLE:
            raise ValueError("forkserver start method not available")


_concrete_contexts = {
    "fork": ForkContext(),
    "spawn": SpawnContext(),
    "forkserver": ForkServerContext(),
}


class DefaultContext(ShoalContext):
    """The module-level context. Its start method *is* the standard library's default
    one: the standard library's process start-up sets it in every child (a spawned
    child restores its parent's; `BaseProcess._bootstrap` forces the child's own), so
    shoal's answer agrees with it everywhere."""

    Process = Process

    def __init__(self, context: ShoalContext) -> None:
        self._default_context = context

    @staticmethod
    def _std_default() -> Any:
        return _std_context._default_context

    def get_context(self, method: str | None = None) -> ShoalContext:
        if method is None:
            return _concrete_contexts[self._std_default().get_context()._name]
        return super().get_context(method)

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        if method is not None and method not in _concrete_contexts:
            raise ValueError(f"cannot find context for {method!r}")
        self._std_default().set_start_method(method, force=force)

    def get_start_method(self, allow_none: bool = False) -> str | None:
        return self._std_default().get_start_method(allow_none)

    def get_all_start_methods(self) -> list[str]:
        return self._std_default().get_all_start_methods()


# The standard library's own default method (fork on Linux before 3.14).
_default_context = DefaultContext(_concrete_contexts[_std_context._default_context._default_context._name])
BaseContext = _std_context.BaseContext
