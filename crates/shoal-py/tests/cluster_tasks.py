"""Task functions of the cluster tests, imported by name on the Python worker hosts."""

from __future__ import annotations

import os
import threading
import time


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0) -> int:
    return a + b


def tag(x: int) -> tuple:
    """`x` and the worker host that ran it."""
    return x, os.environ["SHOAL_TEST_HOST"]


def slow_tag(x: int) -> tuple:
    time.sleep(0.005)
    return x, os.environ["SHOAL_TEST_HOST"]


def touch(path: str) -> bool:
    """Leaves a trace that the task ran."""
    with open(path, "w") as f:
        f.write("ran")
    return True


class Refused(ValueError):
    pass


def boom(message: str) -> None:
    raise Refused(message)


class _Unpicklable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()  # cannot be pickled


def boom_unpicklable(message: str) -> None:
    raise _Unpicklable(message)
