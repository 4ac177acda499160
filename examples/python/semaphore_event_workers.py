"""Workers limited by a semaphore start together on an event and record their
results in a manager dict.

Output:
at most 2 at once: True
results: {0: 0, 1: 1, 2: 4, 3: 9, 4: 16}
"""

import time

import shoal as multiprocessing


def work(i, sem, go, running, peak, results):
    go.wait(30)
    with sem:
        with running.get_lock():
            running.value += 1
            peak.value = max(peak.value, running.value)
        time.sleep(0.05)
        results[i] = i * i
        with running.get_lock():
            running.value -= 1


if __name__ == "__main__":
    sem, go = multiprocessing.Semaphore(2), multiprocessing.Event()
    running, peak = multiprocessing.Value("i", 0), multiprocessing.Value("i", 0)
    with multiprocessing.Manager() as manager:
        results = manager.dict()
        ps = [multiprocessing.Process(target=work, args=(i, sem, go, running, peak, results)) for i in range(5)]
        for p in ps:
            p.start()
        go.set()
        for p in ps:
            p.join()
        print("at most 2 at once:", peak.value <= 2)
        print("results:", dict(sorted(results.items())))
