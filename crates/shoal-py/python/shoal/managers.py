"""`shoal.managers`: the standard library's managers (`BaseManager`, `SyncManager`,
`Token`, the proxies), with a `SharedMemoryManager` whose segments are shoal's
`SharedMemory` and `ShareableList` (the standard one makes the standard library's).

Anything else of `multiprocessing.managers` is reached through this module too."""

from __future__ import annotations

from multiprocessing import managers as _std
from multiprocessing.managers import *  # noqa: F403 - the module is reused whole
from typing import Any

from . import shared_memory

__all__ = list(_std.__all__)


class _SharedMemoryTracker(_std._SharedMemoryTracker):
    """The server's list of segments to remove at shutdown, for shoal segments."""

    def destroy_segment(self, segment_name: str) -> None:
        self.segment_names.remove(segment_name)
        segment = shared_memory.SharedMemory(segment_name, track=False)
        segment.close()
        segment.unlink()


class SharedMemoryServer(_std.SharedMemoryServer):
    """The standard server, tracking shoal segments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_memory_context = _SharedMemoryTracker(
            self.shared_memory_context.shared_memory_context_name)


class SharedMemoryManager(_std.SharedMemoryManager):
    """`multiprocessing.managers.SharedMemoryManager` for shoal segments: the server
    process removes every segment made through it when it shuts down."""

    _Server = SharedMemoryServer

    def _track(self, name: str, undo: Any) -> None:
        with self._Client(self._address, authkey=self._authkey) as conn:
            try:
                _std.dispatch(conn, None, "track_segment", (name,))
            except BaseException:
                undo()
                raise

    def SharedMemory(self, size: int) -> shared_memory.SharedMemory:
        """A new `shoal.shared_memory.SharedMemory` of `size` bytes, owned by the
        manager's server."""
        sms = shared_memory.SharedMemory(None, create=True, size=size)
        self._track(sms.name, sms.unlink)
        return sms

    def ShareableList(self, sequence: Any) -> shared_memory.ShareableList:
        """A new `shoal.shared_memory.ShareableList` of `sequence`, owned by the
        manager's server."""
        sl = shared_memory.ShareableList(sequence)
        self._track(sl.shm.name, sl.shm.unlink)
        return sl


def __getattr__(name: str) -> Any:
    return getattr(_std, name)
