"""shoal's managers: remote managers over TCP with an auth key, nested proxies, user
types, the standard library's managers and clients on either side of the wire, a
server that dies under its proxies, and SharedMemoryManager."""

from __future__ import annotations

import multiprocessing
import multiprocessing.managers as std_managers
import os
import queue
import signal
import threading
import uuid

import pytest
import shoal
import shoal.managers
from conftest import joined, start
from shoal.managers import BaseManager, ManagerConnectionError, SharedMemoryManager, SyncManager

_jobs: queue.Queue = queue.Queue()


def get_jobs() -> queue.Queue:
    """The server's one queue (a global of the server process)."""
    return _jobs


class Counter:
    """A user type held by the manager."""

    def __init__(self, start: int = 0) -> None:
        self.n = start

    def incr(self, by: int = 1) -> int:
        self.n += by
        return self.n

    def value(self) -> int:
        return self.n

    def child(self) -> Counter:
        return Counter(self.n * 10)


class JobManager(BaseManager):
    pass


JobManager.register("get_jobs", callable=get_jobs)
JobManager.register("Counter", Counter, method_to_typeid={"child": "Returned"})
# What a method hands out as a proxy (the object itself: no callable).
JobManager.register("Returned", create_method=False)


class JobClient(BaseManager):
    """The client side of `JobManager`: the same names, no callables."""


JobClient.register("get_jobs")
JobClient.register("Counter", method_to_typeid={"child": "Returned"})
JobClient.register("Returned", create_method=False)


def remote_producer(address, authkey, items) -> None:
    m = JobClient(address=address, authkey=authkey)
    m.connect()
    jobs = m.get_jobs()
    for item in items:
        jobs.put(item)


def test_remote_manager_over_tcp_with_an_auth_key(ctx):
    authkey = uuid.uuid4().hex.encode()
    with JobManager(address=("127.0.0.1", 0), authkey=authkey, ctx=ctx) as server:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        p = start(ctx, remote_producer, server.address, authkey, ["a", "b", {"c": 3}])
        assert joined(p) == 0
        client = JobClient(address=server.address, authkey=authkey)
        client.connect()
        jobs = client.get_jobs()
        assert [jobs.get(timeout=30) for _ in range(3)] == ["a", "b", {"c": 3}]
        assert jobs.empty()


def serve_here(authkey, out) -> None:
    server = JobManager(address=("127.0.0.1", 0), authkey=authkey).get_server()
    out.put(server.address)
    server.serve_forever()


def test_get_server_and_serve_forever_in_a_process_of_its_own(ctx):
    authkey = uuid.uuid4().hex.encode()
    out = ctx.Queue()
    p = start(ctx, serve_here, authkey, out)
    try:
        address = out.get(timeout=60)
        client = JobClient(address=address, authkey=authkey)
        client.connect()
        c = client.Counter(1)
        assert c.incr(2) == 3
        client.get_jobs().put("x")
        assert client.get_jobs().get(timeout=30) == "x"
    finally:
        p.kill()
        joined(p)


def test_a_wrong_key_is_refused():
    with JobManager(address=("127.0.0.1", 0), authkey=b"right-" + uuid.uuid4().hex.encode()) as server:
        with pytest.raises(multiprocessing.AuthenticationError):
            JobClient(address=server.address, authkey=b"wrong").connect()
        # The server serves the right key still.
        client = JobClient(address=server.address, authkey=server._authkey)
        client.connect()
        assert client.get_jobs().qsize() == 0


def test_a_user_type_and_a_method_that_returns_a_proxy():
    with JobManager() as m:
        c = m.Counter(4)
        assert type(c).__name__ == "AutoProxy[Counter]"
        assert c.incr() == 5
        assert c.incr(by=5) == 10
        child = c.child()
        assert isinstance(child, shoal.managers.BaseProxy)
        assert child.value() == 100
        with pytest.raises(TypeError):
            c.incr("x")  # the server's exception, raised here
        assert m._number_of_objects() == 2


def append_through(d) -> None:
    d["inner"].append("child")
    d["count"] = len(d["inner"])


def test_nested_proxies(ctx):
    with ctx.Manager() as m:
        inner = m.list([1])
        d = m.dict()
        d["inner"] = inner
        d["inner"].append(2)
        assert inner[:] == [1, 2]
        p = start(ctx, append_through, d)
        assert joined(p) == 0
        assert inner[:] == [1, 2, "child"]
        assert d["count"] == 3
        outer = m.list([m.list([i]) for i in range(3)])
        assert [x[:] for x in outer] == [[0], [1], [2]]


def test_proxies_are_shoal_s_and_the_standard_library_s():
    with shoal.Manager() as m:
        d, lst, ns, q = m.dict(), m.list(), m.Namespace(a=1), m.Queue()
        assert isinstance(m, SyncManager) and isinstance(m, std_managers.SyncManager)
        assert isinstance(d, shoal.managers.DictProxy) and isinstance(d, std_managers.DictProxy)
        assert isinstance(lst, std_managers.ListProxy)
        d["k"] = "v"
        lst.extend([1, 2])
        ns.b = 2
        q.put(("x", 1))
        assert (dict(d), lst[:], ns.a + ns.b, q.get(timeout=30)) == ({"k": "v"}, [1, 2], 3, ("x", 1))
        with pytest.raises(KeyError):
            d["missing"]
        with pytest.raises(queue.Empty):
            q.get(timeout=0.01)


def test_shoal_client_and_a_standard_library_server():
    server = std_managers.SyncManager(authkey=b"std-" + uuid.uuid4().hex.encode())
    server.start()
    try:
        client = SyncManager(address=server.address, authkey=server._authkey)
        client.connect()
        d = client.dict({"a": 1})
        d["b"] = [2, 3]
        q = client.Queue()
        q.put("hello")
        assert (dict(d), q.get(timeout=30)) == ({"a": 1, "b": [2, 3]}, "hello")
        inner = client.list()
        d["inner"] = inner
        d["inner"].append("nested")
        assert inner[:] == ["nested"]
    finally:
        server.shutdown()


def test_standard_library_client_and_a_shoal_server():
    # The process's own key: the standard library's client rebuilds the proxy nested in
    # an answer with that one.
    with SyncManager() as server:
        client = std_managers.SyncManager(address=server.address)
        client.connect()
        d = client.dict()
        d["a"] = (1, "x")
        ns = client.Namespace(v=1)
        ns.v += 1
        lst = client.list([1])
        d["inner"] = lst
        d["inner"].append(2)
        assert (dict(d)["a"], ns.v, lst[:]) == ((1, "x"), 2, [1, 2])
        # The object is the server's: a shoal proxy sees the change too.
        ours = server.dict()
        ours["x"] = 1
        assert ours.copy() == {"x": 1}


def blocking_get(q, out: list) -> None:
    try:
        out.append(("returned", q.get()))
    except BaseException as e:  # noqa: BLE001 - reported to the test thread
        out.append(("raised", e))


def test_a_dead_server_fails_every_call_at_once(ctx):
    m = ctx.Manager()
    try:
        d = m.dict()
        q = m.Queue()
        d["a"] = 1
        assert q.qsize() == 0
        got: list = []
        waiter = threading.Thread(target=blocking_get, args=(q, got), daemon=True)
        waiter.start()
        os.kill(m._process.pid, signal.SIGKILL)
        m._process.join(30)
        assert m._process.exitcode == -signal.SIGKILL
        waiter.join(60)  # watchdog: a hang fails here instead of the run
        assert not waiter.is_alive(), "a blocking get on a dead manager did not return"
        assert len(got) == 1 and got[0][0] == "raised"
        err = got[0][1]
        assert isinstance(err, ManagerConnectionError)
        assert isinstance(err, EOFError) and isinstance(err, ConnectionError)
        assert repr(m.address) in str(err)
        for _ in range(2):  # the broken connection, then a refused new one
            with pytest.raises(ManagerConnectionError, match="cannot be reached"):
                d["a"]
        with pytest.raises(EOFError):
            len(d)
    finally:
        m.shutdown()


def call_into(d, out: list) -> None:
    try:
        out.append(("returned", d["a"]))
    except BaseException as e:  # noqa: BLE001 - reported to the test thread
        out.append(("raised", e))


def test_children_of_a_dead_server_do_not_keep_its_clients_waiting():
    # A pool served by the manager forks its workers from the server process: they
    # must not hold the server's sockets, or a dead server's streams stay open.
    m = shoal.get_context("fork").Manager()
    try:
        pool = m.Pool(1)
        worker = pool.apply(os.getpid)
        d = m.dict({"a": 1})
        assert d["a"] == 1
        os.kill(m._process.pid, signal.SIGKILL)
        m._process.join(30)
        got: list = []
        caller = threading.Thread(target=call_into, args=(d, got), daemon=True)
        caller.start()
        caller.join(60)  # watchdog: a hang fails here instead of the run
        assert not caller.is_alive(), "a call on a dead manager whose pool lives on did not return"
        assert got[0][0] == "raised" and isinstance(got[0][1], ManagerConnectionError), got
        # A new connection is refused, not left waiting in the dead server's backlog.
        with pytest.raises(ManagerConnectionError):
            len(d)
    finally:
        try:
            os.kill(worker, signal.SIGKILL)  # the orphaned pool worker
        except (ProcessLookupError, NameError):
            pass
        m.shutdown()


def read_shareable(name: str, out) -> None:
    sl = shoal.shared_memory.ShareableList(name=name)
    out.put(list(sl))
    sl.shm.close()


def test_shared_memory_manager_still_works(ctx):
    assert issubclass(SharedMemoryManager._Server, shoal.managers.Server)
    with SharedMemoryManager(ctx=ctx) as smm:
        sl = smm.ShareableList([1, "two", 3.0])
        shm = smm.SharedMemory(64)
        shm.buf[:3] = b"abc"
        out = ctx.Queue()
        p = start(ctx, read_shareable, sl.shm.name, out)
        assert out.get(timeout=60) == [1, "two", 3.0]
        assert joined(p) == 0
        names = [sl.shm.name, shm.name]
        sl.shm.close()
        shm.close()
    for name in names:
        with pytest.raises(FileNotFoundError):
            shoal.shared_memory.SharedMemory(name)
