"""`shoal.heap` *is* the standard library's `multiprocessing.heap`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import heap as _reused

sys.modules[__name__] = _reused
