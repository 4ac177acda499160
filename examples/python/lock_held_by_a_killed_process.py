"""A lock whose holder is killed: the next acquire takes it at once and says so,
instead of deadlocking.

Output:
holder killed while holding the lock
acquired after the holder died: True (warned: True)
"""

import os
import signal
import warnings

import shoal as multiprocessing


def hold(lock, held):
    lock.acquire()
    held.set()
    signal.pause()


if __name__ == "__main__":
    lock, held = multiprocessing.Lock(), multiprocessing.Event()
    p = multiprocessing.Process(target=hold, args=(lock, held))
    p.start()
    held.wait(30)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    print("holder killed while holding the lock")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = lock.acquire(timeout=30)
    warned = any(issubclass(w.category, multiprocessing.OwnerDiedWarning) for w in caught)
    print(f"acquired after the holder died: {got} (warned: {warned})")
    lock.release()
