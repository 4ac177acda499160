"""Get and set of small values from Python: shoal.SharedDict against
multiprocessing.Manager().dict() and PyPI's UltraDict, measured in one run.

    python scripts/bench_shared_dict.py [--runs 3] [--ops 200000] [--markdown]

Each run measures every contender in turn (the order rotates between runs), on a dict
of 1000 int keys holding small values (a short str and an int), one process: the cost
of one `d[k]` and one `d[k] = v` as a program sees it. shoal keeps immutable values
it decoded while nothing changes; `get of a list` reads a small list instead (decoded
afresh on every read, by shoal as by the others). A last pattern has a child
process write while the measuring process reads (`get, 1 writer`), so that UltraDict
must apply the other process's updates and shoal's lock is contended. Figures are the
medians of the runs, in µs per operation, and shoal's speed-up against each (the
other's time over shoal's). Manager().dict() does ~100 times fewer operations (each is
a server round trip).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

import shoal

KEYS = 1000
VALUES = [f"value-{i}" for i in range(KEYS)]


def make_shoal(manager):
    return shoal.SharedDict()


def make_manager(manager):
    return manager.dict()


def make_ultra(manager):
    from UltraDict import UltraDict

    return UltraDict(buffer_size=10_000_000)


def fill(d):
    for k in range(KEYS):
        d[k] = VALUES[k]


def time_get(d, ops):
    keys = [i % KEYS for i in range(ops)]
    t = time.perf_counter()
    for k in keys:
        d[k]
    return (time.perf_counter() - t) / ops * 1e6


def time_set(d, ops):
    keys = [i % KEYS for i in range(ops)]
    t = time.perf_counter()
    for k in keys:
        d[k] = k
    return (time.perf_counter() - t) / ops * 1e6


def time_get_list(d, ops):
    for k in range(KEYS):
        d[k] = [k, "x"]
    return time_get(d, ops)


def writer(d, stop):
    i = 0
    while not stop.is_set():
        d[i % KEYS] = i
        i += 1


def time_get_with_writer(d, ops):
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    p = ctx.Process(target=writer, args=(d, stop), daemon=True)
    p.start()
    time.sleep(0.05)
    try:
        return time_get(d, ops)
    finally:
        stop.set()
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join(10)


PATTERNS = [
    ("get", time_get),
    ("set", time_set),
    ("get of a list", time_get_list),
    ("get, 1 writer", time_get_with_writer),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ops", type=int, default=200_000)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    contenders = [
        ("shoal.SharedDict", make_shoal, 1),
        ("UltraDict", make_ultra, 1),
        ("Manager().dict()", make_manager, 100),
    ]
    results = {(c, p): [] for c, _, _ in contenders for p, _ in PATTERNS}
    with mp.Manager() as manager:
        for run in range(args.runs):
            order = contenders[run % len(contenders) :] + contenders[: run % len(contenders)]
            for name, make, divisor in order:
                d = make(manager)
                fill(d)
                for pattern, fn in PATTERNS:
                    results[(name, pattern)].append(fn(d, max(args.ops // divisor, 1000)))
                if name == "UltraDict":
                    d.unlink()
                del d

    med = {k: statistics.median(v) for k, v in results.items()}
    py = platform.python_version()
    cpus = os.cpu_count()
    header = f"Python {py}, {cpus} CPUs, {args.runs} runs, {args.ops} operations (Manager: {args.ops // 100})"
    rows = []
    for pattern, _ in PATTERNS:
        s = med[("shoal.SharedDict", pattern)]
        u = med[("UltraDict", pattern)]
        m = med[("Manager().dict()", pattern)]
        rows.append((pattern, s, u, m, u / s, m / s))
    if args.markdown:
        print(header + "\n")
        print(
            "| pattern | shoal.SharedDict µs/op | UltraDict µs/op | Manager().dict() µs/op "
            "| shoal vs UltraDict | shoal vs Manager |"
        )
        print("|---|---|---|---|---|---|")
        for p, s, u, m, ru, rm in rows:
            print(f"| {p} | {s:.2f} | {u:.2f} | {m:.1f} | {ru:.2f}x | {rm:.0f}x |")
    else:
        print(header)
        print(f"{'pattern':<16}{'shoal':>10}{'UltraDict':>12}{'Manager':>10}{'vs Ultra':>10}{'vs Manager':>12}")
        for p, s, u, m, ru, rm in rows:
            print(f"{p:<16}{s:>10.2f}{u:>12.2f}{m:>10.1f}{ru:>9.2f}x{rm:>11.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
