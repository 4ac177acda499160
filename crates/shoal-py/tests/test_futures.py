"""shoal.futures.ProcessPoolExecutor: concurrent.futures on the supervised pool."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import signal
import time

import pytest
import shoal
from shoal.futures import BrokenProcessPool, ProcessPoolExecutor, WorkerDiedError


def square(x):
    return x * x


def die(x):
    os.kill(os.getpid(), signal.SIGKILL)


def slow(x):
    time.sleep(x)
    return x


def boom(x):
    raise KeyError(x)


def test_submit_map_wait_as_completed(ctx):
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        fs = [ex.submit(square, i) for i in range(20)]
        done, _ = cf.wait(fs, timeout=60)
        assert len(done) == 20
        assert sorted(f.result() for f in cf.as_completed(fs, timeout=60)) == sorted(i * i for i in range(20))
        assert list(ex.map(square, range(10), chunksize=3)) == [i * i for i in range(10)]
        with pytest.raises(KeyError):
            ex.submit(boom, 1).result(timeout=60)
        with pytest.raises(cf.TimeoutError):
            list(ex.map(slow, [5], timeout=0.05))


def test_a_dead_worker_fails_only_its_future(ctx):
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        others = [ex.submit(square, i) for i in range(10)]
        doomed = ex.submit(die, 0)
        with pytest.raises(BrokenProcessPool) as err:
            doomed.result(timeout=60)
        assert isinstance(err.value, WorkerDiedError) and isinstance(err.value, shoal.WorkerDied)
        assert [f.result(timeout=60) for f in others] == [i * i for i in range(10)]
        assert ex.submit(square, 3).result(timeout=60) == 9  # the executor goes on


def test_run_in_executor():
    async def main():
        with ProcessPoolExecutor(1) as ex:
            loop = asyncio.get_running_loop()
            return await asyncio.gather(*(loop.run_in_executor(ex, square, i) for i in range(5)))

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]


def test_shutdown_and_max_tasks_per_child():
    ex = ProcessPoolExecutor(1, max_tasks_per_child=2)
    pids = {ex.submit(os.getpid).result(timeout=60) for _ in range(6)}
    assert len(pids) == 3
    ex.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        ex.submit(square, 1)
    ex = ProcessPoolExecutor(1)
    f = ex.submit(slow, 30)
    ex.kill_workers()
    with pytest.raises(Exception):  # noqa: B017 - the call was cut short
        f.result(timeout=60)
