"""shoal.cluster.Pool and ``python -m shoal.worker`` against a real redis-server of the
test's own (a free loopback port, stopped afterwards). Worker hosts run in their own
sessions so that a test can SIGKILL one with its local workers."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import cluster_tasks
import pytest
import shoal
from shoal import cluster

KEY = b"python cluster test key, 32 byte"
TESTS = os.path.dirname(os.path.abspath(__file__))
WAIT = 60  # seconds, the bound of every wait on a result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A redis-server of the test's own, spoken to in RESP over a socket."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is missing: install Debian's redis-server "
                        "(scripts/test.sh installs it)")
        self.dir = tempfile.mkdtemp(prefix="shoal-py-redis-")
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.dir],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if self.cmd("PING") == "PONG":
                        return
                except OSError:
                    time.sleep(0.05)
            self.proc.kill()
            self.proc.wait(10)
        pytest.fail("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def cmd(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            out = [f"*{len(args)}\r\n".encode()]
            for a in args:
                b = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(b), b))
            s.sendall(b"".join(out))
            return _reply(s.makefile("rb"))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _reply(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line!r}")


@pytest.fixture
def redis():
    r = Redis()
    yield r
    r.stop()


class Host:
    """``python -m shoal.worker`` in a session of its own."""

    def __init__(self, redis: Redis, pool: str, name: str, processes: int = 2) -> None:
        env = dict(os.environ, SHOAL_CLUSTER_KEY=KEY.decode(), SHOAL_TEST_HOST=name,
                   PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoal.worker", "--redis", redis.url, "--pool", pool,
             "--processes", str(processes), "--lease-ms", "1000", "--grace-ms", "5000"],
            env=env, start_new_session=True)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


@pytest.fixture
def hosts():
    started: list = []
    yield started
    for h in started:
        h.stop()


def unique(name: str) -> str:
    return f"{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def wait_for(what: str, ready, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit} s waiting for {what}")
        time.sleep(0.05)


def serve(redis: Redis, hosts: list, pool: str, names: list) -> None:
    """Starts a worker host per name and waits until each has sent its heartbeat."""
    for n in names:
        hosts.append(Host(redis, pool, n))
    wait_for(f"{len(names)} worker hosts",
             lambda: redis.cmd("HLEN", f"shoal:{{{pool}}}:hosts") >= len(names))


def test_two_worker_hosts_serve_a_2000_task_map(redis, hosts):
    pool = unique("map")
    serve(redis, hosts, pool, ["a", "b"])
    with cluster.Pool(redis.url, pool, KEY) as p:
        out = p.map(cluster_tasks.tag, range(2000), timeout=120)
        assert [x for x, _ in out] == list(range(2000))
        served = {h for _, h in out}
        assert served == {"a", "b"}, f"hosts that served: {served}"
        # The other calls, on the same hosts.
        assert p.map(cluster_tasks.square, range(100), chunksize=7, timeout=WAIT) == \
            [x * x for x in range(100)]
        assert list(p.imap(cluster_tasks.square, range(50), timeout=WAIT)) == \
            [x * x for x in range(50)]
        assert p.starmap(cluster_tasks.add, [(1, 2), (3, 4)]) == [3, 7]
        assert p.apply_async(cluster_tasks.add, (2,), {"b": 5}).get(WAIT) == 7
        fut = p.submit(cluster_tasks.square, 12)
        assert isinstance(fut, cf.Future)
        assert fut.result(WAIT) == 144
        assert p.submit("math.sqrt", 16.0).result(WAIT) == 4.0
        assert p.stats()["completed"] >= 2000


def test_a_worker_host_sigkilled_mid_run_loses_no_task_and_answers_each_once(redis, hosts):
    pool = unique("kill")
    serve(redis, hosts, pool, ["doomed", "survivor"])
    n = 1000
    with cluster.Pool(redis.url, pool, KEY) as p:
        out = []
        for i, (x, h) in enumerate(p.imap(cluster_tasks.slow_tag, range(n), timeout=120)):
            out.append((x, h))
            if i == 100:
                hosts[0].kill()
        assert [x for x, _ in out] == list(range(n)), "a task was lost or answered twice"
        assert hosts[0].proc.poll() is not None
        assert {h for _, h in out[:100]} == {"doomed", "survivor"}
        after = {h for _, h in out[500:]}
        assert after == {"survivor"}, f"hosts that served well after the kill: {after}"
        # Tasks the dead host held ran again on the survivor; any result the dead host
        # stored before dying was dropped as a duplicate, never handed to the caller.
        assert p.stats()["completed"] == n


def test_a_mis_signed_task_is_dead_lettered_and_runs_nowhere(redis, hosts, tmp_path):
    pool = unique("signed")
    serve(redis, hosts, pool, ["a"])
    trace = tmp_path / "ran"
    with cluster.Pool(redis.url, pool, b"another key, also 32 bytes long!") as forger:
        forger.submit(cluster_tasks.touch, str(trace))
        # A message in the envelope's format with a made-up signature, one in the
        # format of earlier releases, and one unsigned.
        redis.cmd("XADD", f"shoal:{{{pool}}}:tasks:1", "*", "m",
                  b"SHC2\x01" + b"\x00" * 32 + b"\x80\x05anything")
        redis.cmd("XADD", f"shoal:{{{pool}}}:tasks:1", "*", "m",
                  b"SHC1\x01" + b"\x00" * 32 + b"\x80\x05anything")
        redis.cmd("XADD", f"shoal:{{{pool}}}:tasks:1", "*", "m", b"plain bytes")
        wait_for("four dead letters",
                 lambda: redis.cmd("XLEN", f"shoal:{{{pool}}}:dead") >= 4)
    dead = redis.cmd("XRANGE", f"shoal:{{{pool}}}:dead", "-", "+")
    reasons = sorted(dict(zip(e[1][::2], e[1][1::2]))[b"reason"].decode() for e in dead)
    assert reasons == ["the message is in shoal-cluster wire format 1, "
                       "this program reads format 2",
                       "the message is not a signed shoal envelope",
                       "the message's signature does not check",
                       "the message's signature does not check"], reasons
    with cluster.Pool(redis.url, pool, KEY) as p:
        # The host is still serving, and took the forged tasks before this one.
        assert p.apply(cluster_tasks.square, (7,)) == 49
    assert not trace.exists(), "a mis-signed task ran"
    assert redis.cmd("XLEN", f"shoal:{{{pool}}}:tasks:1") == 0


def test_a_task_exception_comes_back_as_itself_or_as_remote_error(redis, hosts):
    pool = unique("errors")
    serve(redis, hosts, pool, ["a"])
    with cluster.Pool(redis.url, pool, KEY) as p:
        with pytest.raises(cluster_tasks.Refused, match="not today") as e:
            p.apply(cluster_tasks.boom, ("not today",))
        assert "raise Refused(message)" in str(e.value.__cause__)
        with pytest.raises(cluster.RemoteError, match="_Unpicklable: kept") as e:
            p.submit(cluster_tasks.boom_unpicklable, "kept").result(WAIT)
        assert "boom_unpicklable" in e.value.traceback
        with pytest.raises(ImportError, match=r"no module of 'no_such_module\.f'"):
            p.submit("no_such_module.f").result(WAIT)
        # A failed item of a map fails the map, with the item's own exception.
        with pytest.raises(cluster_tasks.Refused):
            p.map(cluster_tasks.boom, ["x"] * 3, timeout=WAIT)
        with pytest.raises(TypeError, match=r"module-level"):
            p.submit(lambda: 1)
        # A local worker that dies fails its task with shoal.WorkerDied; the host goes on.
        with pytest.raises(shoal.WorkerDied):
            p.submit("os._exit", 3).result(WAIT)
        # The pool still serves after its failures.
        assert p.submit(cluster_tasks.square, 3).result(WAIT) == 9


def test_a_task_past_its_timeout_raises_timeout_error(redis, hosts):
    pool = unique("timeout")
    serve(redis, hosts, pool, ["a"])
    with cluster.Pool(redis.url, pool, KEY, task_timeout=0.2) as p:
        with pytest.raises(multiprocessing.TimeoutError):
            p.submit("time.sleep", 3).result(WAIT)


def test_redis_unreachable_is_a_connection_error_and_a_missing_key_a_value_error(monkeypatch):
    with pytest.raises(ConnectionError, match="could not connect to redis"):
        cluster.Pool(f"redis://127.0.0.1:{free_port()}", "nowhere", KEY)
    monkeypatch.delenv("SHOAL_CLUSTER_KEY", raising=False)
    with pytest.raises(ValueError, match="SHOAL_CLUSTER_KEY"):
        cluster.Pool(f"redis://127.0.0.1:{free_port()}", "nowhere")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        cluster.Pool(f"redis://127.0.0.1:{free_port()}", "nowhere", b"short")


def test_a_worker_host_stopped_as_soon_as_it_registers_leaves_cleanly(redis, hosts):
    # The stop handlers are in place before the host registers (and so before it can
    # take a task): a SIGTERM at that moment is a graceful stop, not a kill.
    pool = unique("early")
    hosts.append(Host(redis, pool, "a"))
    deadline = time.monotonic() + WAIT
    while redis.cmd("HLEN", f"shoal:{{{pool}}}:hosts") == 0:
        assert hosts[0].proc.poll() is None, "the host exited before it registered"
        assert time.monotonic() < deadline, "the host did not register"
        time.sleep(0.002)
    hosts[0].proc.send_signal(signal.SIGTERM)
    assert hosts[0].proc.wait(WAIT) == 0
    assert redis.cmd("HLEN", f"shoal:{{{pool}}}:hosts") == 0


def test_a_worker_host_stopped_with_sigterm_finishes_its_task_and_leaves(redis, hosts):
    pool = unique("term")
    serve(redis, hosts, pool, ["a"])
    with cluster.Pool(redis.url, pool, KEY) as p:
        fut = p.submit("time.sleep", 1.0)
        wait_for("the task to be held",
                 lambda: redis.cmd("XPENDING", f"shoal:{{{pool}}}:tasks:1", "hosts")[0] == 1)
        hosts[0].proc.send_signal(signal.SIGTERM)
        assert fut.result(WAIT) is None
        assert hosts[0].proc.wait(WAIT) == 0
    assert redis.cmd("HLEN", f"shoal:{{{pool}}}:hosts") == 0
