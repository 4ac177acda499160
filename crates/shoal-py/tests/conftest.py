"""Shared fixtures: a watchdog for every test, one context per start method, a
reaper that kills whatever child a failed test left behind, and the Rust side of the
interop tests."""

from __future__ import annotations

import faulthandler
import os
import pathlib
import subprocess
import sys

import pytest
import shoal

# Longest any single test may run before the whole run is stopped with tracebacks
# (a hang fails CI instead of stalling it).
WATCHDOG_SECONDS = 180

METHODS = ["fork", "spawn", "forkserver"]


@pytest.fixture(autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()
    for child in shoal.active_children():
        child.kill()
        child.join(10)


REPO = pathlib.Path(__file__).resolve().parents[3]


def rust_example(name: str) -> str:
    """The path of shoal's Rust example `name` (`crates/shoal/examples`), built if it is
    not there."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    built = subprocess.run(
        ["cargo", "build", "-q", "-p", "shoal", "--example", name],
        cwd=REPO, env={**os.environ, "CARGO_TARGET_DIR": str(target)}, timeout=1200,
        capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stderr
    return str(target / "debug" / "examples" / name)


@pytest.fixture(scope="session")
def interop_bin() -> str:
    """The Rust side of the interop tests (`crates/shoal/examples/interop`)."""
    return rust_example("interop")


@pytest.fixture(scope="session")
def manager_bin() -> str:
    """The Rust side of the manager interop tests (`crates/shoal/examples/manager_server`)."""
    return rust_example("manager_server")


@pytest.fixture(params=METHODS)
def ctx(request):
    """A shoal context for each start method."""
    return shoal.get_context(request.param)


def start(ctx, target, *args, daemon=True):
    """Start `target(*args)` in a child of `ctx`."""
    p = ctx.Process(target=target, args=args, daemon=daemon)
    p.start()
    return p


def joined(p, timeout=60):
    """Join `p` (failing the test if it does not end) and return its exit code."""
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join(10)
        pytest.fail(f"child {p.pid} did not end within {timeout} s")
    return p.exitcode
