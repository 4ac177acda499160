"""Queues opened by name: a Python program and an unrelated Rust program (the
`interop` example, started with plain `subprocess`, no descriptor passed) on one queue,
MessagePack or raw bytes, and the errors of a wrong codec, kind or name."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import textwrap
import uuid

import pytest
import shoal

WAIT = 60


def unique(what: str) -> str:
    return f"pytest-{what}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def records(n: int) -> list[dict]:
    return [{"id": i, "name": "r" * (i % 13), "score": i * 0.25} for i in range(n)]


def test_a_python_queue_is_opened_by_name_by_a_rust_program(interop_bin):
    name = unique("py-msgpack")
    q = shoal.Queue(name=name, codec="msgpack")
    assert q.codec == "msgpack"
    rust = subprocess.Popen(
        [interop_bin, "named-open", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    n = 5000
    for r in records(n):
        q.put(r)
    q.put(None)
    out, err = rust.communicate(timeout=WAIT)
    assert rust.returncode == 0, err
    total = sum(r["score"] for r in records(n))
    assert out == f'rust named-open: {n} records, total score {total:.2f}, longest name "{"r" * 12}"\n'


def test_a_rust_queue_is_opened_by_name_by_python(interop_bin):
    name = unique("rust-msgpack")
    rust = subprocess.Popen([interop_bin, "named-create", name, "3000"], stdout=subprocess.PIPE, text=True)
    try:
        assert rust.stdout is not None
        assert rust.stdout.readline() == "ready\n"
        q = shoal.Queue(name=name, create=False, codec="msgpack")
        got = []
        while (r := q.get(timeout=WAIT)) is not None:
            got.append(r)
        assert got == [{"id": i, "name": f"record-{i}", "score": i / 2} for i in range(3000)]
        done = shoal.Queue(name=f"{name}-done", create=False)
        assert done.codec == "bytes"
        done.put(b"took 3000")
        out, _ = rust.communicate(timeout=WAIT)
    finally:
        if rust.poll() is None:
            rust.kill()
    assert rust.returncode == 0
    assert out == "rust named-create: the opener answered \"took 3000\"\n"


def test_raw_bytes_by_name_from_python_to_rust(interop_bin):
    name = unique("py-bytes")
    q = shoal.Queue(8, name=name, codec="bytes")
    rust = subprocess.Popen(
        [interop_bin, "named-open-bytes", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for i in range(1, 101):
        q.put(bytes(i), timeout=WAIT)
    q.put(b"", timeout=WAIT)
    out, err = rust.communicate(timeout=WAIT)
    assert rust.returncode == 0, err
    assert out == f"rust named-open-bytes: 100 messages, {sum(range(1, 101))} bytes, codec raw bytes\n"


def test_a_rust_program_is_told_a_named_python_queue_carries_pickles(interop_bin):
    name = unique("py-pickle")
    q = shoal.Queue(name=name)
    out = subprocess.run([interop_bin, "named-open", name], capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 1
    assert out.stderr == (
        f"interop: the queue '{name}' carries pickle messages (a Python program made it), which Rust does "
        "not decode: open it with Queue::open_named_bytes and exchange raw bytes (put_bytes/get_bytes), "
        'or create it in Python with codec="msgpack"\n'
    )
    del q


def test_python_is_told_the_codec_and_kind_of_a_named_queue(interop_bin):
    name = unique("codec")
    rust = subprocess.Popen([interop_bin, "named-create", name, "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert rust.stdout is not None
        assert rust.stdout.readline() == "ready\n"
        with pytest.raises(ValueError) as e:
            shoal.Queue(name=name, create=False, codec="pickle")
        assert str(e.value) == (
            f"the queue {name!r} carries msgpack messages, not pickle: open it with codec='msgpack', "
            "or without codec= to take the queue's own"
        )
        with pytest.raises(ValueError, match=f"^the shoal object named '{name}' is a queue, not a joinable-queue$"):
            shoal.JoinableQueue(name=name, create=False)
        shoal.Queue(name=f"{name}-done", create=False).put(b"ok")
        rust.communicate(timeout=WAIT)
    finally:
        if rust.poll() is None:
            rust.kill()
    assert rust.returncode == 0


def test_an_unknown_name_and_a_taken_one_are_named():
    name = unique("nobody")
    with pytest.raises(FileNotFoundError) as e:
        shoal.Queue(name=name, create=False)
    assert e.value.strerror == (
        f"no shoal queue named '{name}' is served by a live process of this user on this machine "
        "(a named object is served from its creation until its creator drops it or exits)"
    )
    q = shoal.Queue(name=name)
    with pytest.raises(FileExistsError, match=f"a shoal object named '{name}' is served already"):
        shoal.Queue(name=name)
    with pytest.raises(ValueError, match="cannot name a shoal object"):
        shoal.Queue(name="not/a name")
    with pytest.raises(ValueError, match='unknown codec "yaml"'):
        shoal.Queue(codec="yaml")
    with pytest.raises(ValueError, match="belong to the queue's creator"):
        shoal.Queue(5, name=name, create=False)
    del q


def test_the_name_is_served_while_the_creator_lives_and_openers_keep_the_queue():
    name = unique("lifetime")
    q = shoal.JoinableQueue(name=name, codec="msgpack")
    opened = shoal.JoinableQueue(name=name, create=False)
    del q
    with pytest.raises(FileNotFoundError):
        shoal.JoinableQueue(name=name, create=False)
    opened.put([1, "two", {"three": 3.0}])
    assert opened.get(timeout=WAIT) == [1, "two", {"three": 3.0}]
    opened.task_done()
    opened.join()


def test_a_python_process_started_apart_opens_a_named_queue(tmp_path):
    name = unique("py-py")
    q = shoal.Queue(name=name)
    answers = shoal.Queue(name=f"{name}-answers", codec="msgpack")
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(f"""
        import shoal
        jobs = shoal.Queue(name={name!r}, create=False)
        answers = shoal.Queue(name={name + '-answers'!r}, create=False)
        while (job := jobs.get(timeout=60)) is not None:
            answers.put(sum(job))
    """))
    p = subprocess.Popen([sys.executable, str(child)])
    for i in range(100):
        q.put((i, i + 1))
    q.put(None)
    assert [answers.get(timeout=WAIT) for _ in range(100)] == [2 * i + 1 for i in range(100)]
    assert p.wait(timeout=WAIT) == 0
    with pytest.raises(queue.Empty):
        answers.get(timeout=0.01)


def test_msgpack_refuses_what_it_cannot_encode():
    q = shoal.Queue(codec="msgpack")
    with pytest.raises(TypeError, match="a set cannot be stored as MessagePack"):
        q.put({1, 2})
    q.put(b"\x00bytes")
    assert q.get(timeout=WAIT) == b"\x00bytes"


def test_a_named_queue_reaches_a_child_process_as_a_plain_queue(ctx):
    q = shoal.Queue(name=unique("child"), codec="msgpack")
    p = ctx.Process(target=_put_in_child, args=(q,))
    p.start()
    assert q.get(timeout=WAIT) == {"from": "child"}
    p.join(WAIT)
    assert p.exitcode == 0


def _put_in_child(q) -> None:
    q.put({"from": "child"})



def test_a_forked_child_that_drops_its_copy_leaves_the_name_served():
    import gc

    name = unique("fork")
    q = shoal.Queue(name=name, codec="msgpack")
    pid = os.fork()
    if pid == 0:
        try:
            del q
            gc.collect()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    opened = shoal.Queue(name=name, create=False)
    opened.put({"still": "served"})
    assert q.get(timeout=WAIT) == {"still": "served"}
