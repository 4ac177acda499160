"""Producer/consumer over a queue, with one sentinel per consumer.

Output:
consumed 100 items, total 4950
"""

import shoal as multiprocessing


def producer(q, n, consumers):
    for i in range(n):
        q.put(i)
    for _ in range(consumers):
        q.put(None)


def consumer(q, results):
    count = total = 0
    while (item := q.get()) is not None:
        count += 1
        total += item
    results.put((count, total))


if __name__ == "__main__":
    q, results = multiprocessing.Queue(), multiprocessing.Queue()
    consumers = [multiprocessing.Process(target=consumer, args=(q, results)) for _ in range(2)]
    for c in consumers:
        c.start()
    producer(q, 100, len(consumers))
    parts = [results.get(timeout=30) for _ in consumers]
    for c in consumers:
        c.join()
    print(f"consumed {sum(c for c, _ in parts)} items, total {sum(t for _, t in parts)}")
