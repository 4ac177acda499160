"""shoal: Python's `multiprocessing` on a Rust core.

``import shoal as multiprocessing`` and nothing else changes: the same names,
signatures and exceptions, with queues and pipes on shared-memory rings, locks that
survive a holder that dies (`OwnerDiedWarning`), segments that cannot leak, and
authenticated connections on the same wire protocol.

Processes start with the standard library's own machinery (fork, spawn, forkserver);
`Pool` supervises its workers (a worker that dies fails only its task, with
`WorkerDied`); `Manager` is shoal's, on the standard library's wire protocol (a
proxy whose server died raises `ManagerConnectionError` at once).
"""

from __future__ import annotations

import importlib as _importlib
import multiprocessing as _std
import sys as _sys

from . import context as _context
from ._errors import ManagerConnectionError, OwnerDiedError, OwnerDiedWarning, set_owner_died_policy
from .collections import SharedDict, SharedList

# The standard library's modules that shoal reuses as they are (process bookkeeping,
# start-up of children, pickling helpers, logging): importable under shoal's name too.
for _name in (
    "process", "util", "reduction", "spawn", "forkserver", "popen_fork", "popen_spawn_posix",
    "popen_forkserver", "resource_sharer", "resource_tracker", "heap",
):
    try:
        _mod = __import__(f"multiprocessing.{_name}", fromlist=["_"])
    except ImportError:  # pragma: no cover - platform-specific modules
        continue
    _sys.modules.setdefault(f"{__name__}.{_name}", _mod)
    globals()[_name] = _mod

# The module-level functions and classes (`Process`, `Queue`, `Lock`, ..., and the
# exceptions `ProcessError`, `BufferTooShort`, `TimeoutError`, `AuthenticationError`,
# which are the standard library's) are the default context's.
_default = _context._default_context
__all__ = [x for x in dir(_default) if not x.startswith("_")]
globals().update((name, getattr(_default, name)) for name in __all__)

# shoal's own submodules, attributes of the package as the standard library's are.
for _name in (
    "connection", "managers", "pool", "queues", "shared_memory", "sharedctypes", "subprocess", "synchronize",
):
    _importlib.import_module(f".{_name}", __name__)

collect_dead_segments = _sys.modules[f"{__name__}.shared_memory"].collect_dead_segments
WorkerDied = _sys.modules[f"{__name__}.pool"].WorkerDied
inherited = _sys.modules[f"{__name__}.subprocess"].inherited

SUBDEBUG = _std.SUBDEBUG
SUBWARNING = _std.SUBWARNING

__all__ += [
    "SUBDEBUG",
    "SUBWARNING",
    "ManagerConnectionError",
    "OwnerDiedError",
    "OwnerDiedWarning",
    "SharedDict",
    "SharedList",
    "WorkerDied",
    "collect_dead_segments",
    "inherited",
    "set_owner_died_policy",
]
del _name, _mod
