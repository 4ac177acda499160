"""Runs CPython's own multiprocessing tests against shoal, beside the standard library.

The local Python's ``Lib/test/_test_multiprocessing.py`` is copied to a temporary
directory with the module name ``multiprocessing`` replaced by ``shoal`` in its code
(import lines, module references, module paths given as strings, and the programs it
runs in subprocesses; never in expected messages), then installed into one test module
per start method with its own ``install_tests_in_module_dict``, as CPython's
``test_multiprocessing_{fork,spawn,forkserver}`` do. The unmodified module runs the same
way as the baseline. Each (implementation, start method) pair runs in its own process
group under a watchdog: a test that hangs is killed, counted as an error, and the run
goes on from the next test.

The printout gives, per test class and start method, passed / failed / errors / skipped
for the standard library and for shoal. The exit status is 1 when a class that must
match (process- and thread-based classes other than the Pool ones, and the Manager
classes) passes fewer tests with shoal than with the standard library under some start method.

This file is a script, not a pytest module::

    python crates/shoal-py/tests/cpython_suite.py             # every start method
    python crates/shoal-py/tests/cpython_suite.py --methods fork -k Queue -v
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tokenize

METHODS = ("fork", "spawn", "forkserver")
IMPLS = ("stdlib", "shoal")
BASE_MODULE = {"stdlib": "test._test_multiprocessing", "shoal": "shoal_test_multiprocessing"}
OUTCOMES = ("passed", "failed", "errors", "skipped")

# Tests that fail with shoal by design, with the reason: they still run and count as
# they come out; the printout names them with their reason, and a class that must match
# may pass fewer tests than with the standard library by these only.
KNOWN_DIFFERENCES: dict[str, str] = {
    "TestQueue.test_queue_feeder_donot_stop_onexc":
        "shoal pickles in `put`, so an object that cannot be pickled raises there (not later "
        "in the feeder thread, which the test expects to report it and go on)",
    "TestSharedMemory.test_shared_memory_cleaned_after_process_termination":
        "expects the resource tracker to unlink the segment of a terminated creator and warn "
        "about it; shoal segments have no tracker: a dead owner's segment goes with `shoal gc`",
    "TestSimpleQueue.test_closed":
        "reads `_reader` and `_writer`, the pipes inside the standard library's SimpleQueue; "
        "shoal's is one ring",
    "TestResourceTracker.test_resource_tracker":
        "expects the resource tracker's warning about leaked semaphores and segments; shoal's "
        "are memfds and named segments that do not use the tracker",
    "TestResourceTracker.test_resource_tracker_sigkill":
        "expects the resource tracker's warning when its process was killed; shoal's "
        "semaphores do not use the tracker",
    "TestStartMethod.test_mixed_startmethod":
        "expects a Queue made in a fork context to be refused by spawn and forkserver "
        "children; shoal's queues travel to children of every start method",
}


# Known differences that wait for what never comes with shoal until the test's own
# timeout (minutes): the watchdog stops them sooner (seconds), as it stops a hung test.
WATCHDOG_OVERRIDES: dict[str, float] = {
    "TestSharedMemory.test_shared_memory_cleaned_after_process_termination": 30.0,
}


def _base(cls: str) -> str:
    """A test class's name without the prefix `install_tests_in_module_dict` gives it."""
    for prefix in ("WithProcesses", "WithThreads", "WithManager"):
        if cls.startswith(prefix):
            return cls[len(prefix):]
    return cls


def known_difference(cls: str, test: str) -> str:
    return KNOWN_DIFFERENCES.get(f"{_base(cls)}.{test}", "")


# -- the temporary copy ------------------------------------------------------------

_CODE_IN_STRING = re.compile(r"^\s*(import multiprocessing|from multiprocessing)", re.MULTILINE)
_MODULE_PATH = re.compile(r"^multiprocessing(\.\w+)*\.?$")


def _rewrite_code_string(body: str) -> str:
    """A program given as a string (run by a subprocess): its imports and module
    references, as in code."""
    body = re.sub(r"\bimport multiprocessing\b", "import shoal", body)
    body = re.sub(r"\bfrom multiprocessing\b", "from shoal", body)
    return re.sub(r"(?<![\w.\"'])multiprocessing\.(?=\w)", "shoal.", body)


def rewrite_for_shoal(source: str) -> str:
    """CPython's test module with ``multiprocessing`` replaced by ``shoal`` wherever
    it names the module, and nowhere else."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    previous: tokenize.TokenInfo | None = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        begin = starts[tok.start[0] - 1] + tok.start[1]
        end = starts[tok.end[0] - 1] + tok.end[1]
        text = tok.string
        new = text
        if tok.type == tokenize.NAME and text == "multiprocessing":
            # `x.multiprocessing` would be some other object's attribute.
            if not (previous is not None and previous.type == tokenize.OP and previous.string == "."):
                new = "shoal"
        elif tok.type == tokenize.STRING:
            prefix = re.match(r"^[A-Za-z]*", text).group(0).lower()
            quote = text[len(prefix):len(prefix) + 3]
            quote = quote if quote in ('"""', "'''") else text[len(prefix)]
            body = text[len(prefix) + len(quote):len(text) - len(quote)]
            if _CODE_IN_STRING.search(body):
                body = _rewrite_code_string(body)
            elif _MODULE_PATH.match(body):
                # A module path (`mock.patch` targets, `__import__` names).
                body = "shoal" + body[len("multiprocessing"):]
            elif "f" in prefix:
                body = body.replace("{multiprocessing.", "{shoal.")
            # The program `TestFlags` runs imports the test module by its name.
            body = body.replace("from test._test_multiprocessing import", f"from {BASE_MODULE['shoal']} import")
            new = text[:len(prefix) + len(quote)] + body + quote
        if new != text:
            edits.append((begin, end, new))
        if tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            previous = tok
    out = source
    for begin, end, new in reversed(edits):
        out = out[:begin] + new + out[end:]
    return out


def cpython_test_file() -> str:
    import test

    path = os.path.join(os.path.dirname(test.__file__), "_test_multiprocessing.py")
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: this Python was installed without its test suite")
    return path


# -- the process that runs the tests -------------------------------------------------

# Run as `python -m <this module> RESULTS_FD BASE METHOD IDS_FILE|--list`: installs the
# base module's tests for METHOD in this module (so a spawned child finds the test
# classes in `__main__`, as under CPython's own runner) and runs the ids listed in
# IDS_FILE, reporting each test's start and outcome as a JSON line on RESULTS_FD.
DRIVER = r'''
import json, os, sys, time, unittest

RESULTS_FD = int(sys.argv[1])
BASE = sys.argv[2]
METHOD = sys.argv[3]
IDS_FILE = sys.argv[4]

import importlib
base = importlib.import_module(BASE)
base.install_tests_in_module_dict(globals(), METHOD)


def emit(**event):
    os.write(RESULTS_FD, (json.dumps(event) + "\n").encode())


def where(test):
    # Class and module fixtures are reported on an `_ErrorHolder` whose description
    # is "setUpClass (module.Class)".
    if isinstance(test, unittest.TestCase):
        return type(test).__name__, test._testMethodName
    desc = str(test)
    return desc.split("(")[-1].rstrip(")").split(".")[-1], desc.split(" ")[0]


class Recorder(unittest.TestResult):
    def startTest(self, test):
        super().startTest(test)
        cls, name = where(test)
        emit(event="start", cls=cls, test=name)

    def _out(self, test, outcome, detail=""):
        cls, name = where(test)
        emit(event="end", cls=cls, test=name, outcome=outcome, detail=detail[-4000:])

    def addSuccess(self, test):
        super().addSuccess(test)
        self._out(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._out(test, "failed", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._out(test, "errors", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._out(test, "skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._out(test, "passed", "expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._out(test, "failed", "unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "failed" if issubclass(err[0], test.failureException) else "errors"
            self._out(test, kind, f"{subtest}: " + self._exc_info_to_string(err, test))


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


if __name__ == "__main__":
    tests = list(flatten(unittest.TestLoader().loadTestsFromModule(sys.modules["__main__"])))
    if IDS_FILE == "--list":
        emit(event="list", tests=[t.id() for t in tests])
        sys.exit(0)
    with open(IDS_FILE) as f:
        wanted = set(json.load(f))
    result = Recorder()
    unittest.TestSuite([t for t in tests if t.id() in wanted]).run(result)
    emit(event="finished")
'''


def _driver_module(directory: str, impl: str, method: str) -> str:
    module = f"mp_suite_{impl}_{method}"
    with open(os.path.join(directory, module + ".py"), "w") as f:
        f.write(DRIVER)
    return module


def _prepare_dir(directory: str, impl: str, source: str, shoal_dir: str | None) -> None:
    os.makedirs(directory)
    if impl == "shoal":
        with open(os.path.join(directory, BASE_MODULE["shoal"] + ".py"), "w", encoding="utf-8") as f:
            f.write(rewrite_for_shoal(source))
        # The scripts some tests run, found beside the test module.
        test_dir = os.path.dirname(cpython_test_file())
        for name in sorted(os.listdir(test_dir)):
            if name.startswith("mp_") and name.endswith(".py"):
                with open(os.path.join(test_dir, name), encoding="utf-8") as f:
                    script = rewrite_for_shoal(f.read())
                with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                    f.write(script)
        # `TestFlags` starts `python -E -S -c ...`, which finds the test module and shoal
        # in the current directory only.
        assert shoal_dir is not None
        os.symlink(shoal_dir, os.path.join(directory, "shoal"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def list_tests(python: str, directory: str, impl: str, method: str) -> list[str]:
    """Every test id the module installs for `method`."""
    module = _driver_module(directory, impl, method)
    r, w = os.pipe()
    proc = subprocess.Popen([python, "-m", module, str(w), BASE_MODULE[impl], method, "--list"],
                            cwd=directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, pass_fds=(w,), env=_env())
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, err = proc.communicate()
    if proc.returncode != 0 or not data:
        raise SystemExit(f"could not load the {impl} tests for {method}:\n{err.decode(errors='replace')}")
    return json.loads(data)["tests"]


class Run:
    """Some tests of one (implementation, start method) pair, run in a process group of
    their own; a test that hangs or kills its process is counted as an error, and the
    rest go on in a new process."""

    def __init__(self, impl: str, method: str, directory: str, python: str, ids: list[str],
                 test_timeout: float, run_timeout: float) -> None:
        self.impl, self.method, self.dir = impl, method, directory
        self.python = python
        self.ids = ids
        self.test_timeout = test_timeout
        self.run_timeout = run_timeout
        self.results: dict[str, dict[str, tuple[str, str]]] = collections.defaultdict(dict)
        self.durations: dict[str, float] = {}
        self.done: set = set()
        self.proc: subprocess.Popen | None = None
        self.started = self.deadline = 0.0
        self.elapsed = self.cpu = 0.0
        self.finished = False
        self.complete = False
        self.problem = ""
        self.buffer = b""
        self.current: tuple[str, str, float] | None = None
        self.module = _driver_module(directory, impl, method)
        self.log_path = os.path.join(self.dir, "log.txt")

    def start(self) -> None:
        if not self.started:
            self.started = time.monotonic()
            self.deadline = self.started + self.run_timeout
        ids_file = os.path.join(self.dir, "ids.json")
        with open(ids_file, "w") as f:
            json.dump([i for i in self.ids if i not in self.done], f)
        r, w = os.pipe()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-m", self.module, str(w), BASE_MODULE[self.impl], self.method, ids_file],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(w,), start_new_session=True, env=_env(),
            )
        os.close(w)
        self.read_fd = r
        os.set_blocking(r, False)
        self.current = None
        self.complete = False
        self.done_at_start = len(self.done)
        self.last_event = time.monotonic()

    def _events(self) -> list[dict]:
        try:
            while True:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    break
                self.buffer += chunk
        except BlockingIOError:
            pass
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def _record(self, cls: str, test: str, outcome: str, detail: str) -> None:
        old = self.results[cls].get(test)
        # A test with failing subtests reports them before its own outcome.
        if old is not None and old[0] in ("failed", "errors") and outcome == "passed":
            return
        self.results[cls][test] = (outcome, detail)
        self.done.add(f"__main__.{cls}.{test}")

    def _handle(self, ev: dict) -> None:
        self.last_event = time.monotonic()
        if ev["event"] == "start":
            self.current = (ev["cls"], ev["test"], time.monotonic())
        elif ev["event"] == "end":
            if self.current is not None:
                key = f"{ev['cls']}.{ev['test']}"
                self.durations[key] = time.monotonic() - self.current[2]
            self._record(ev["cls"], ev["test"], ev["outcome"], ev["detail"])
            self.current = None
        elif ev["event"] == "finished":
            self.complete = True

    def _wait(self) -> int | None:
        """The exit status once the process ended (its CPU time and its waited-for
        children's are added up)."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return self.proc.returncode
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return None
        self.cpu += usage.ru_utime + usage.ru_stime
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode

    def poll(self) -> bool:
        """Handle what the run reported; True while it goes on."""
        if self.finished:
            return False
        for ev in self._events():
            self._handle(ev)
        code = self._wait()
        now = time.monotonic()
        # A test, or a fixture between tests (class and module set-up and tear-down,
        # the interpreter's exit), that reports nothing for that long is hung.
        limit = self.test_timeout
        if self.current is not None:
            limit = WATCHDOG_OVERRIDES.get(f"{_base(self.current[0])}.{self.current[1]}", limit)
        hung = now - self.last_event > limit
        if code is None and not hung and now < self.deadline:
            return True
        if code is None:
            self._kill()
        for ev in self._events():
            self._handle(ev)
        os.close(self.read_fd)
        if self.current is not None:
            cls, test, began = self.current
            why = (f"hung: killed after {now - began:.0f} s" if code is None and hung
                   else "the run's time limit was reached" if code is None
                   else f"the test process exited with status {code} during the test")
            self._record(cls, test, "errors", why)
        if not self.complete and now < self.deadline and len(self.done) > self.done_at_start:
            self.start()  # the tests not run yet, in a new process
            return True
        if not self.complete and not (code is None and hung and len(self.done) == len(self.ids)):
            self.problem = f"the tests stopped before their end (status {code}):\n{self.log_tail()}"
        elif not self.complete:
            self.problem = ("every test ran, then the process hung on its way out (killed): "
                            f"\n{self.log_tail()}")
        self.finished = True
        self.elapsed = now - self.started
        return False

    def log_tail(self, lines: int = 30) -> str:
        with open(self.log_path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])

    def _kill(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while self._wait() is None:
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None and self._wait() is None:
            self._kill()


def shard(ids: list[str], durations: dict[str, float], n: int) -> list[list[str]]:
    """`ids` in `n` groups of whole test classes (their fixtures run once), balanced by
    the durations of an earlier run (a second per test not seen before)."""
    classes: dict[str, list[str]] = collections.OrderedDict()
    for i in ids:
        classes.setdefault(i.split(".")[1], []).append(i)
    cost = {c: sum(durations.get(i.split(".", 1)[1], 1.0) for i in t) for c, t in classes.items()}
    groups: list[tuple[float, int, list[str]]] = [(0.0, k, []) for k in range(n)]
    for c in sorted(classes, key=lambda c: -cost[c]):
        total, k, members = min(groups)
        members.extend(classes[c])
        groups[groups.index((total, k, members))] = (total + cost[c], k, members)
    return [sorted(members, key=ids.index) for _, _, members in sorted(groups, key=lambda g: g[1]) if members]


class Outcome:
    """Every test's outcome for one (implementation, start method) pair."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, tuple[str, str]]] = collections.defaultdict(dict)
        self.durations: dict[str, float] = {}
        self.elapsed = self.cpu = 0.0
        self.problems: list[str] = []
        self.cached = ""

    def add(self, run: Run) -> None:
        for cls, tests in run.results.items():
            self.results[cls].update(tests)
        self.durations.update(run.durations)
        self.elapsed = max(self.elapsed, run.elapsed)
        self.cpu += run.cpu
        if run.problem:
            self.problems.append(run.problem)

    def to_json(self) -> dict:
        return {"results": self.results, "durations": self.durations, "elapsed": self.elapsed,
                "cpu": self.cpu, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}

    @classmethod
    def from_json(cls, data: dict) -> Outcome:
        o = cls()
        for c, tests in data["results"].items():
            o.results[c] = {t: tuple(v) for t, v in tests.items()}  # type: ignore[misc]
        o.durations = data["durations"]
        o.elapsed, o.cpu = data["elapsed"], data["cpu"]
        o.cached = data["date"]
        return o


# -- the report ----------------------------------------------------------------------

def must_match(cls: str) -> bool:
    """Process- and thread-based classes other than the Pool ones, and the Manager
    classes (shoal's managers, with the standard library's pool inside them)."""
    if cls.startswith("WithManager") or cls == "TestSyncManagerTypes":
        return True
    if not (cls.startswith(("WithProcesses", "WithThreads"))):
        return False
    return "Pool" not in cls


def counts(tests: dict[str, tuple[str, str]]) -> dict[str, int]:
    c = dict.fromkeys(OUTCOMES, 0)
    for outcome, _ in tests.values():
        c[outcome] += 1
    return c


def cell(c: dict[str, int] | None) -> str:
    if c is None:
        return "-"
    return f"{c['passed']}/{c['failed'] + c['errors']}/{c['skipped']}"


def report(outcomes: dict[tuple[str, str], Outcome], methods: list[str], impls: list[str],
           markdown: bool, verbose: bool) -> int:
    classes = sorted({cls for o in outcomes.values() for cls in o.results})
    header = ["class", "must match"] + [f"{impl} {m}" for m in methods for impl in impls]
    rows = []
    shortfalls = []
    for cls in classes:
        row = [cls, "yes" if must_match(cls) else "no"]
        for m in methods:
            per = {}
            for impl in impls:
                tests = outcomes[(impl, m)].results.get(cls)
                per[impl] = counts(tests) if tests is not None else None
                row.append(cell(per[impl]))
            if len(per) == 2 and must_match(cls):
                std, sh = per["stdlib"] or counts({}), per["shoal"] or counts({})
                std_tests = outcomes[("stdlib", m)].results.get(cls, {})
                sh_tests = outcomes[("shoal", m)].results.get(cls, {})
                explained = sum(1 for t, (o, _) in std_tests.items()
                                if o == "passed" and known_difference(cls, t)
                                and sh_tests.get(t, ("absent", ""))[0] != "passed")
                if sh["passed"] + explained < std["passed"]:
                    shortfalls.append((cls, m, std["passed"], sh["passed"]))
        rows.append(row)
    totals = ["total", ""]
    for m in methods:
        for impl in impls:
            c = dict.fromkeys(OUTCOMES, 0)
            for tests in outcomes[(impl, m)].results.values():
                for k, v in counts(tests).items():
                    c[k] += v
            totals.append(cell(c))
    rows.append(totals)
    print("passed/failed+errors/skipped, per test class and start method")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(f"`{x}`" if i == 0 and x != "total" else x for i, x in enumerate(row)) + " |")
    else:
        widths = [max(len(str(r[i])) for r in [*rows, header]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    # Why tests are skipped: the suite's own reasons, grouped.
    skips: dict[tuple[str, str, str], set] = collections.defaultdict(set)
    for (impl, m), o in outcomes.items():
        for cls, tests in o.results.items():
            for test, (outcome, detail) in tests.items():
                if outcome == "skipped":
                    skips[(cls, detail.strip().splitlines()[0][:120] if detail else "", impl)].add((test, m))
    print("\nskipped tests, by class and reason (`[methods]`, per implementation when they differ):")
    for cls, reason in sorted({(c, r) for c, r, _ in skips}):
        per = {impl: skips.get((cls, reason, impl), set()) for impl in impls}
        same = len({frozenset(v) for v in per.values()}) == 1
        for impl in (impls[:1] if same else impls):
            got = per[impl]
            if not got:
                continue
            names = sorted({t for t, _ in got})
            ms = [m for m in methods if any(mm == m for _, mm in got)]
            who = "" if same else f" ({impl} only)"
            prefix = "- " if markdown else "  "
            print(f"{prefix}{cls}: {len(names)} test{'s' * (len(names) != 1)} [{','.join(ms)}]{who}: {reason}")
    if len(impls) == 2:
        print("\ntests whose outcome differs (stdlib -> shoal):")
        for m in methods:
            std_o, sh_o = outcomes[("stdlib", m)], outcomes[("shoal", m)]
            for cls in classes:
                std_tests = std_o.results.get(cls, {})
                sh_tests = sh_o.results.get(cls, {})
                for test in sorted(set(std_tests) | set(sh_tests)):
                    a = std_tests.get(test, ("absent", ""))
                    b = sh_tests.get(test, ("absent", ""))
                    if a[0] == b[0]:
                        continue
                    key = f"{cls}.{test}"
                    line = f"  [{m}] {key}: {a[0]} -> {b[0]}"
                    if b[0] == "skipped":
                        line += f" ({b[1]})"
                    why = known_difference(cls, test)
                    if why:
                        line += f": {why}"
                    print(line)
                    if verbose and b[0] in ("failed", "errors"):
                        print("      " + b[1].strip().replace("\n", "\n      "))
    print()
    status = 0
    for (impl, m), o in sorted(outcomes.items()):
        when = f" (cached, from {o.cached})" if o.cached else ""
        print(f"{impl} {m}: {o.elapsed:.0f} s, {o.cpu:.0f} s of CPU{when}")
        for problem in o.problems:
            print(f"  {problem}")
            status = 1
    if shortfalls:
        print("\nclasses that must match but pass fewer tests with shoal than with the standard library:")
        for cls, m, std, sh in shortfalls:
            print(f"  [{m}] {cls}: stdlib {std}, shoal {sh}")
        status = 1
    return status


def _cache_path(python: str, source: str, method: str) -> str:
    version = subprocess.check_output([python, "-c", "import sys; print(sys.version.split()[0])"],
                                      text=True).strip()
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    cache = os.path.join(os.path.expanduser("~"), ".cache", "shoal-cpython-suite")
    os.makedirs(cache, exist_ok=True)
    return os.path.join(cache, f"{version}-{digest}-{method}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated start methods")
    parser.add_argument("--impls", default=",".join(IMPLS), help="stdlib, shoal or both")
    parser.add_argument("-k", "--pattern", default="", help="regular expression on test ids")
    parser.add_argument("-j", "--jobs", type=int, default=9,
                        help="test processes at once (whole test classes are spread over them)")
    parser.add_argument("--fresh-baseline", action="store_true",
                        help="run the standard library's tests again instead of using the cached results")
    # Past the suite's LONG_TIMEOUT (300 s): `WithThreadsTestPool.test_terminate` sleeps
    # that long when a worker thread took a task before `terminate` (a race in the test).
    parser.add_argument("--test-timeout", type=float, default=330.0,
                        help="seconds of silence before a test (or fixture) counts as hung")
    parser.add_argument("--run-timeout", type=float, default=1200.0, help="seconds for one test process")
    parser.add_argument("--python", default=sys.executable, help="the interpreter (with shoal installed)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", help="write every test's outcome to this file")
    parser.add_argument("--report", metavar="JSON", help="print the report of a run saved with --json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print shoal's failures")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    impls = [i for i in IMPLS if i in args.impls.split(",")]
    if args.report:
        with open(args.report) as f:
            saved = {tuple(k.split(" ")): Outcome.from_json(v) for k, v in json.load(f).items()}
        for o in saved.values():
            o.cached = ""
        methods = [m for m in methods if all((i, m) in saved for i in impls)]
        return report(saved, methods, impls, args.markdown, args.verbose)

    root = tempfile.mkdtemp(prefix="shoal-cpython-suite-")
    began = time.monotonic()
    runs: list[Run] = []
    try:
        with open(cpython_test_file(), encoding="utf-8") as f:
            source = f.read()
        shoal_dir = None
        if "shoal" in impls:
            shoal_dir = subprocess.check_output(
                [args.python, "-c", "import os, shoal; print(os.path.dirname(shoal.__file__))"],
                text=True, env=_env()).strip()
        outcomes: dict[tuple[str, str], Outcome] = {}
        # Whole test classes are spread over the test processes, the longest first.
        work: list[tuple[str, str, str, list[str], dict[str, float]]] = []
        for impl in impls:
            for m in methods:
                cache = _cache_path(args.python, source, m)
                durations: dict[str, float] = {}
                if os.path.exists(f"{cache}-{impl}-durations.json"):
                    with open(f"{cache}-{impl}-durations.json") as f:
                        durations = json.load(f)
                if impl == "stdlib" and not args.pattern and not args.fresh_baseline \
                        and os.path.exists(cache + ".json"):
                    with open(cache + ".json") as f:
                        outcomes[(impl, m)] = Outcome.from_json(json.load(f))
                    continue
                outcomes[(impl, m)] = Outcome()
                directory = os.path.join(root, f"{impl}-{m}-list")
                _prepare_dir(directory, impl, source, shoal_dir)
                ids = [i for i in list_tests(args.python, directory, impl, m) if re.search(args.pattern, i)]
                work.append((impl, m, cache, ids, durations))
        per_run = max(1, -(-args.jobs // max(len(work), 1)))
        pending: list[Run] = []
        for impl, m, _, ids, durations in work:
            for k, group in enumerate(shard(ids, durations, per_run)):
                directory = os.path.join(root, f"{impl}-{m}-{k}")
                _prepare_dir(directory, impl, source, shoal_dir)
                pending.append(Run(impl, m, directory, args.python, group, args.test_timeout, args.run_timeout))
        runs = list(pending)
        active: list[Run] = []
        while pending or active:
            while pending and len(active) < max(args.jobs, 1):
                pending[0].start()
                active.append(pending.pop(0))
            time.sleep(0.1)
            active = [run for run in active if run.poll()]
        for run in runs:
            outcomes[(run.impl, run.method)].add(run)
        for impl, m, cache, _, _ in work:
            o = outcomes[(impl, m)]
            if args.pattern or o.problems:
                continue
            if impl == "stdlib":
                with open(cache + ".json", "w") as f:
                    json.dump(o.to_json(), f)
            with open(f"{cache}-{impl}-durations.json", "w") as f:
                json.dump(o.durations, f)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({f"{impl} {m}": o.to_json() for (impl, m), o in outcomes.items()}, f, indent=1)
        status = report(outcomes, methods, impls, args.markdown, args.verbose)
        if shoal_dir is not None:
            # A test kills the creator of a segment on purpose: what a dead owner leaves
            # is collected as `shoal gc` does.
            left = subprocess.check_output(
                [args.python, "-c", "import shoal; print(' '.join(shoal.collect_dead_segments()))"],
                text=True, env=_env()).split()
            if left:
                print(f"segments of dead owners collected: {', '.join(left)}")
        print(f"total: {time.monotonic() - began:.0f} s")
        return status
    finally:
        for run in runs:
            run.stop()
        if args.keep:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
