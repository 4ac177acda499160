"""A process pool feeding a thread pool: CPU work in worker processes, their results
handed as they come to threads that do the (here simulated) I/O.

Output:
stored 20 results, total 7100
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import shoal as multiprocessing


def cube(x):
    return x * x * x % 1000


stored = []
lock = threading.Lock()


def store(value):
    with lock:
        stored.append(value)


if __name__ == "__main__":
    with multiprocessing.Pool(2) as procs, ThreadPoolExecutor(4) as threads:
        writes = [threads.submit(store, v) for v in procs.imap(cube, range(20))]
        for w in writes:
            w.result(timeout=60)
    print(f"stored {len(stored)} results, total {sum(stored)}")
