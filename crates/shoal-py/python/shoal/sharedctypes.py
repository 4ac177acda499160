"""`RawValue`, `RawArray`, `Value` and `Array`: ctypes objects in shoal shared memory.

Each object lives in its own anonymous segment (a memfd: freed by the kernel with its
last user, so no crash can leak it), mapped with `mmap`; it reaches a child process
as that descriptor. `Value` and `Array` wrap it with a shoal `RLock` (robust: a
holder that dies does not deadlock the next user) through the standard library's
`synchronized` wrappers, so ``get_lock()``, ``get_obj()``, ``.value``, ``.raw`` and
slicing behave as in `multiprocessing.sharedctypes`.
"""

from __future__ import annotations

import ctypes
import mmap
from multiprocessing import context as _std_context
from multiprocessing.sharedctypes import synchronized as _std_synchronized
from multiprocessing.sharedctypes import typecode_to_type
from typing import Any

from . import _shoal
from ._reduce import dup_parts, rebuild_raw

__all__ = ["Array", "RawArray", "RawValue", "Value", "copy", "synchronized"]

_shared_types: dict[Any, type] = {}


def _shared_type(base: Any) -> type:
    """A subclass of the ctypes type `base` whose instances pickle as their segment."""
    t = _shared_types.get(base)
    if t is None:
        t = type(base.__name__, (base,), {"__reduce__": _reduce_ctype, "__module__": base.__module__})
        _shared_types[base] = t
    return t


def _describe(t: Any) -> Any:
    """`t`, or for an array type (made on the fly, so not picklable by name) its
    element type and length."""
    if isinstance(t, type) and issubclass(t, ctypes.Array):
        return ("array", _describe(t._type_), t._length_)
    return t


def _undescribe(d: Any) -> Any:
    if isinstance(d, tuple) and d[:1] == ("array",):
        return _undescribe(d[1]) * d[2]
    return d


def _reduce_ctype(obj: Any) -> Any:
    _std_context.assert_spawning(obj)
    return (_rebuild_ctype, (_describe(type(obj).__mro__[1]), dup_parts(obj._shoal_segment)))


def _map(seg: Any, base: Any) -> Any:
    offset = _shoal.Segment.payload_offset()
    size = ctypes.sizeof(base)
    mm = mmap.mmap(seg.fileno(), offset + max(size, 1))
    obj = _shared_type(base).from_buffer(mm, offset)
    obj._shoal_segment = seg
    return obj


def _rebuild_ctype(base: Any, parts: tuple) -> Any:
    return _map(rebuild_raw(_shoal.Segment._from_parts, *parts), _undescribe(base))


def _new_value(base: Any) -> Any:
    return _map(_shoal.Segment(max(ctypes.sizeof(base), 1)), base)


def _as_type(typecode_or_type: Any) -> Any:
    return typecode_to_type.get(typecode_or_type, typecode_or_type)


def RawValue(typecode_or_type: Any, *args: Any) -> Any:
    """A ctypes object in shared memory, without a lock."""
    obj = _new_value(_as_type(typecode_or_type))
    ctypes.memset(ctypes.addressof(obj), 0, ctypes.sizeof(obj))
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type: Any, size_or_initializer: Any) -> Any:
    """A ctypes array in shared memory, without a lock: `size` zeros or a copy of the
    initializer sequence."""
    type_ = _as_type(typecode_or_type)
    if isinstance(size_or_initializer, int):
        obj = _new_value(type_ * size_or_initializer)
        ctypes.memset(ctypes.addressof(obj), 0, ctypes.sizeof(obj))
        return obj
    items = list(size_or_initializer)
    obj = _new_value(type_ * len(items))
    obj.__init__(*items)
    return obj


def synchronized(obj: Any, lock: Any | None = None, ctx: Any = None) -> Any:
    """`obj` behind a lock (a new shoal `RLock` when none is given)."""
    if lock is None:
        from .synchronize import RLock

        lock = RLock()
    return _std_synchronized(obj, lock, ctx=ctx)


def _locked(obj: Any, lock: Any) -> Any:
    if lock is False:
        return obj
    if lock in (True, None):
        from .synchronize import RLock

        lock = RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError(f"{lock!r} has no method 'acquire'")
    return _std_synchronized(obj, lock)


def Value(typecode_or_type: Any, *args: Any, lock: Any = True, ctx: Any = None) -> Any:
    """A synchronized ctypes object in shared memory (``lock=False``: raw)."""
    return _locked(RawValue(typecode_or_type, *args), lock)


def Array(typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True, ctx: Any = None) -> Any:
    """A synchronized ctypes array in shared memory (``lock=False``: raw)."""
    return _locked(RawArray(typecode_or_type, size_or_initializer), lock)


def copy(obj: Any) -> Any:
    """A new shared copy of the ctypes object `obj`."""
    new_obj = _new_value(type(obj).__mro__[1] if type(obj) in _shared_types.values() else type(obj))
    ctypes.memmove(ctypes.addressof(new_obj), ctypes.addressof(obj), ctypes.sizeof(obj))
    return new_obj
