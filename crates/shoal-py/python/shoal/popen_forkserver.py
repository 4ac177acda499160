"""`shoal.popen_forkserver` *is* the standard library's `multiprocessing.popen_forkserver`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import popen_forkserver as _reused

sys.modules[__name__] = _reused
