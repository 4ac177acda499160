"""A daemon process that reports heartbeats to its parent, ended with the parent's
work; a daemon never outlives its parent.

Output:
heartbeats seen: 3
daemon alive before exit: True
"""

import time

import shoal as multiprocessing


def monitor(beats):
    n = 0
    while True:
        n += 1
        beats.put(n)
        time.sleep(0.01)


if __name__ == "__main__":
    beats = multiprocessing.Queue()
    d = multiprocessing.Process(target=monitor, args=(beats,), daemon=True)
    d.start()
    seen = [beats.get(timeout=30) for _ in range(3)]
    print("heartbeats seen:", len(seen))
    print("daemon alive before exit:", d.is_alive())
    # Daemon children are terminated when the parent exits.
