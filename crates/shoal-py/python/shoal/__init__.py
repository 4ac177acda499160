"""shoal: Python's `multiprocessing` on a Rust core.

``import shoal as multiprocessing`` and nothing else changes: the same names,
signatures and exceptions, with queues and pipes on shared-memory rings, locks that
survive a holder that dies (`OwnerDiedWarning`), segments that cannot leak, and
authenticated connections on the same wire protocol.

Processes start with the standard library's own machinery (fork, spawn, forkserver);
`Pool` and `Manager` are the standard library's for now, given shoal's other objects.
"""

from __future__ import annotations

import sys as _sys

import multiprocessing as _std

from . import context as _context
from ._errors import (
    AuthenticationError,
    BufferTooShort,
    OwnerDiedError,
    OwnerDiedWarning,
    ProcessError,
    TimeoutError,
    set_owner_died_policy,
)

# The standard library's modules that shoal reuses as they are (process bookkeeping,
# start-up of children, pickling helpers, logging): importable under shoal's name too.
for _name in (
    "process", "util", "reduction", "spawn", "forkserver", "popen_fork", "popen_spawn_posix",
    "popen_forkserver", "resource_sharer", "resource_tracker", "heap", "pool",
):
    try:
        _mod = __import__(f"multiprocessing.{_name}", fromlist=["_"])
    except ImportError:  # pragma: no cover - platform-specific modules
        continue
    _sys.modules.setdefault(f"{__name__}.{_name}", _mod)
    globals()[_name] = _mod

_default = _context._default_context
__all__ = [x for x in dir(_default) if not x.startswith("_")]
globals().update((name, getattr(_default, name)) for name in __all__)

from . import connection, managers, queues, shared_memory, sharedctypes, synchronize  # noqa: E402
from .shared_memory import collect_dead_segments  # noqa: E402

SUBDEBUG = _std.SUBDEBUG
SUBWARNING = _std.SUBWARNING

__all__ += [
    "OwnerDiedError",
    "OwnerDiedWarning",
    "set_owner_died_policy",
    "collect_dead_segments",
    "SUBDEBUG",
    "SUBWARNING",
]
del _name, _mod
