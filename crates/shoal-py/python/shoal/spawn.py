"""`shoal.spawn` *is* the standard library's `multiprocessing.spawn`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import spawn as _reused

sys.modules[__name__] = _reused
