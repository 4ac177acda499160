"""How messages are pickled: protocol 5, with the standard library's extra reducers
(sockets, `multiprocessing` connections, methods) when plain pickling refuses."""

from __future__ import annotations

import pickle
from multiprocessing.reduction import ForkingPickler
from typing import Any

__all__ = ["PROTOCOL", "dumps", "loads"]

PROTOCOL = 5
loads = pickle.loads
_plain_dumps = pickle.dumps


def dumps(obj: Any) -> bytes:
    """`obj` pickled (protocol 5); raises the pickling error at once."""
    try:
        return _plain_dumps(obj, PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        # The standard library's reducers cover what plain pickling refuses; if they do
        # not help either, their error is the one to report.
        return bytes(ForkingPickler.dumps(obj, PROTOCOL))
