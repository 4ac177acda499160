"""`shoal.util` *is* the standard library's `multiprocessing.util`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import util as _reused

sys.modules[__name__] = _reused
