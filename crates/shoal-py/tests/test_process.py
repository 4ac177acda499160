"""Processes and contexts: the multiprocessing names and their behaviour."""

from __future__ import annotations

import os
import signal

import pytest
import shoal
from conftest import joined


class SquarerBody:
    def __init__(self, q, x):
        super().__init__()
        self.q, self.x = q, x

    def run(self):
        self.q.put((self.x * self.x, shoal.current_process().name, shoal.parent_process().pid))


class Squarer(SquarerBody, shoal.Process):
    """Starts with the default method."""


class ForkSquarer(SquarerBody, shoal.get_context("fork").Process):
    pass


class SpawnSquarer(SquarerBody, shoal.get_context("spawn").Process):
    pass


class ForkServerSquarer(SquarerBody, shoal.get_context("forkserver").Process):
    pass


SUBCLASSES = {"fork": ForkSquarer, "spawn": SpawnSquarer, "forkserver": ForkServerSquarer}


@pytest.mark.parametrize("cls", ["default", "context"])
def test_process_subclass(ctx, cls):
    q = ctx.Queue()
    p = Squarer(q, 7) if cls == "default" else SUBCLASSES[ctx.get_start_method()](q, 7)
    p.start()
    value, name, parent = q.get(timeout=30)
    assert (value, parent) == (49, os.getpid())
    assert name == p.name
    assert joined(p) == 0


def exit_with(code):
    raise SystemExit(code)


def test_exit_codes_terminate_kill_and_close(ctx):
    p = ctx.Process(target=exit_with, args=(3,))
    p.start()
    assert joined(p) == 3
    p.close()
    with pytest.raises(ValueError):
        p.is_alive()
    p = ctx.Process(target=signal.pause)
    p.start()
    assert p.is_alive() and p.pid > 0 and p.sentinel > 0
    p.terminate()
    assert joined(p) == -signal.SIGTERM
    p = ctx.Process(target=signal.pause, daemon=True)
    p.start()
    assert p.daemon and p in shoal.active_children()
    p.kill()
    assert joined(p) == -signal.SIGKILL
    assert p not in shoal.active_children()


def test_context_names():
    assert shoal.get_all_start_methods()[0] in ("fork", "spawn", "forkserver")
    assert set(shoal.get_all_start_methods()) == {"fork", "spawn", "forkserver"}
    for m in ("fork", "spawn", "forkserver"):
        assert shoal.get_context(m).get_start_method() == m
    with pytest.raises(ValueError):
        shoal.get_context("nope")
    assert shoal.cpu_count() >= 1
    assert shoal.current_process().name == "MainProcess"
    assert shoal.parent_process() is None
    assert isinstance(shoal.current_process().authkey, bytes)
    assert shoal.get_logger() is not None
