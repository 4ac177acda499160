"""`shoal.popen_fork` *is* the standard library's `multiprocessing.popen_fork`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import popen_fork as _reused

sys.modules[__name__] = _reused
