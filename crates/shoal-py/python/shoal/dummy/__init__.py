"""`shoal.dummy`: the thread-backed twin of `shoal`, as `multiprocessing.dummy`
(threads in place of processes; the same names)."""

from multiprocessing.dummy import *  # noqa: F401,F403
from multiprocessing.dummy import __all__  # noqa: F401
