"""`SharedMemory` and `ShareableList` on shoal's named segments.

A segment is the file ``/dev/shm/NAME`` with shoal's 64-byte header before the
payload (owner pid, layout version), so a file that is not a shoal segment, or a
segment of another layout version, is refused instead of misread; `buf` is a
`memoryview` on the payload. There is no resource tracker: nothing is unlinked
behind your back when another process closes its handle. The creator's segments that
are still linked when its interpreter exits are unlinked then (``track=False`` keeps
them), and a segment whose creator was killed is removed by ``shoal gc`` (or
`shoal.collect_dead_segments()`), which checks that the owner process is gone.
Because of the header, these segments are not interchangeable with the standard
library's `multiprocessing.shared_memory` ones.
"""

from __future__ import annotations

import atexit
import mmap
import os
import secrets
import threading
from multiprocessing.shared_memory import ShareableList as _StdShareableList
from typing import Any

from . import _shoal

__all__ = ["ShareableList", "SharedMemory"]

# Names as `multiprocessing.shared_memory` makes them: a leading slash (kept in `_name`,
# not in `name`), a prefix, and a random part; creation retries on a name in use.
_USE_POSIX = True
_SHM_NAME_PREFIX = "/shoal-psm-"


def _make_filename() -> str:
    """A fresh random segment name (the owner's pid is in it, for ``shoal gc``)."""
    return f"{_SHM_NAME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"


_owned: dict[str, Any] = {}
_owned_lock = threading.Lock()


def _unlink_owned_at_exit() -> None:
    pid = os.getpid()
    with _owned_lock:
        for _name, (seg, owner) in list(_owned.items()):
            if owner == pid:
                try:
                    seg.unlink()
                except OSError:
                    pass
        _owned.clear()


atexit.register(_unlink_owned_at_exit)


def _after_fork_in_child() -> None:
    # The parent owns its segments; a fork child must not unlink them at its exit.
    with _owned_lock:
        _owned.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SharedMemory:
    """A named block of shared memory (as `multiprocessing.shared_memory.SharedMemory
    (name=None, create=False, size=0)`)."""

    # As in `multiprocessing.shared_memory`: the flags of an open without `create`; a
    # subclass with ``os.O_CREAT`` among them creates the segment when it is missing.
    _flags = os.O_RDWR

    def __init__(self, name: str | None = None, create: bool = False, size: int = 0, *,
                 track: bool = True) -> None:
        if size < 0:
            raise ValueError("'size' must be a positive integer")
        if create and size == 0:
            raise ValueError("'size' must be a positive number different from zero")
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        seg = None
        if not create:
            try:
                seg = _shoal.Segment.open(name.lstrip("/"))
            except FileNotFoundError:
                if not (self._flags & os.O_CREAT and size):
                    raise
        if seg is None:
            if name is None:
                while True:
                    candidate = _make_filename()
                    try:
                        seg = _shoal.Segment(size, candidate.lstrip("/"))
                        break
                    except FileExistsError:
                        continue
            else:
                seg = _shoal.Segment(size, name.lstrip("/"))
            if track:
                with _owned_lock:
                    _owned[seg.name] = (seg, os.getpid())
        # At least the size asked for (a segment takes whole pages), the same for the
        # creator and every process that opens it.
        self._size = seg.size
        self._seg = seg
        self._name = "/" + seg.name
        offset = _shoal.Segment.payload_offset()
        self._mmap = mmap.mmap(seg.fileno(), offset + seg.size)
        self._buf: memoryview | None = memoryview(self._mmap)[offset : offset + self._size]

    @property
    def buf(self) -> memoryview:
        """The payload, as a writable memoryview."""
        if self._buf is None:
            raise ValueError("the shared memory is closed")
        return self._buf

    @property
    def name(self) -> str:
        """The segment's name (pass it to another process to open it)."""
        return self._name[1:]

    @property
    def size(self) -> int:
        """Payload bytes."""
        return self._size

    def close(self) -> None:
        """Unmap this handle (the segment stays until `unlink`)."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None

    def unlink(self) -> None:
        """Remove the segment's name; the memory goes once every handle is closed."""
        with _owned_lock:
            _owned.pop(self.name, None)
        self._seg.unlink()

    def __reduce__(self) -> Any:
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"

    def __del__(self) -> None:
        if getattr(self, "_mmap", None) is None:
            return  # closed, or never opened
        try:
            self.close()
        except BufferError:
            # Views of `buf` are still alive: the mapping goes with the last of them.
            return


class ShareableList(_StdShareableList):
    """`multiprocessing.shared_memory.ShareableList` stored in a shoal `SharedMemory`."""

    def __init__(self, sequence: Any = None, *, name: str | None = None) -> None:
        import multiprocessing.shared_memory as std

        # The standard class builds its storage with the module's SharedMemory; give it
        # shoal's for the duration of the construction.
        with _swap_lock:
            saved = std.SharedMemory
            std.SharedMemory = SharedMemory  # type: ignore[misc]
            try:
                super().__init__(sequence, name=name)
            finally:
                std.SharedMemory = saved  # type: ignore[misc]


_swap_lock = threading.Lock()


def collect_dead_segments() -> list:
    """Remove the named segments whose owner process is gone; returns their names."""
    return _shoal.collect_dead()
