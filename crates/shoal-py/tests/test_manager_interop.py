"""Rust and Python on one manager: a Rust `shoal::manager::Server` (the example
`crates/shoal/examples/manager_server`) used by the standard library's
`multiprocessing.managers` proxies and by a Rust client at once, and a standard-library
`SyncManager` server used by a Rust client. Only the standard library is used on the
Python side, so this runs under any interpreter."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import queue
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client as ConnectionClient
from multiprocessing.managers import AcquirerProxy, DictProxy, RemoteError, SyncManager, Token, dispatch
from typing import Any, Tuple

import pytest

WAIT = 60
KEY = b"interop manager key"


class RustManager(SyncManager):
    """The standard proxies, plus the Rust example's own type ids."""


RustManager.register("get_shared", proxytype=DictProxy)
RustManager.register("get_lock", proxytype=AcquirerProxy)
RustManager.register("Counter")


def read_address(proc: subprocess.Popen[str]) -> str:
    """The `ADDRESS host:port` line a server prints first."""
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert len(line) == 2 and line[0] == "ADDRESS", f"the server printed {line!r}"
    return line[1]


def as_tuple(address: str) -> Tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT)


@contextlib.contextmanager
def serving(cmd: list[str]) -> Iterator[Tuple[subprocess.Popen[str], str]]:
    """A server started with `cmd`, which prints its `ADDRESS host:port` first: the
    process and that address; killed at the end."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        yield proc, read_address(proc)
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)


@pytest.fixture()
def rust_server(manager_bin: str) -> Iterator[str]:
    """A Rust manager server on a free loopback port; its `host:port`."""
    with serving([manager_bin, "serve", KEY.decode()]) as (_, address):
        yield address


def connected(address: str, authkey: bytes = KEY) -> RustManager:
    m = RustManager(address=as_tuple(address), authkey=authkey)
    m.connect()
    return m


def test_python_proxies_use_every_standard_type_on_a_rust_server(rust_server: str) -> None:
    m = connected(rust_server)
    d: Any = m.dict({"a": 1})
    d["b"] = [1, "two", None, 3.5, b"\x00"]
    d.update(c={"nested": (1, 2)})
    assert d.keys() == ["a", "b", "c"]
    assert list(d) == ["a", "b", "c"]  # through the server's iterator proxy
    assert d["c"] == {"nested": (1, 2)}
    assert d.get("missing", 7) == 7 and "a" in d and len(d) == 3
    with pytest.raises(KeyError, match="missing"):
        d["missing"]
    assert str(d) == "{'a': 1, 'b': [1, 'two', None, 3.5, b'\\x00'], 'c': {'nested': (1, 2)}}"
    assert d.popitem() == ("c", {"nested": (1, 2)})

    lst: Any = m.list([3, 1, 2])
    lst.sort()
    lst += [4]
    assert lst[0:2] == [1, 2] and lst[-1] == 4 and len(lst) == 4
    lst[1:3] = ["x"]
    assert lst._getvalue() == [1, "x", 4]
    with pytest.raises(IndexError):
        lst[10]

    ns: Any = m.Namespace(x=1)
    ns.y = "why"
    assert (ns.x, ns.y) == (1, "why")
    with pytest.raises(AttributeError):
        ns.z  # noqa: B018

    q: Any = m.Queue()
    q.put({"job": 1})
    assert q.get(timeout=WAIT) == {"job": 1}
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get_nowait()

    lock: Any = m.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    with m.RLock():
        pass

    ev: Any = m.Event()
    assert ev.wait(0.01) is False
    ev.set()
    assert ev.wait(WAIT) is True

    v: Any = m.Value("i", 3)
    v.value = 4
    assert v.value == 4

    counter: Any = m.Counter()
    assert counter.increment() == 1
    assert counter.increment(by=5) == 6


def test_python_proxies_synchronise_threads_on_a_rust_server(rust_server: str) -> None:
    m = connected(rust_server)
    sem: Any = m.Semaphore(2)
    assert sem.acquire() and sem.acquire()
    assert sem.acquire(False) is False
    sem.release()
    sem.release()
    bounded: Any = m.BoundedSemaphore(1)
    with pytest.raises(ValueError, match="released too many times"):
        bounded.release()

    cond: Any = m.Condition()
    box: list[Any] = []

    def waiter() -> None:
        with cond:
            box.append(cond.wait_for(lambda: "go" in box, timeout=WAIT))

    t = threading.Thread(target=waiter)
    t.start()
    with cond:
        box.append("go")
        cond.notify_all()
    t.join(WAIT)
    assert box == ["go", True]
    with pytest.raises(RuntimeError, match="un-acquired lock"):
        cond.notify()

    barrier: Any = m.Barrier(3)
    places: list[int] = []
    threads = [threading.Thread(target=lambda: places.append(barrier.wait(WAIT))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(places) == [0, 1, 2] and barrier.parties == 3 and barrier.n_waiting == 0
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.05)
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken

    arr: Any = m.Array("i", [1, 2, 3])
    arr[0] = 9
    assert (len(arr), arr[0], arr[1:]) == (3, 9, [2, 3])


@dataclasses.dataclass
class Point:
    x: int


def test_a_rust_server_keeps_plain_data_and_refuses_python_objects(rust_server: str) -> None:
    m = connected(rust_server)
    d: Any = m.dict()
    for value in [{1, 2}, frozenset({3}), 2**100, -(2**70), 1.5e300, "\u00e9\u2603", ((1,),), {"k": {1: 2}}, None]:
        d["v"] = value
        assert d["v"] == value
    d["b"] = bytearray(b"xy")
    assert d["b"] == b"xy"
    d["z"] = 1
    assert list(d.copy()) == ["v", "b", "z"]  # insertion order, as a Python dict
    with pytest.raises(TypeError, match=r"plain data only.*Point"):
        d["p"] = Point(1)
    with pytest.raises(TypeError, match=r"plain data only.*RebuildProxy"):
        d["nested"] = m.list()
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        d[[1]] = 2
    with pytest.raises(RemoteError, match="Pool"):
        m.Pool()  # a type id the Rust server does not serve


def test_python_proxies_fail_once_the_rust_server_is_gone(manager_bin: str) -> None:
    with serving([manager_bin, "serve", KEY.decode()]) as (proc, address):
        d: Any = connected(address).dict()
        d["a"] = 1
        proc.kill()
        proc.wait(timeout=WAIT)
        with pytest.raises((EOFError, OSError)):
            d["a"]


def test_a_rust_client_and_python_proxies_share_a_dict_on_a_rust_server(rust_server: str, manager_bin: str) -> None:
    m = connected(rust_server)
    shared: Any = m.get_shared()
    shared["from_python"] = 41
    done = run([manager_bin, "client", rust_server, KEY.decode(), "get_shared"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == ["READ 41", "KEYERROR ok", "EMPTY ok", "ATTRIBUTEERROR ok"]
    assert shared["from_rust"] == 42
    assert shared["rust_list"] == ["a", 2.5, None]
    # A second Python client sees the same object.
    assert connected(rust_server).get_shared()["from_rust"] == 42


PYTHON_BUMP = """
    import sys
    from multiprocessing.managers import AcquirerProxy, DictProxy, SyncManager

    class Manager(SyncManager):
        pass

    Manager.register("get_shared", proxytype=DictProxy)
    Manager.register("get_lock", proxytype=AcquirerProxy)
    host, port = sys.argv[1].rsplit(":", 1)
    m = Manager(address=(host, int(port)), authkey=sys.argv[2].encode())
    m.connect()
    shared, lock = m.get_shared(), m.get_lock()
    for _ in range(int(sys.argv[3])):
        with lock:
            shared["n"] = shared.get("n", 0) + 1
"""


def test_python_and_rust_processes_update_one_dict_under_one_lock(
    rust_server: str, manager_bin: str, tmp_path: pathlib.Path
) -> None:
    script = tmp_path / "bump.py"
    script.write_text(textwrap.dedent(PYTHON_BUMP))
    rounds = "40"
    procs = [subprocess.Popen([sys.executable, str(script), rust_server, KEY.decode(), rounds]) for _ in range(2)]
    procs += [subprocess.Popen([manager_bin, "bump", rust_server, KEY.decode(), rounds]) for _ in range(2)]
    try:
        assert [p.wait(timeout=WAIT) for p in procs] == [0, 0, 0, 0]
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=WAIT)
    assert connected(rust_server).get_shared()["n"] == 160


def test_get_methods_takes_a_python_token(rust_server: str) -> None:
    m = connected(rust_server)
    d: Any = m.dict()
    conn = ConnectionClient(as_tuple(rust_server), authkey=KEY)
    try:
        exposed = dispatch(conn, None, "get_methods", (Token("dict", as_tuple(rust_server), d._token.id),))
    finally:
        conn.close()
    assert "setdefault" in exposed and "__getitem__" in exposed


def test_a_wrong_key_is_refused_by_a_rust_server(rust_server: str) -> None:
    with pytest.raises(AuthenticationError):
        connected(rust_server, authkey=b"wrong key")
    assert connected(rust_server).dict() is not None  # and it serves on


def test_a_python_shutdown_stops_a_rust_server(manager_bin: str) -> None:
    with serving([manager_bin, "serve", KEY.decode()]) as (proc, address):
        conn = ConnectionClient(as_tuple(address), authkey=KEY)
        assert dispatch(conn, None, "shutdown") is None
        conn.close()
        assert proc.wait(timeout=WAIT) == 0


PYTHON_SERVER = """
    import sys
    from multiprocessing.managers import DictProxy, SyncManager

    SHARED = {}

    def get_shared():
        return SHARED

    class Manager(SyncManager):
        pass

    Manager.register("get_shared", callable=get_shared, proxytype=DictProxy)
    server = Manager(address=("127.0.0.1", 0), authkey=sys.argv[1].encode()).get_server()
    print("ADDRESS %s:%d" % server.address, flush=True)
    server.serve_forever()
"""


@pytest.fixture()
def python_server(tmp_path: pathlib.Path) -> Iterator[str]:
    """A standard-library manager server with a shared dict under `get_shared`."""
    script = tmp_path / "python_server.py"
    script.write_text(textwrap.dedent(PYTHON_SERVER))
    with serving([sys.executable, str(script), KEY.decode()]) as (_, address):
        yield address


def test_a_rust_client_reads_and_writes_a_dict_on_a_python_server(python_server: str, manager_bin: str) -> None:
    m = connected(python_server)
    shared: Any = m.get_shared()
    shared["from_python"] = 99
    done = run([manager_bin, "client", python_server, KEY.decode(), "get_shared"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == ["READ 99", "KEYERROR ok", "EMPTY ok", "ATTRIBUTEERROR ok"]
    assert shared["from_rust"] == 100
    assert shared["rust_list"] == ["a", 2.5, None]


def test_a_wrong_key_from_rust_is_refused_by_a_python_server(python_server: str, manager_bin: str) -> None:
    done = run([manager_bin, "wrong-key", python_server])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "REFUSED"
