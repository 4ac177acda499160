"""`shoal.process` *is* the standard library's `multiprocessing.process`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import process as _reused

sys.modules[__name__] = _reused
