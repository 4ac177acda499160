"""Proxy calls on a manager: the standard library's `multiprocessing.Manager()` against
`shoal.Manager()`, measured in one run.

    python scripts/bench_managers.py [--runs 3] [--ops 20000] [--method fork] [--markdown]

Each run starts both managers (the order rotates between runs) and times, in one
client process, each operation `--ops` times on the proxies of a `dict` (1000 int keys
holding short strings), a `list`, a `Namespace` and a `Queue`: every operation is one
round trip to the manager's server process. Figures are the medians of the runs, in µs
per operation, and shoal's speed-up (the standard library's time over shoal's).
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


def _ops(m: object) -> dict:
    d = m.dict({k: f"value-{k}" for k in range(KEYS)})  # type: ignore[attr-defined]
    lst = m.list()  # type: ignore[attr-defined]
    ns = m.Namespace(x=1)  # type: ignore[attr-defined]
    q = m.Queue()  # type: ignore[attr-defined]

    def d_set(i: int) -> None:
        d[i % KEYS] = "value"

    def d_get(i: int) -> None:
        _ = d[i % KEYS]

    def d_len(i: int) -> None:
        len(d)

    def l_append(i: int) -> None:
        lst.append(i)

    def ns_get(i: int) -> None:
        _ = ns.x

    def ns_set(i: int) -> None:
        ns.x = i

    def q_put_get(i: int) -> None:
        q.put(i)
        q.get()

    return {"d[k] = v": d_set, "d[k]": d_get, "len(d)": d_len, "l.append(x)": l_append,
            "ns.x": ns_get, "ns.x = v": ns_set, "q.put(x); q.get()": q_put_get}


def measure(manager: object, ops: int) -> dict[str, float]:
    """µs per operation, for each operation."""
    out = {}
    for name, op in _ops(manager).items():
        for i in range(min(200, ops)):  # warm-up: connections, caches
            op(i)
        began = time.perf_counter()
        for i in range(ops):
            op(i)
        out[name] = (time.perf_counter() - began) / ops * 1e6
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--method", default="fork", help="start method of the server processes")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    contenders = {
        "stdlib": lambda: mp.get_context(args.method).Manager(),
        "shoal": lambda: shoal.get_context(args.method).Manager(),
    }
    results: dict[str, dict[str, list[float]]] = {name: {} for name in contenders}
    names = list(contenders)
    for run in range(args.runs):
        order = names[run % len(names):] + names[:run % len(names)]
        for name in order:
            with contenders[name]() as manager:
                for op, us in measure(manager, args.ops).items():
                    results[name].setdefault(op, []).append(us)
    load = os.getloadavg()
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; start method {args.method}; "
          f"medians of {args.runs} runs of {args.ops} operations, µs per operation")
    header = ["operation", "stdlib Manager", "shoal Manager", "speed-up"]
    rows = []
    for op in results["stdlib"]:
        std = statistics.median(results["stdlib"][op])
        sh = statistics.median(results["shoal"][op])
        rows.append([op, f"{std:.1f}", f"{sh:.1f}", f"{std / sh:.2f}x"])
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| `" + row[0] + "` | " + " | ".join(row[1:]) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
