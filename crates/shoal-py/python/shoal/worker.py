"""``python -m shoal.worker``: a worker host of a cluster pool, for Python functions.

    python -m shoal.worker --redis URL --pool NAME [--processes N] [--key-file F]
                           [--lease-ms MS] [--grace-ms MS] [--prefetch N]

The Redis side (reading, signature checks, leases, reclaim, dead letters, results
stored in batches before their tasks are acknowledged) is `shoal-cluster`'s, in Rust.
Only tasks whose signature checked reach Python: they are handed over in batches and
run in a local `shoal.Pool` of N processes (default: the number of CPUs), a few tasks
per local call. Each task names its function by its importable name
(``py:mypkg.jobs.resize``), imported in the local worker the first time it is needed;
the call and its outcome are pickles. A local worker that dies fails only the tasks
of its batch, with `shoal.WorkerDied`. On SIGTERM or SIGINT the host takes no new
task, lets the held ones finish for ``--grace-ms`` (default 30 s), hands back the rest
and leaves. The key comes from ``--key-file``, else ``SHOAL_CLUSTER_KEY``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import signal
import sys
import traceback
from typing import Any, Callable, Optional

from . import _shoal
from .cluster import PREFIX, PROTOCOL

__all__ = ["main"]

# Tasks taken from the host per call, at most.
TAKE = 256
# Tasks per local pool call, at most (a dead local worker fails at most these).
BATCH = 16

_functions: dict = {}


def _resolve(name: str) -> Callable:
    """The function named `name` (``module.qualname``), imported on first use."""
    fn = _functions.get(name)
    if fn is not None:
        return fn
    parts = name.split(".")
    error: Optional[BaseException] = None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and not module_name.startswith(e.name):
                raise  # the module exists but imports something missing
            error = e
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        if not callable(obj):
            raise TypeError(f"{name} is not callable")
        _functions[name] = obj
        return obj
    raise ImportError(f"no module of {name!r} can be imported on this worker host") from error


def _run_one(task: str, payload: bytes) -> bytes:
    """Runs one task in a local worker; its pickled outcome."""
    try:
        if not task.startswith(PREFIX):
            raise TypeError(f"this worker host runs Python functions by importable name; "
                            f"{task!r} is not one (a task of a Rust worker host?)")
        fn = _resolve(task[len(PREFIX):])
        kind, data = pickle.loads(payload)
        if kind == "call":
            args, kwargs = data
            value: Any = fn(*args, **kwargs)
        elif kind == "map":
            value = [fn(x) for x in data]
        elif kind == "starmap":
            value = [fn(*x) for x in data]
        else:
            raise ValueError(f"unknown kind of call {kind!r}")
    except Exception as e:  # noqa: BLE001 - the task's failure is its result
        tb = traceback.format_exc()
        try:
            return pickle.dumps((False, e, tb), PROTOCOL)
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled
            return pickle.dumps((False, None, tb), PROTOCOL)
    try:
        return pickle.dumps((True, value), PROTOCOL)
    except Exception:  # noqa: BLE001 - a result that cannot be pickled
        return pickle.dumps((False, None, "the result could not be pickled on the worker host:\n"
                             + traceback.format_exc()), PROTOCOL)


def _run_batch(tasks: list) -> list:
    """Runs `(name, payload)` tasks in a local worker; their pickled outcomes."""
    return [_run_one(name, payload) for name, payload in tasks]


def _failed(e: BaseException) -> bytes:
    """The pickled outcome of a task whose local call failed as a whole (its worker
    died)."""
    try:
        return pickle.dumps((False, e, ""), PROTOCOL)
    except Exception:  # noqa: BLE001
        return pickle.dumps((False, None, f"{type(e).__name__}: {e}"), PROTOCOL)


def serve(url: str, pool: str, processes: Optional[int] = None, key: Optional[bytes] = None,
          prefetch: Optional[int] = None, lease: Optional[float] = None,
          grace: Optional[float] = None) -> None:
    """Serves `pool` until SIGTERM or SIGINT (see the module doc)."""
    from .pool import Pool as LocalPool

    processes = processes or os.cpu_count() or 1
    # Started before the handlers below, so that its workers keep the default ones.
    local = LocalPool(processes)
    stopping: list = []
    started: list = []

    def stop(signum: int, frame: Any) -> None:
        if not stopping:
            stopping.append(signum)
            if started:
                started[0].stop()

    # Watched before the host reads its first task: a signal while it starts is a
    # stop (taken up as soon as the host exists), not the default action that would
    # kill it with tasks held.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        host = _shoal.ClusterHost(url, pool, key, processes,
                                  prefetch if prefetch is not None else max(3, 8 * processes),
                                  lease, grace)
    except BaseException:
        local.terminate()
        raise
    started.append(host)
    if stopping:
        host.stop()

    def answer(tokens: list) -> tuple:
        def done(outcomes: list) -> None:
            host.finish(list(zip(tokens, outcomes)))

        def failed(e: BaseException) -> None:
            out = _failed(e)
            host.finish([(t, out) for t in tokens])
        return done, failed

    try:
        while True:
            tasks = host.take(TAKE, 0.1)
            if tasks is None:
                break
            foreign = [(t[0], f"this worker host runs Python functions by importable name; "
                              f"{t[1]!r} is not one") for t in tasks if not t[1].startswith(PREFIX)]
            if foreign:
                # A task of another kind (a Rust host's): its submitter could not read
                # a pickled exception, so the failure goes back as text.
                host.fail(foreign)
                tasks = [t for t in tasks if t[1].startswith(PREFIX)]
            if not tasks:
                continue
            per = max(1, min(BATCH, -(-len(tasks) // (2 * processes))))
            for i in range(0, len(tasks), per):
                chunk = tasks[i:i + per]
                done, failed = answer([t[0] for t in chunk])
                local.apply_async(_run_batch, ([(t[1], t[2]) for t in chunk],),
                                  callback=done, error_callback=failed)
        host.join(10.0)
    finally:
        local.terminate()


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shoal.worker",
                                 description="A worker host of a shoal cluster pool.")
    ap.add_argument("--redis", required=True, help="redis://[user:password@]host[:port]")
    ap.add_argument("--pool", required=True, help="the pool's name")
    ap.add_argument("--processes", type=int, default=None, help="local processes")
    ap.add_argument("--key-file", default=None, help="the cluster key (else SHOAL_CLUSTER_KEY)")
    ap.add_argument("--lease-ms", type=int, default=None)
    ap.add_argument("--grace-ms", type=int, default=None)
    ap.add_argument("--prefetch", type=int, default=None, help="tasks held at once")
    a = ap.parse_args(argv)
    key = None
    if a.key_file is not None:
        with open(a.key_file, "rb") as f:
            key = f.read()
        if key.endswith(b"\n"):
            key = key[:-1].rstrip(b"\r")
    try:
        serve(a.redis, a.pool, a.processes, key, a.prefetch,
              None if a.lease_ms is None else a.lease_ms / 1000,
              None if a.grace_ms is None else a.grace_ms / 1000)
    except (ConnectionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
