"""`shoal.resource_tracker` *is* the standard library's `multiprocessing.resource_tracker`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import resource_tracker as _reused

sys.modules[__name__] = _reused
