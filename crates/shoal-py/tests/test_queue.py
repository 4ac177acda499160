"""Queues from Python: the `multiprocessing.Queue` contract on shoal's rings."""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import textwrap

import pytest
import shoal
from conftest import joined, start


def produce(q, n, size):
    for i in range(n):
        q.put((i, os.urandom(size)))


def consume_sum(q, n, out):
    out.put(sum(q.get(timeout=30)[0] for _ in range(n)))


def test_objects_cross_processes_in_order(ctx):
    q = ctx.Queue()
    p = start(ctx, produce, q, 500, 100)
    got = [q.get(timeout=30) for _ in range(500)]
    assert [i for i, _ in got] == list(range(500))
    assert all(len(b) == 100 for _, b in got)
    assert joined(p) == 0


def test_two_producers_two_consumers_deliver_everything_once(ctx):
    q, out = ctx.Queue(), ctx.Queue()
    producers = [start(ctx, produce, q, 1000, 16) for _ in range(2)]
    consumers = [start(ctx, consume_sum, q, 1000, out) for _ in range(2)]
    totals = [out.get(timeout=60) for _ in range(2)]
    assert sum(totals) == 2 * sum(range(1000))
    for p in producers + consumers:
        assert joined(p) == 0


def test_empty_full_and_timeouts():
    q = shoal.Queue(maxsize=2)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2 and not q.empty()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    assert [q.get(), q.get()] == [1, 2]
    assert q.empty()


def test_pickling_error_is_raised_by_put():
    q = shoal.Queue()
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        q.put(lambda: None)
    q.put("after")
    assert q.get(timeout=5) == "after"


def test_unbounded_put_never_blocks_and_the_feeder_delivers_in_order(ctx):
    # A ring of 64 KiB and 2 MB of messages with nobody reading: put returns at once.
    q = shoal.Queue(capacity=64 << 10)
    for i in range(2000):
        q.put((i, b"x" * 1000))
    assert q.qsize() == 2000
    out = ctx.Queue()
    p = start(ctx, consume_sum, q, 2000, out)
    assert out.get(timeout=60) == sum(range(2000))
    assert joined(p) == 0
    q.close()
    q.join_thread()


def test_closed_queue_refuses_this_process_only(ctx):
    q = ctx.Queue()
    q.put(1)
    q.close()
    with pytest.raises(ValueError):
        q.put(2)
    with pytest.raises(ValueError):
        q.get()
    # The close is per handle, as in multiprocessing: a child's copy still works.
    q2 = ctx.Queue()
    p = start(ctx, produce, q2, 3, 1)
    assert [q2.get(timeout=30)[0] for _ in range(3)] == [0, 1, 2]
    assert joined(p) == 0


def test_large_messages(ctx):
    there, back = ctx.Queue(), ctx.Queue()
    big = os.urandom(3 << 20)  # streamed: larger than half of the ring
    p = start(ctx, echo_back, there, back, 3)
    for _ in range(3):
        there.put(big)
    got = [back.get(timeout=30) for _ in range(3)]
    assert all(g == big for g in got)
    assert joined(p) == 0


def echo_back(there, back, n):
    for _ in range(n):
        back.put(there.get(timeout=30))


def task_worker(q):
    while True:
        item = q.get(timeout=30)
        if item is None:
            q.task_done()
            return
        q.task_done()


def test_joinable_queue_across_processes(ctx):
    q = ctx.JoinableQueue()
    p = start(ctx, task_worker, q)
    for i in range(100):
        q.put(i)
    q.put(None)
    q.join()
    assert joined(p) == 0
    with pytest.raises(ValueError):
        q.task_done()


def test_simple_queue(ctx):
    q = ctx.SimpleQueue()
    assert q.empty()
    p = start(ctx, simple_child, q)
    assert q.get() == "from child"
    assert joined(p) == 0
    q.close()
    with pytest.raises(ValueError):
        q.put(1)


def simple_child(q):
    q.put("from child")


def test_queue_is_shared_only_by_inheritance():
    q = shoal.Queue()
    with pytest.raises(RuntimeError):
        pickle.dumps(q)


def test_get_async_and_put_async():
    import asyncio

    async def main():
        q = shoal.Queue()
        await q.put_async({"k": 1})
        return await q.get_async(timeout=5)

    assert asyncio.run(main()) == {"k": 1}


def test_ctrl_c_interrupts_a_blocked_get():
    # In a fresh interpreter: SIGINT arrives while `get` waits with no timeout.
    code = textwrap.dedent(
        """
        import os, signal, threading, shoal
        q = shoal.Queue()
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            q.get()
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.strip() == "interrupted", out.stderr


def killed_mid_put(q, size):
    # Puts forever; the parent kills it at a random moment.
    i = 0
    while True:
        q.put((i, size, os.urandom(size)))
        i += 1


def test_producer_killed_mid_put_leaves_no_torn_message(ctx):
    q = ctx.Queue(capacity=1 << 20)
    for round_ in range(6):
        size = [100, 10_000, 700_000][round_ % 3]  # the last is streamed in parts
        p = start(ctx, killed_mid_put, q, size)
        seen = 0
        while seen < 5:
            _, n, payload = q.get(timeout=30)
            assert len(payload) == n == size
            seen += 1
        os.kill(p.pid, signal.SIGKILL)
        joined(p)
        # Whatever the dead producer left is either whole or absent.
        while True:
            try:
                _i, n, payload = q.get(timeout=0.2)
            except queue.Empty:
                break
            assert len(payload) == n == size
    q.put("still usable")
    assert q.get(timeout=10) == "still usable"


def put_when_told(q, go):
    assert go.wait(60)
    q.put("late")


def test_get_async_waits_on_the_descriptor(ctx):
    import asyncio

    q, go = ctx.Queue(), ctx.Event()
    p = start(ctx, put_when_told, q, go)

    async def main():
        async def tell():
            # Runs only if the pending get leaves the event loop free.
            await asyncio.sleep(0)
            go.set()

        t = asyncio.ensure_future(tell())
        got = await q.get_async(timeout=60)
        await t
        return got

    assert asyncio.run(main()) == "late"
    assert joined(p) == 0
    with pytest.raises(queue.Empty):
        asyncio.run(q.get_async(timeout=0.01))


def test_joinable_join_waits_for_items_still_buffered(ctx):
    # 300 KB into a 64 KiB ring with no consumer yet: most wait in the feeder's buffer,
    # and join must count them too.
    q = ctx.JoinableQueue(capacity=64 << 10)
    for i in range(300):
        q.put(b"x" * 1000 + bytes([i % 256]))
    q.put(None)
    p = start(ctx, task_worker, q)
    q.join()
    assert joined(p) == 0
