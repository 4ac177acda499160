"""Parallel processing with a result queue: each worker squares its slice.

Output:
sum of squares of 0..999: 332833500
"""

import shoal as multiprocessing


def squares(chunk, out):
    out.put(sum(x * x for x in chunk))


if __name__ == "__main__":
    out = multiprocessing.Queue()
    chunks = [range(i, 1000, 4) for i in range(4)]
    ps = [multiprocessing.Process(target=squares, args=(c, out)) for c in chunks]
    for p in ps:
        p.start()
    total = sum(out.get(timeout=30) for _ in ps)
    for p in ps:
        p.join()
    print("sum of squares of 0..999:", total)
