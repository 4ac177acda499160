"""Containers in shared memory: `SharedDict` and `SharedList`.

They are what `multiprocessing.Manager().dict()` and `.list()` are for, without a
server: every access is a few memory operations under a robust lock in the calling
process, and a process killed in the middle of an update leaves the container whole
(the value before or after the update, never a torn one).

Key rules (`SharedDict`): keys are `str`, `bytes` or `int` (64-bit: -2**63 to
2**64 - 1); a `bool` counts as its `int`, as in a `dict` (`d[True]` is `d[1]`). Keys
are compared by their MessagePack encoding, so `"a"` and `b"a"` are different keys.
Any other key type raises `TypeError` (and `in` answers `False`).

Values follow the container's codec, chosen at creation and recorded in its header:
`"pickle"` (the default: any picklable object, pickle protocol 5), `"msgpack"` (None,
bool, int, float, str, bytes, list, tuple and dict; tuples come back as lists) or
`"raw"` (bytes-like in, `bytes` out). The last two can be shared with a Rust program
(`shoal::collections::SharedDict<String, V>` with `Codec::MessagePack`, or
`RawDict`/`RawList` for raw bytes). Opening a container with another codec than the
one it holds raises `ValueError`.

A container is reached by name (`SharedDict.open(name)`) from any process of the same
user, and pickles as its name, so it can be passed to children under every start
method. The process that created it removes its segments when its object is garbage
collected (or at exit); `shoal gc` removes those of a creator that was killed.

Iterating takes a snapshot of the keys (or items) under the lock: a concurrent update
does not break the iteration, and is not seen by it.
"""

from __future__ import annotations

import pickle
from collections.abc import ItemsView, KeysView, MutableMapping, MutableSequence, ValuesView
from functools import partial
from typing import Any, Iterable, Iterator, Optional

from . import _shoal

__all__ = ["SharedDict", "SharedList"]

_dumps = partial(pickle.dumps, protocol=5)
_loads = pickle.loads


class _Items(ItemsView):
    def __iter__(self):
        return iter(self._mapping._items())


class _Values(ValuesView):
    def __iter__(self):
        return iter([v for _, v in self._mapping._items()])


class SharedDict(_shoal.SharedDict, MutableMapping):
    """A `dict` in shared memory (see the module docs for keys, values and names).

    `SharedDict(data=None, *, name=None, codec="pickle")` creates a container (under
    `name`, or a generated `shoal-<pid>-c<id>`), filled from `data` (a mapping or
    pairs) when given.
    """

    __slots__ = ()

    def __new__(cls, data: Any = None, *, name: Optional[str] = None, codec: str = "pickle"):
        return super().__new__(cls, name, codec, True, _dumps, _loads)

    def __init__(self, data: Any = None, *, name: Optional[str] = None, codec: str = "pickle"):
        if data is not None:
            self.update(data)

    @classmethod
    def open(cls, name: str, codec: Optional[str] = None) -> SharedDict:
        """Opens the dict `name` made by any process; `codec` (when given) must be the
        one it holds (ValueError otherwise)."""
        return _shoal.SharedDict.__new__(cls, name, codec, False, _dumps, _loads)

    def __reduce__(self):
        return (_open_dict, (self.name, self.codec))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._keys())

    def keys(self) -> KeysView:
        return KeysView(self)

    def items(self) -> ItemsView:
        return _Items(self)

    def values(self) -> ValuesView:
        return _Values(self)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Stores every pair of `other` and `kwargs` under one hold of the lock."""
        if isinstance(other, MutableMapping) or hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]
        else:
            pairs = list(other)
        pairs.extend(kwargs.items())
        self._set_many(pairs)

    def copy(self) -> dict:
        """A plain `dict` with the entries, taken under the lock."""
        return dict(self._items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._items())!r}, name={self.name!r})"


class SharedList(_shoal.SharedList, MutableSequence):
    """A `list` in shared memory (see the module docs for values and names).

    `SharedList(items=(), *, name=None, codec="pickle")` creates a container filled
    from `items`. Negative indices count from the end; a slice reads a snapshot, and
    slice assignment is not offered (assign items one by one).
    """

    __slots__ = ()

    def __new__(cls, items: Iterable[Any] = (), *, name: Optional[str] = None, codec: str = "pickle"):
        return super().__new__(cls, name, codec, True, _dumps, _loads)

    def __init__(self, items: Iterable[Any] = (), *, name: Optional[str] = None, codec: str = "pickle"):
        if items:
            self.extend(items)

    @classmethod
    def open(cls, name: str, codec: Optional[str] = None) -> SharedList:
        """Opens the list `name` made by any process; `codec` (when given) must be the
        one it holds (ValueError otherwise)."""
        return _shoal.SharedList.__new__(cls, name, codec, False, _dumps, _loads)

    def __reduce__(self):
        return (_open_list, (self.name, self.codec))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items())

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            raise TypeError("shared lists do not take slice assignment; assign items one by one")
        super().__setitem__(index, value)

    def __delitem__(self, index):
        if isinstance(index, slice):
            raise TypeError("shared lists do not take slice deletion; delete items one by one")
        super().__delitem__(index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, SharedList)):
            return self._items() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> list:
        """A plain `list` with the items, taken under the lock."""
        return self._items()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items()!r}, name={self.name!r})"


def _open_dict(name: str, codec: str) -> SharedDict:
    return SharedDict.open(name, codec)


def _open_list(name: str, codec: str) -> SharedList:
    return SharedList.open(name, codec)
