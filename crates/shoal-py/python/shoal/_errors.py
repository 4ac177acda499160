"""shoal's exceptions and warnings, beside the ones `multiprocessing` users already catch.

`ProcessError`, `BufferTooShort`, `TimeoutError` and `AuthenticationError` *are* the
standard library's classes, so ``except multiprocessing.AuthenticationError`` catches
shoal's too.
"""

from __future__ import annotations

import warnings
from multiprocessing import AuthenticationError, BufferTooShort, ProcessError, TimeoutError

__all__ = [
    "AuthenticationError",
    "BufferTooShort",
    "ManagerConnectionError",
    "OwnerDiedError",
    "OwnerDiedWarning",
    "ProcessError",
    "TimeoutError",
    "set_owner_died_policy",
]


class OwnerDiedWarning(RuntimeWarning):
    """A lock was taken from a holder that died while holding it.

    The lock is held by the caller now; what it protected may be half-updated.
    """


class OwnerDiedError(ProcessError):
    """Raised instead of `OwnerDiedWarning` under ``set_owner_died_policy("raise")``.

    The lock *is* held by the caller when this is raised (release it when done).
    """


_policy = "warn"


def set_owner_died_policy(policy: str) -> None:
    """Choose what a lock acquisition from a dead holder does.

    ``"warn"`` (the default) issues `OwnerDiedWarning` and returns True; ``"raise"``
    raises `OwnerDiedError` (the lock is held); ``"ignore"`` returns True silently.
    """
    global _policy
    if policy not in ("warn", "raise", "ignore"):
        raise ValueError(f"unknown owner-died policy {policy!r}: use 'warn', 'raise' or 'ignore'")
    _policy = policy


def owner_died(what: str) -> None:
    """Report that `what` was taken from a dead holder, as the policy says."""
    message = f"the previous holder of this {what} died while holding it; it is held now"
    if _policy == "raise":
        raise OwnerDiedError(message)
    if _policy == "warn":
        warnings.warn(message, OwnerDiedWarning, stacklevel=3)


class ManagerConnectionError(ConnectionError, EOFError):
    """A manager's server cannot be reached: its process died, shut down, or the
    connection to it broke. Both a `ConnectionError` (an `OSError`) and an `EOFError`,
    the exceptions the standard library's proxies raise in that case, so existing
    ``except`` clauses catch it."""
