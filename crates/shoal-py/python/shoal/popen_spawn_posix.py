"""`shoal.popen_spawn_posix` *is* the standard library's `multiprocessing.popen_spawn_posix`, reused as it is
(shoal starts and tracks processes with the standard library's machinery)."""

import sys
from multiprocessing import popen_spawn_posix as _reused

sys.modules[__name__] = _reused
