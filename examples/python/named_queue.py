"""Two programs that did not start each other share queues by name: this one serves a
queue of jobs and a queue of results under names of its own, and another program
(started here with plain `subprocess`, so that it inherits nothing; it could as well be
started from another terminal, or be a Rust program's `Queue::open_named`) opens them
by name alone.

Output:
the other program squared [0, 1, 2, 3, 4]: [0, 1, 4, 9, 16]
opening a name nobody serves: FileNotFoundError
the other program exited with 0
"""

import os
import subprocess
import sys

import shoal

OTHER = """
import sys, shoal
jobs = shoal.Queue(name=sys.argv[1], create=False)
results = shoal.Queue(name=sys.argv[2], create=False)   # msgpack: the creator's codec
while (n := jobs.get(timeout=60)) is not None:
    results.put(n * n)
"""

if __name__ == "__main__":
    jobs = shoal.Queue(name=f"jobs-{os.getpid()}")
    results = shoal.Queue(name=f"results-{os.getpid()}", codec="msgpack")
    other = subprocess.Popen([sys.executable, "-c", OTHER, f"jobs-{os.getpid()}", f"results-{os.getpid()}"])
    for n in range(5):
        jobs.put(n)
    jobs.put(None)
    print("the other program squared [0, 1, 2, 3, 4]:", [results.get(timeout=60) for _ in range(5)])
    try:
        shoal.Queue(name=f"nobody-{os.getpid()}", create=False)
    except FileNotFoundError as e:
        print("opening a name nobody serves:", type(e).__name__)
    print("the other program exited with", other.wait(timeout=60))
