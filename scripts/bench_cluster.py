#!/usr/bin/env python3
"""Throughput of a trivial task through a cluster pool on one Redis, side by side:
shoal-cluster, Celery and RQ (PyPI `celery`, `rq`), and redis-benchmark's XADD rate as
the floor. Medians of RUNS runs, all measured in this run on a redis-server of its own.

    python3 scripts/bench_cluster.py [--runs 3] [--tasks 20000] [--python VENV_PYTHON]

shoal's side is the `squares` example of crates/shoal-cluster (built in release mode):
one worker host with PROCESSES local processes, and a submitter whose `map` batches
its submissions; and the same trivial Python function through `shoal.cluster.Pool.map`
on one `python -m shoal.worker` (the interpreter given by --shoal-python, which must
have the shoal package installed). Celery runs a prefork worker of PROCESSES processes with the Redis
broker and result backend; RQ runs PROCESSES workers (each forks per job, as RQ does by
default). The Python interpreter given by --python must have celery and rq installed.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/shoal-target"))
KEY = "bench cluster key, 32 bytes long"
# Tasks a worker host holds per local process: the same as Celery's prefetch multiplier
# below, so both read the broker in batches of the same size.
PREFETCH = 64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="shoal-bench-redis-")
        for _ in range(10):
            self.port = free_port()
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "yes", "--dir", self.dir],
                stdout=subprocess.DEVNULL)
            deadline = time.time() + 20
            while time.time() < deadline and self.proc.poll() is None:
                if self.cli("PING") == "PONG":
                    return
                time.sleep(0.05)
            self.proc.kill()
            self.proc.wait()
        raise SystemExit("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args],
                           capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def floor(redis, n):
    """redis-benchmark's XADD rate, pipelined 64 deep (one client)."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(redis.port), "-q", "-c", "1", "-P", "64", "-n", str(n),
         "XADD", "bench:floor", "*", "m", "x" * 64],
        capture_output=True, text=True, timeout=300).stdout
    m = re.search(r"([\d.]+) requests per second", out)
    redis.cli("DEL", "bench:floor")
    return float(m.group(1))


def shoal(redis, n, processes, run):
    exe = os.path.join(TARGET, "release", "examples", "squares")
    env = dict(os.environ, SHOAL_CLUSTER_KEY=KEY)
    pool = f"bench-{os.getpid()}-{run}"
    host = subprocess.Popen([exe, "--redis", redis.url, "--pool", pool,
                             "--processes", str(processes),
                             "--prefetch", str(PREFETCH * processes)], env=env)
    try:
        out = subprocess.run([exe, "submit", redis.url, pool, str(n)], env=env,
                             capture_output=True, text=True, timeout=600, check=True).stdout
        return float(re.search(r"\(([\d.]+) tasks/s\)", out).group(1))
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=60)


CELERY_APP = """
from celery import Celery
app = Celery("bench_tasks", broker="{url}/1", backend="{url}/2")
app.conf.worker_prefetch_multiplier = 64
@app.task
def square(x):
    return x * x
"""

CELERY_SUBMIT = """
import sys, time
from celery import group
from bench_tasks import square
n = int(sys.argv[1])
square.delay(0).get(timeout=60)  # the worker is up
t = time.perf_counter()
r = group(square.s(i) for i in range(n)).apply_async()
out = r.get(timeout=600)
dt = time.perf_counter() - t
assert out == [i * i for i in range(n)]
print(n / dt)
"""

RQ_TASKS = """
def square(x):
    return x * x
"""

RQ_SUBMIT = """
import sys, time
from redis import Redis
from rq import Queue
from rq_tasks import square
n = int(sys.argv[2])
q = Queue("bench", connection=Redis.from_url(sys.argv[1]))
t = time.perf_counter()
jobs = q.enqueue_many([Queue.prepare_data(square, (i,)) for i in range(n)])
deadline = time.time() + 600
pending = list(jobs)
while pending and time.time() < deadline:
    pending = [j for j in pending if j.get_status(refresh=True) != "finished"]
    time.sleep(0.05)
dt = time.perf_counter() - t
assert not pending and [j.return_value() for j in jobs] == [i * i for i in range(n)]
print(n / dt)
"""


SHOAL_PY_SUBMIT = """
import sys, time
from shoal import cluster
from rq_tasks import square
n = int(sys.argv[3])
with cluster.Pool(sys.argv[1], sys.argv[2]) as pool:
    pool.apply(square, (0,))  # a host is up
    t = time.perf_counter()
    out = pool.map(square, range(n), timeout=600)
    dt = time.perf_counter() - t
assert out == [i * i for i in range(n)]
print(n / dt)
"""


def shoal_python(py, redis, n, processes, run, workdir):
    """shoal.cluster.Pool.map of a Python function on one `python -m shoal.worker`."""
    env = dict(os.environ, PYTHONPATH=workdir, SHOAL_CLUSTER_KEY=KEY)
    pool = f"bench-py-{os.getpid()}-{run}"
    host = subprocess.Popen([py, "-m", "shoal.worker", "--redis", redis.url, "--pool", pool,
                             "--processes", str(processes),
                             "--prefetch", str(PREFETCH * processes)],
                            cwd=workdir, env=env)
    try:
        out = subprocess.run([py, "-c", SHOAL_PY_SUBMIT, redis.url, pool, str(n)], cwd=workdir,
                             env=env, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"shoal.cluster run failed: {out.stderr[-2000:]}")
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=60)


def python_side(py, redis, n, processes, which, workdir):
    env = dict(os.environ, PYTHONPATH=workdir)
    if which == "celery":
        worker = subprocess.Popen(
            [py, "-m", "celery", "-A", "bench_tasks", "worker", "-c", str(processes),
             "--pool", "prefork", "--loglevel", "WARNING", "--without-gossip",
             "--without-mingle", "--without-heartbeat"],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers = [worker]
        cmd = [py, "-c", CELERY_SUBMIT, str(n)]
    else:
        rq = os.path.join(os.path.dirname(py), "rq")
        workers = [subprocess.Popen([rq, "worker", "--url", redis.url, "-q", "bench"],
                                    cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
                   for _ in range(processes)]
        cmd = [py, "-c", RQ_SUBMIT, redis.url, str(n)]
    try:
        out = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"{which} run failed: {out.stderr[-2000:]}")
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
        redis.cli("FLUSHALL")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=100000, help="tasks per shoal run")
    ap.add_argument("--python-tasks", type=int, default=2000, help="tasks per Celery/RQ run")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--python", default=sys.executable,
                    help="a Python with celery and rq installed")
    ap.add_argument("--shoal-python", default=sys.executable,
                    help="a Python with the shoal package installed (for the Python host)")
    ap.add_argument("--shoal-python-tasks", type=int, default=20000,
                    help="tasks per shoal.cluster (Python) run")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "shoal-cluster",
                    "--example", "squares"], cwd=ROOT, check=True)
    load_before = os.getloadavg()
    workdir = tempfile.mkdtemp(prefix="shoal-bench-py-")
    redis = Redis()
    try:
        with open(os.path.join(workdir, "bench_tasks.py"), "w") as f:
            f.write(textwrap.dedent(CELERY_APP.format(url=redis.url)))
        with open(os.path.join(workdir, "rq_tasks.py"), "w") as f:
            f.write(RQ_TASKS)
        have_py = subprocess.run([args.python, "-c", "import celery, rq"],
                                 capture_output=True).returncode == 0
        rows = {}
        rows["redis-benchmark XADD (floor)"] = [floor(redis, 200000) for _ in range(args.runs)]
        rows["shoal-cluster map"] = [shoal(redis, args.tasks, args.processes, r)
                                     for r in range(args.runs)]
        if subprocess.run([args.shoal_python, "-c", "import shoal.cluster"],
                          capture_output=True).returncode == 0:
            rows["shoal.cluster map (Python host)"] = [
                shoal_python(args.shoal_python, redis, args.shoal_python_tasks,
                             args.processes, r, workdir) for r in range(args.runs)]
        else:
            print(f"shoal.cluster: skipped, {args.shoal_python} lacks the shoal package",
                  file=sys.stderr)
        for which in ("celery", "rq"):
            if not have_py:
                print(f"{which}: skipped, {args.python} lacks celery or rq "
                      "(pip install celery rq redis)", file=sys.stderr)
                continue
            rows[which] = [python_side(args.python, redis, args.python_tasks,
                                       args.processes, which, workdir)
                           for _ in range(args.runs)]
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    shoal_rate = med["shoal-cluster map"]
    load = " / ".join(f"{x:.1f}" for x in load_before + os.getloadavg())
    print(f"trivial task, {args.processes} processes, medians of {args.runs} runs; "
          f"load averages (1, 5, 15 min) before / after: {load}")
    print(f"{'system':32} {'tasks/s':>10} {'µs/task':>9} {'shoal ×':>8}  runs")
    for k, v in med.items():
        runs = " / ".join(f"{x:.0f}" for x in rows[k])
        print(f"{k:32} {v:10.0f} {1e6 / v:9.1f} {shoal_rate / v:8.2f}  {runs}")


if __name__ == "__main__":
    main()
