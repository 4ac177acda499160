"""How close a pool's `map` of a trivial function can come on this machine.

    python scripts/bench_pool_floor.py [--runs 3] [--items 200000] [--rounds 15]

Measures, in the same run and as `shoal bench`'s `pool-map` case does (a pool of two
workers, `pool.map(identity, items)` with the pool's default chunking, the result
checked against `list(items)`):

* `multiprocessing.Pool(2)` and `shoal.Pool(2)`;
* the floor of any pool of two worker processes: two forked processes that only make
  the calls (`list(map(identity, half))` each, nothing sent or received), then the
  parent's check, as the pool cases do it.

Prints milliseconds per map (medians of `--runs` runs, each the median of `--rounds`
maps) and the ratios: the pool's speed against `multiprocessing.Pool`, and the best
ratio any pool could reach (`multiprocessing.Pool`'s time over the floor's).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import shoal


def identity(x):
    return x


def pool_ms(make, items, rounds):
    with make(2) as pool:
        pool.map(identity, items)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            if pool.map(identity, items) != list(items):
                raise RuntimeError("the pool returned other results")
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def floor_ms(items, rounds):
    """Two processes each calling `identity` over half of `items`, `rounds` times,
    started together; then the parent's check of a list like a pool's result."""
    half = len(items) // 2
    parts = (items[:half], items[half:])
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pids = []
    for part in parts:
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            for _ in range(rounds + 1):
                os.read(go_r, 1)
                list(map(identity, part))
                os.write(done_w, b"x")
            os._exit(0)
        pids.append(pid)
    times = []
    result = list(items)
    for i in range(rounds + 1):
        t = time.perf_counter()
        os.write(go_w, b"xx")
        got = 0
        while got < 2:
            got += len(os.read(done_r, 2))
        if result != list(items):
            raise RuntimeError("unreachable")
        if i:
            times.append(time.perf_counter() - t)
    for pid in pids:
        os.waitpid(pid, 0)
    for fd in (go_r, go_w, done_r, done_w):
        os.close(fd)
    return statistics.median(times) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=15)
    a = ap.parse_args()
    items = range(a.items)
    runs = {"mp": [], "shoal": [], "floor": []}
    for _ in range(a.runs):
        runs["mp"].append(pool_ms(mp.get_context("fork").Pool, items, a.rounds))
        runs["shoal"].append(pool_ms(shoal.get_context("fork").Pool, items, a.rounds))
        runs["floor"].append(floor_ms(items, a.rounds))
    m = {k: statistics.median(v) for k, v in runs.items()}
    print(f"| case | ms per map of {a.items} (runs) | median | items/s |")
    print("|---|--:|--:|--:|")
    names = {"mp": "multiprocessing.Pool(2)", "shoal": "shoal.Pool(2)",
             "floor": "floor: the calls alone in 2 processes, then the check"}
    for k in ("mp", "shoal", "floor"):
        runs_text = " / ".join(f"{x:.1f}" for x in runs[k])
        print(f"| {names[k]} | {runs_text} | {m[k]:.1f} | {a.items / m[k] / 1e3:.2f} M |")
    print()
    print(f"shoal.Pool against multiprocessing.Pool: {m['mp'] / m['shoal']:.2f}x; "
          f"the best any pool of two processes could reach here: {m['mp'] / m['floor']:.2f}x")


if __name__ == "__main__":
    main()
