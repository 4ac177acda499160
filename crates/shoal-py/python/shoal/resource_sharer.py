"""`shoal.resource_sharer` *is* the standard library's `multiprocessing.resource_sharer`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import resource_sharer as _reused

sys.modules[__name__] = _reused
