"""`shoal.dummy`: the thread-backed twin of `shoal`, as `multiprocessing.dummy`
(threads in place of processes; the same names).

Threads share memory, so there is nothing for shoal's shared-memory objects to add:
this *is* the standard library's `multiprocessing.dummy` (and its `connection`), under
shoal's name, with every attribute it has (`Value`, `Array`, `Namespace`, `Pool`, ...).
"""

import multiprocessing.dummy as _dummy
import multiprocessing.dummy.connection  # noqa: F401
import sys

sys.modules[__name__ + ".connection"] = _dummy.connection
sys.modules[__name__] = _dummy
