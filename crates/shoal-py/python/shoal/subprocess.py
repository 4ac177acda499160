"""Programs that call programs: `Popen` hands shoal objects to any program it starts,
and `inherited` attaches them in the program started.

The objects' descriptors are inherited under their own numbers (``pass_fds``), and one
environment variable, ``SHOAL_INHERITED``, describes them by name (JSON: the kind, the
object's handoff bytes and its descriptor numbers). The layout is the Rust side's
(`shoal::process::Command::pass`, `shoal::inherited`), so a Python program hands a
queue or a pipe end to a Rust program and back.

Queues made in Python carry pickles (or, made with ``codec="msgpack"`` or
``codec="bytes"``, MessagePack or raw bytes); a queue made by a Rust program carries its
codec's messages. ``put``/``get`` follow the queue's codec: pickle, MessagePack
(``Codec::MessagePack``) and raw bytes (``Codec::Raw``) are read and written here; on a
queue of bincode or JSON they raise `TypeError`, and ``put_bytes``/``get_bytes``
exchange its raw bytes.
"""

from __future__ import annotations

import json
import os
import subprocess as _subprocess
from typing import Any

from . import connection, queues, synchronize

__all__ = ["INHERITED_ENV", "Popen", "inherited"]

INHERITED_ENV = "SHOAL_INHERITED"
_LAYOUT = 1

# Kinds of `synchronize` objects, by class (the Rust side's names).
_SYNC_KINDS: dict[str, type] = {
    "lock": synchronize.Lock,
    "rlock": synchronize.RLock,
    "semaphore": synchronize.Semaphore,
    "bounded-semaphore": synchronize.BoundedSemaphore,
    "event": synchronize.Event,
}


def _describe(name: str, obj: Any) -> tuple[dict, list[int]]:
    """The table entry of `obj` and every descriptor the program must inherit."""
    keep: list[int] = []
    entry: dict[str, Any]
    if isinstance(obj, queues.Queue):
        data, fds = obj._raw._parts()
        kind = "joinable-queue" if isinstance(obj, queues.JoinableQueue) else "queue"
        entry = {"kind": kind, "maxsize": obj._maxsize, "codec": obj._raw.codec}
    elif isinstance(obj, queues.SimpleQueue):
        data, fds = obj._raw._parts()
        entry = {"kind": "simple-queue", "codec": obj._raw.codec}
    elif isinstance(obj, connection.Connection):
        data, fds = obj._check()._parts()
        # The last descriptor is the end's liveness socket: kept open in the program
        # (so that the peer sees end of stream when it exits), not part of the ring.
        keep = [fds.pop()]
        entry = {"kind": "pipe"}
    else:
        kind = next((k for k, cls in _SYNC_KINDS.items() if type(obj) is cls), None)
        if kind is None:
            sync = ", ".join(c.__name__ for c in _SYNC_KINDS.values())
            raise TypeError(
                f"cannot pass {name!r} ({type(obj).__name__}): Popen passes shoal queues "
                f"(Queue, JoinableQueue, SimpleQueue), pipe ends and {sync}"
            )
        data, fds = obj._raw._parts()
        entry = {"kind": kind}
    entry.update(data=list(data), fds=list(fds), keep=keep)
    return entry, list(fds) + keep


class Popen(_subprocess.Popen):
    """`subprocess.Popen` that also hands shoal objects to the program:
    ``pass_objects={"jobs": queue, "control": pipe_end}``; the program attaches them
    with `shoal.inherited(name)` (Python) or `shoal::inherited::<T>(name)` (Rust)."""

    def __init__(self, args: Any, *, pass_objects: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if pass_objects:
            table: dict[str, Any] = {"version": _LAYOUT, "objects": {}}
            pass_fds = list(kwargs.pop("pass_fds", ()))
            for name, obj in pass_objects.items():
                entry, fds = _describe(name, obj)
                table["objects"][name] = entry
                pass_fds.extend(fds)
            env = dict(os.environ if kwargs.get("env") is None else kwargs["env"])
            env[INHERITED_ENV] = json.dumps(table)
            kwargs["env"] = env
            kwargs["pass_fds"] = pass_fds
        super().__init__(args, **kwargs)


# What this process inherited (read once); entries leave as they are attached.
_table: dict[str, Any] | None = None
_taken: set[str] = set()


def _entries() -> dict[str, Any]:
    global _table
    if _table is None:
        text = os.environ.get(INHERITED_ENV)
        if text is None:
            _table = {}
        else:
            try:
                table = json.loads(text)
            except ValueError as e:
                raise ValueError(f"invalid {INHERITED_ENV}: {e}") from None
            if table.get("version") != _LAYOUT:
                raise ValueError(
                    f"invalid {INHERITED_ENV}: layout version {table.get('version')} "
                    f"(this shoal reads version {_LAYOUT})"
                )
            _table = dict(table["objects"])
    return _table


class _Fd:
    """An inherited descriptor, handed to the rebuilding functions as `DupFd` is."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def detach(self) -> int:
        return self._fd


def inherited(name: str) -> Any:
    """The shoal object the program that started this one passed under `name`
    (`Popen(pass_objects=...)`, or a Rust program's `Command::pass`). Each is attached
    once; `KeyError` when there is none of that name, `ValueError` when it was attached
    already or cannot be rebuilt here."""
    entries = _entries()
    if name in _taken:
        raise ValueError(f"the inherited object {name!r} was attached already in this process")
    entry = entries.get(name)
    if entry is None:
        raise KeyError(
            f"this process inherited no shoal object named {name!r} (the program that started it "
            "passes objects with shoal.subprocess.Popen(pass_objects=...) or shoal::process::Command::pass)"
        )
    obj = _rebuild(name, entry)
    _taken.add(name)
    del entries[name]
    return obj


def _rebuild(name: str, entry: dict[str, Any]) -> Any:
    kind = entry["kind"]
    data = bytes(entry["data"])
    fds = [_Fd(fd) for fd in entry["fds"]]
    if kind in ("queue", "joinable-queue"):
        joinable = kind == "joinable-queue"
        # The queue takes the class of its codec as it is attached.
        cls = queues.JoinableQueue if joinable else queues.Queue
        return queues._rebuild(cls, data, fds, joinable, entry.get("maxsize", 0))
    if kind == "simple-queue":
        return queues._rebuild_simple(data, fds)
    if kind == "pipe":
        keep = entry.get("keep") or []
        if len(keep) != 1:
            raise ValueError(
                f"the inherited pipe end {name!r} comes from a Rust program; Python attaches the "
                "pipe ends that Python programs pass (a Rust program passes a Queue to Python instead)"
            )
        return connection._rebuild_connection(data, [*fds, _Fd(keep[0])])
    cls = _SYNC_KINDS.get(kind)
    if cls is not None:
        return synchronize._rebuild(cls, cls._factory, data, fds)
    raise ValueError(
        f"the inherited object {name!r} is a {kind}, which Python cannot attach; Python attaches "
        f"queues, pipe ends passed by Python and {', '.join(_SYNC_KINDS)}"
    )


class _Foreign:
    """`put`/`get` on a queue of a Rust program's codec that Python does not read
    (bincode, JSON): refused, naming what works."""

    _raw: Any

    def _refuse(self, what: str) -> TypeError:
        return TypeError(
            f"this queue carries {self._raw.codec} messages of a Rust program, not pickles, so "
            f"{what} cannot be used on it: exchange raw bytes with put_bytes()/get_bytes() "
            "(and decode them as the Rust side encodes, or have it put raw bytes)"
        )

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        raise self._refuse("put()")

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        raise self._refuse("get()")


class ForeignQueue(_Foreign, queues.Queue):
    """A `Queue` a Rust program made with a codec of its own: raw bytes only."""


class ForeignJoinableQueue(_Foreign, queues.JoinableQueue):
    """A `JoinableQueue` a Rust program made with a codec of its own: raw bytes only."""

