"""`shoal.pool` *is* the standard library's `multiprocessing.pool`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import pool as _reused

sys.modules[__name__] = _reused
