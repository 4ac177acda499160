"""Locks, semaphores, events, conditions and barriers from Python, and a lock whose
holder is killed."""

from __future__ import annotations

import os
import signal
import threading
import warnings

import pytest
import shoal
from conftest import joined, start


def hold_forever(lock, ready):
    lock.acquire()
    ready.set()
    signal.pause()


def test_lock_of_a_killed_holder_is_taken_with_a_warning(ctx):
    lock, ready = ctx.Lock(), ctx.Event()
    p = start(ctx, hold_forever, lock, ready)
    assert ready.wait(30)
    assert not lock.acquire(False)
    os.kill(p.pid, signal.SIGKILL)
    joined(p)
    with pytest.warns(shoal.OwnerDiedWarning):
        assert lock.acquire(timeout=30)
    lock.release()
    assert lock.acquire(False)  # usable as before
    lock.release()


def test_owner_died_can_raise(ctx):
    lock, ready = ctx.RLock(), ctx.Event()
    p = start(ctx, hold_forever, lock, ready)
    assert ready.wait(30)
    os.kill(p.pid, signal.SIGKILL)
    joined(p)
    shoal.set_owner_died_policy("raise")
    try:
        with pytest.raises(shoal.OwnerDiedError):
            lock.acquire(timeout=30)
        lock.release()  # it was taken
    finally:
        shoal.set_owner_died_policy("warn")


def add_under_lock(lock, value, n):
    for _ in range(n):
        with lock:
            value.value += 1


def test_lock_serializes_processes(ctx):
    lock = ctx.Lock()
    value = ctx.Value("i", 0, lock=False)
    ps = [start(ctx, add_under_lock, lock, value, 2000) for _ in range(3)]
    for p in ps:
        assert joined(p) == 0
    assert value.value == 6000


def test_lock_api():
    lock = shoal.Lock()
    assert lock.acquire()
    assert not lock.acquire(False)
    assert not lock.acquire(timeout=0.01)
    lock.release()
    with pytest.raises(ValueError):
        lock.release()
    r = shoal.RLock()
    assert r.acquire() and r.acquire()
    r.release()
    r.release()
    with pytest.raises(AssertionError):
        r.release()


def test_semaphores():
    s = shoal.Semaphore(2)
    assert s.acquire() and s.acquire(timeout=1)
    assert not s.acquire(False)
    assert s.get_value() == 0
    s.release()
    assert s.get_value() == 1
    b = shoal.BoundedSemaphore(1)
    assert b.acquire()
    b.release()
    with pytest.raises(ValueError):
        b.release()
    with pytest.raises(ValueError):
        shoal.Semaphore(-1)


def set_after(event):
    event.set()


def test_event_across_processes(ctx):
    e = ctx.Event()
    assert not e.is_set() and not e.wait(0.01)
    p = start(ctx, set_after, e)
    assert e.wait(30)
    assert joined(p) == 0
    e.clear()
    assert not e.is_set()


def notify_when_ready(cond, state):
    with cond:
        state.value = 1
        cond.notify_all()


def test_condition_across_processes(ctx):
    cond = ctx.Condition()
    state = ctx.Value("i", 0, lock=False)
    with cond:
        p = start(ctx, notify_when_ready, cond, state)
        assert cond.wait_for(lambda: state.value == 1, timeout=30)
    assert joined(p) == 0
    with pytest.raises(RuntimeError):
        cond.notify()
    with cond:
        assert not cond.wait(0.01)


def meet(barrier, out):
    out.put(barrier.wait(30))


def test_barrier_across_processes(ctx):
    barrier, out = ctx.Barrier(3), ctx.Queue()
    ps = [start(ctx, meet, barrier, out) for _ in range(2)]
    mine = barrier.wait(30)
    places = sorted([mine] + [out.get(timeout=30) for _ in range(2)])
    assert places == [0, 1, 2]
    for p in ps:
        assert joined(p) == 0
    assert barrier.parties == 3 and barrier.n_waiting == 0 and not barrier.broken
    barrier.abort()
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(1)
    barrier.reset()
    assert not barrier.broken


def test_barrier_action_runs_once():
    calls = []
    b = shoal.Barrier(2, action=lambda: calls.append(1))
    t = threading.Thread(target=b.wait, args=(10,))
    t.start()
    b.wait(10)
    t.join(10)
    assert calls == [1]


def test_no_warning_without_a_dead_holder():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lock = shoal.Lock()
        with lock:
            pass
