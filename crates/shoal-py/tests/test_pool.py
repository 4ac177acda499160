"""The supervised Pool: multiprocessing.Pool's surface, and workers that die."""

from __future__ import annotations

import multiprocessing.pool
import os
import pickle
import random
import signal
import threading
import time

import pytest
import shoal
import shoal.pool
from shoal import TimeoutError, WorkerDied


def square(x):
    return x * x


def add(a, b):
    return a + b


def boom(x):
    raise ValueError(f"bad {x}")


def die(x):
    os.kill(os.getpid(), signal.SIGKILL)


def exit_task(x):
    raise SystemExit(3)


class Unpicklable(Exception):
    def __init__(self, a, b):  # needs two arguments: unpickling with one fails
        super().__init__(a)
        self.b = b


def raise_unpicklable(x):
    raise Unpicklable("a", "b")


def return_lambda(x):
    return lambda: x


def slow(x):
    time.sleep(x)
    return x


def pid_of(x):
    return os.getpid()


def test_surface(ctx):
    with ctx.Pool(2) as pool:
        assert pool.apply(square, (7,)) == 49
        got = []
        r = pool.apply_async(square, (8,), callback=got.append)
        assert r.get(timeout=30) == 64 and r.ready() and r.successful() and got == [64]
        assert pool.map(square, range(20)) == [x * x for x in range(20)]
        assert pool.map(square, range(20), chunksize=3) == [x * x for x in range(20)]
        assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
        assert pool.map_async(square, [1, 2]).get(timeout=30) == [1, 4]
        assert pool.starmap_async(add, [(1, 1)]).get(timeout=30) == [2]
        assert list(pool.imap(square, range(10))) == [x * x for x in range(10)]
        assert sorted(pool.imap_unordered(square, range(10), chunksize=3)) == [x * x for x in range(10)]
        it = pool.imap(slow, [0.5])
        with pytest.raises(TimeoutError):
            it.next(timeout=0.001)
        assert it.next(timeout=30) == 0.5
        assert pool.map(square, []) == []


def test_errors_are_per_task(ctx):
    with ctx.Pool(2) as pool:
        errors = []
        r = pool.apply_async(boom, (1,), error_callback=errors.append)
        with pytest.raises(ValueError, match="bad 1"):
            r.get(timeout=30)
        assert not r.successful() and isinstance(errors[0], ValueError)
        with pytest.raises(ValueError):
            pool.map(boom, range(3))
        with pytest.raises(SystemExit):
            pool.apply(exit_task, (0,))  # a BaseException is that task's error
        with pytest.raises(Exception, match="could not be unpickled"):  # gh-79492
            pool.apply(raise_unpicklable, (0,))
        with pytest.raises(multiprocessing.pool.MaybeEncodingError, match="could not be pickled"):
            pool.apply(return_lambda, (0,))
        assert pool.apply(square, (3,)) == 9  # still usable


def test_killed_worker_fails_only_its_task(ctx):
    # gh-66587: with the standard library, this hangs forever.
    with ctx.Pool(2) as pool:
        with pytest.raises(WorkerDied) as died:
            pool.apply(die, (0,))
        assert died.value.signal == signal.SIGKILL and "die" in died.value.task
        assert pool.map(square, range(100)) == [x * x for x in range(100)]


def test_retries_run_the_task_again(ctx):
    with ctx.Pool(2, retries=2) as pool:
        pids = pool.map(pid_of, range(4))
        victim = pids[0]
        r = pool.apply_async(slow, (1.0,))
        time.sleep(0.2)
        for pid in set(pids):
            if pid == victim:
                os.kill(pid, signal.SIGKILL)
        assert r.get(timeout=60) == 1.0


def test_per_task_timeout_kills_and_replaces_the_worker(ctx):
    with ctx.Pool(1) as pool:
        r = pool.apply_async(slow, (60,), timeout=0.2)
        with pytest.raises(TimeoutError):
            r.get(timeout=60)
        assert pool.apply(square, (5,)) == 25


def test_maxtasksperchild_and_initializer(ctx):
    with ctx.Pool(1, maxtasksperchild=2) as pool:
        pids = [pool.apply(pid_of, (i,)) for i in range(6)]
    assert len(set(pids)) == 3


def test_close_join_terminate(ctx):
    pool = ctx.Pool(2)
    results = [pool.apply_async(square, (i,)) for i in range(10)]
    pool.close()
    with pytest.raises(ValueError):
        pool.apply_async(square, (1,))
    pool.join()
    assert [r.get(timeout=1) for r in results] == [i * i for i in range(10)]
    pool = ctx.Pool(2)
    r = pool.apply_async(slow, (60,))
    pool.terminate()
    pool.join()
    with pytest.raises(ValueError):
        r.get(timeout=10)


def killer(pids, stop, killed):
    while not stop():
        time.sleep(random.uniform(0.001, 0.02))
        alive = [p for p in pids() if p]
        if alive:
            victim = random.choice(alive)
            try:
                os.kill(victim, signal.SIGKILL)
                killed.add(victim)
            except ProcessLookupError:
                pass


def storm(pool_workers, rounds, run_round):
    """`rounds` rounds of `run_round()` while a thread SIGKILLs random workers; returns
    the pids killed. Every round runs under the test's watchdog."""
    killed: set = set()
    for _ in range(rounds):
        stop = threading.Event()
        t = threading.Thread(target=killer, args=(pool_workers, stop.is_set, killed), daemon=True)
        t.start()
        try:
            run_round()
        finally:
            stop.set()
            t.join(10)
    return killed


def settle(pool, killed):
    """Wait until the supervisor has replaced every killed worker."""
    deadline = time.monotonic() + 60
    while any(w.process.pid in killed for w in pool._workers):
        assert time.monotonic() < deadline, "killed workers were not replaced"
        time.sleep(0.01)


@pytest.mark.storm
def test_map_under_random_kills_never_hangs():
    # 100 rounds of a 10 000-task map (imap, so that each task reports on its own).
    with shoal.Pool(2) as pool:

        def one_round():
            it = pool.imap(square, range(10_000), chunksize=20)
            for i in range(10_000):
                try:
                    assert it.next(timeout=120) == i * i
                except WorkerDied:
                    pass

        killed = storm(lambda: [w.process.pid for w in pool._workers], 100, one_round)
        assert killed
        settle(pool, killed)
        assert pool.map(square, range(50)) == [x * x for x in range(50)]


@pytest.mark.storm
def test_retries_absorb_random_kills():
    with shoal.Pool(2, retries=50) as pool:

        def one_round():
            assert pool.map(square, range(2000), chunksize=20) == [x * x for x in range(2000)]

        assert storm(lambda: [w.process.pid for w in pool._workers], 20, one_round)


@pytest.mark.storm
def test_executor_under_random_kills_goes_on():
    from shoal.futures import ProcessPoolExecutor, WorkerDiedError

    with ProcessPoolExecutor(2) as ex:

        def one_round():
            fs = [ex.submit(square, i) for i in range(2000)]
            for i, f in enumerate(fs):
                try:
                    assert f.result(timeout=120) == i * i
                except WorkerDiedError:
                    pass

        killed = storm(lambda: [w.process.pid for w in ex._pool._workers], 20, one_round)
        assert killed
        settle(ex._pool, killed)
        assert ex.submit(square, 12).result(timeout=60) == 144


def numbers_then_fail(n):
    yield from range(n)
    raise KeyError("the iterable failed")


def test_imap_reads_its_iterable_lazily(ctx):
    import itertools

    with ctx.Pool(2) as pool:
        endless = pool.imap(square, itertools.count(), chunksize=4)
        assert [next(endless) for _ in range(100)] == [x * x for x in range(100)]
        del endless  # the rest of the endless iterable is left unread
        it = pool.imap(square, numbers_then_fail(10))
        assert [it.next(timeout=30) for _ in range(10)] == [x * x for x in range(10)]
        with pytest.raises(KeyError):
            it.next(timeout=30)
        with pytest.raises(StopIteration):
            it.next(timeout=30)
        later = pool.imap_unordered(square, range(50), chunksize=5)
        pool.close()  # what was asked before close still runs
        assert sorted(later) == [x * x for x in range(50)]
        pool.join()


def test_progress_bars():
    bar = shoal._shoal.Progress(10)
    bar.inc(3)
    assert bar.position == 3
    bar.finish()
    with shoal.Pool(2) as pool:
        assert pool.map(square, range(100), progress=True) == [x * x for x in range(100)]
        assert list(pool.imap(square, range(30), progress=True)) == [x * x for x in range(30)]


# -- many tasks per message ------------------------------------------------------------

def die_at_13_once(x, marker):
    if x == 13 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def die_at_13(x):
    if x == 13:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


class Adder:
    def __init__(self, n):
        self.n = n

    def __call__(self, x):
        return x + self.n


def test_a_death_inside_a_batch_fails_only_the_task_that_ran(ctx):
    # chunksize 1: the 13th item dies among others sent in the same message.
    with ctx.Pool(2) as pool:
        results = [pool.apply_async(die_at_13, (i,)) for i in range(40)]
        for i, r in enumerate(results):
            if i == 13:
                with pytest.raises(WorkerDied) as died:
                    r.get(timeout=60)
                assert "die_at_13(13" in died.value.task
            else:
                assert r.get(timeout=60) == i
        with pytest.raises(WorkerDied) as died:
            pool.map(die_at_13, range(200), chunksize=1)
        assert "die_at_13(13" in died.value.task
        assert pool.map(square, range(200), chunksize=1) == [x * x for x in range(200)]


def test_retries_rerun_a_batch_after_a_death(ctx, tmp_path):
    marker = str(tmp_path / "died")
    with ctx.Pool(2, retries=1) as pool:
        got = pool.starmap(die_at_13_once, [(i, marker) for i in range(300)], chunksize=1)
    assert os.path.exists(marker) and got == [x * x for x in range(300)]


def test_functions_and_callables_reach_the_workers(ctx):
    with ctx.Pool(2) as pool:
        add = Adder(1)
        assert pool.apply(add, (1,)) == 2
        add.n = 5  # a callable object travels whole: its state as it is now
        assert pool.apply(add, (1,)) == 6
        assert pool.map(add, range(50)) == [x + 5 for x in range(50)]
        # A range travels as ranges; its items come back in order.
        assert pool.map(square, range(10, 500, 3)) == [x * x for x in range(10, 500, 3)]
        assert pool.map(square, range(10, 500, 3), chunksize=7) == [x * x for x in range(10, 500, 3)]
        assert pool.map(len, ["a", "bb", ""]) == [1, 2, 0]  # a builtin, numbered too


def test_an_unpicklable_call_fails_alone(ctx):
    with ctx.Pool(1) as pool:
        bad = pool.apply_async(lambda x: x, (1,))
        good = [pool.apply_async(square, (i,)) for i in range(10)]
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            bad.get(timeout=60)
        assert [r.get(timeout=60) for r in good] == [i * i for i in range(10)]


def test_results_nobody_waits_for_still_arrive(ctx):
    with ctx.Pool(2) as pool:
        pool.apply(square, (1,))  # the pool has just sent a call straight to a worker
        got = []
        done = threading.Event()
        r = pool.apply_async(square, (3,))
        r2 = pool.apply_async(square, (4,), callback=lambda v: (got.append(v), done.set()))
        deadline = time.monotonic() + 60
        while not r.ready():
            assert time.monotonic() < deadline, "ready() never turned true"
            time.sleep(0.005)
        assert r.get(timeout=1) == 9
        assert done.wait(60) and got == [16] and r2.get(timeout=1) == 16


def test_a_pool_that_fails_to_start_leaves_no_worker(ctx):
    started = []

    class FailsOnThird:
        def Process(self, **kwargs):
            if len(started) == 2:
                raise OSError("no more processes")
            p = ctx.Process(**kwargs)
            started.append(p)
            return p

    with pytest.raises(OSError, match="no more processes"):
        shoal.pool.Pool(4, context=FailsOnThird())
    assert len(started) == 2
    for p in started:
        p.join(30)
        assert not p.is_alive()


def test_a_callback_may_submit_more(ctx):
    with ctx.Pool(2) as pool:
        second = []
        done = threading.Event()

        def then(v):
            second.append(pool.apply_async(square, (v,), callback=lambda _: done.set()))

        first = pool.apply_async(square, (3,), callback=then)
        assert first.get(timeout=60) == 9
        assert done.wait(60) and second[0].get(timeout=60) == 81


class Point:
    """Not plain data: pickled by the standard pickler."""

    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return isinstance(other, Point) and other.x == self.x


def point_at_505(x):
    return Point(x) if x == 505 else x


def pair(a, b):
    return [a, b]


def test_chunk_results_of_every_kind_come_back_in_order(ctx):
    # Chunk results are pickled one by one as they are made; a result that is not
    # plain data turns the rest of its chunk into a list of objects, and a message
    # with both kinds of chunk (13 chunks per message here) goes by the standard
    # pickler.
    with ctx.Pool(2) as pool:
        want = [Point(505) if x == 505 else x for x in range(1000)]
        assert pool.map(point_at_505, range(1000), chunksize=10) == want
        assert pool.map(point_at_505, list(range(1000))) == want
        # Lists as results: more of them than one chunk's pickling keeps track of.
        assert pool.starmap(pair, [(i, -i) for i in range(500)], chunksize=100) == [[i, -i] for i in range(500)]
        # Argument lists that are not tuples, and mixed plain values.
        values = [None, True, 1.5, "é", b"\x00", (1, "a"), {"k": [1]}, 2**40, -(2**62)]
        assert pool.starmap(pair, [[v, v] for v in values], chunksize=4) == [[v, v] for v in values]
        assert list(pool.imap(point_at_505, range(1000), chunksize=50)) == want


def test_a_list_met_twice_in_a_message_stays_one_list(ctx):
    shared = [1, 2, 3]
    a, b = ctx.Pipe()
    a.send([shared, shared, {"x": shared}])
    got = b.recv()
    assert got == [shared, shared, {"x": shared}]
    assert got[0] is got[1] is got[2]["x"]
