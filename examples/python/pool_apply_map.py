"""A pool: apply_async with a callback, and map.

Output:
apply_async: 100
map: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
"""

import shoal as multiprocessing


def square(x):
    return x * x


if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        got = []
        r = pool.apply_async(square, (10,), callback=got.append)
        r.wait(30)
        print("apply_async:", r.get(timeout=30))
        print("map:", pool.map(square, range(10)))
