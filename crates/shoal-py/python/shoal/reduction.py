"""`shoal.reduction` *is* the standard library's `multiprocessing.reduction`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import reduction as _reused

sys.modules[__name__] = _reused
