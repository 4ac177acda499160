"""Pickling of Rust-backed objects: their bytes plus descriptors sent with `DupFd`."""

from __future__ import annotations

from multiprocessing import reduction
from typing import Any, Callable

__all__ = ["dup_parts", "rebuild_raw"]


def dup_parts(raw: Any) -> tuple[bytes, list[Any]]:
    """The raw object's description and a `DupFd` for each of its descriptors."""
    data, fds = raw._parts()
    return data, [reduction.DupFd(fd) for fd in fds]


def rebuild_raw(factory: Callable[..., Any], data: bytes, dupfds: list[Any], *extra: Any) -> Any:
    """The raw object again, from `dup_parts` (in the receiving process)."""
    return factory(data, [d.detach() for d in dupfds], *extra)
