"""Programs that call programs: shoal objects handed to any program by
`shoal.subprocess.Popen` (Python) and `shoal::process::Command` (Rust), attached with
`shoal.inherited` / `shoal::inherited`; Rust and Python on one queue or pipe."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest
import shoal
import shoal.subprocess

WAIT = 120


def script(tmp_path: pathlib.Path, body: str) -> str:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_a_python_child_attaches_a_queue_and_a_lock_passed_by_popen(tmp_path):
    q = shoal.Queue()
    answers = shoal.Queue()
    lock = shoal.Lock()
    child = script(tmp_path, """
        import shoal
        q = shoal.inherited("jobs")
        answers = shoal.inherited("answers")
        lock = shoal.inherited("lock")
        with lock:
            answers.put([x * 2 for x in q.get(timeout=60)])
        try:
            shoal.inherited("jobs")
        except ValueError as e:
            answers.put(str(e))
    """)
    q.put([1, 2, 3])
    p = shoal.subprocess.Popen([sys.executable, child], pass_objects={"jobs": q, "answers": answers, "lock": lock})
    assert answers.get(timeout=WAIT) == [2, 4, 6]
    assert "attached already" in answers.get(timeout=WAIT)
    assert p.wait(timeout=WAIT) == 0
    assert lock.acquire(timeout=WAIT)


def test_popen_refuses_what_it_cannot_pass():
    with pytest.raises(TypeError, match="Popen passes shoal queues"):
        shoal.subprocess.Popen([sys.executable, "-c", "pass"], pass_objects={"x": object()})


def test_inherited_names_what_is_missing():
    with pytest.raises(KeyError, match="no shoal object named 'nothing'"):
        shoal.inherited("nothing")


def test_a_rust_parent_and_a_python_child_exchange_100000_messages_each_way(tmp_path, interop_bin):
    child = script(tmp_path, """
        import shoal
        to_python = shoal.inherited("to_python")
        from_python = shoal.inherited("from_python")
        while True:
            data = to_python.get_bytes(timeout=60)
            if not data:
                break
            n = int.from_bytes(data, "little")
            from_python.put_bytes((n + 1).to_bytes(8, "little"))
    """)
    out = subprocess.run(
        [interop_bin, "parent", sys.executable, child, "100000"], capture_output=True, text=True, timeout=WAIT * 2,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "rust parent: 100000 messages each way, python exited with exit status: 0"


def test_a_python_parent_hands_a_pipe_end_to_a_rust_program(interop_bin):
    ours, theirs = shoal.Pipe()
    p = shoal.subprocess.Popen(
        [interop_bin, "child"], pass_objects={"pipe": theirs}, stdout=subprocess.PIPE, text=True,
    )
    theirs.close()
    for i in range(1000):
        message = f"message {i}".encode()
        ours.send_bytes(message)
        assert ours.poll(WAIT)
        assert ours.recv_bytes() == message[::-1]
    # An empty message ends the exchange (the Rust side's own end of stream comes when
    # every process that sent on this end is gone, and this one lives on).
    ours.send_bytes(b"")
    out, _ = p.communicate(timeout=WAIT)
    assert p.returncode == 0
    assert out == "rust child: answered 1000 messages\n"
    # The Rust program has exited: its copy of the liveness socket is gone, so this
    # end sees end of stream, as with a Python peer.
    with pytest.raises(EOFError):
        ours.recv_bytes()


def test_a_rust_program_is_told_a_python_queue_carries_pickles(interop_bin):
    q = shoal.Queue()
    q.put(5)
    p = shoal.subprocess.Popen([interop_bin, "typed"], pass_objects={"pickles": q}, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=WAIT)
    assert p.returncode == 0
    assert out.startswith("rust typed get: ")
    assert "this queue carries Python pickles" in out
    assert "put_bytes/get_bytes" in out


def test_python_is_told_a_rust_queue_carries_bincode(tmp_path, interop_bin):
    child = script(tmp_path, """
        import shoal
        q = shoal.inherited("msgpack")
        try:
            q.get(timeout=60)
        except TypeError as e:
            print(e)
        print(q.get_bytes(timeout=60))
    """)
    out = subprocess.run(
        [interop_bin, "offer-bincode", sys.executable, child], capture_output=True, text=True, timeout=WAIT,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("this queue carries bincode messages of a Rust program, not pickles")
    assert "put_bytes()/get_bytes()" in lines[0]
    assert lines[1] == repr(b"\x05hello")
    assert lines[2] == "rust offer: python exited with exit status: 0"


def test_python_reads_a_rust_messagepack_queue_as_objects(tmp_path, interop_bin):
    child = script(tmp_path, """
        import shoal
        q = shoal.inherited("msgpack")
        print(q.codec, repr(q.get(timeout=60)))
    """)
    out = subprocess.run(
        [interop_bin, "offer", sys.executable, child], capture_output=True, text=True, timeout=WAIT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["msgpack 'hello'", "rust offer: python exited with exit status: 0"]


def test_a_rust_program_hands_a_pipe_end_to_a_rust_program_and_names_a_wrong_kind(interop_bin):
    out = subprocess.run([interop_bin, "selftest"], capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "rust selftest: rust child: answered 1000 messages",
        'rust wrong-kind: the inherited object "pipe" is a pipe, not a queue',
    ]


def _serve(conn):
    conn.settimeout(60)
    conn.sendall(conn.recv(100).upper())
    conn.close()


def test_a_socket_accepted_in_the_parent_is_served_by_a_child(ctx):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=WAIT)
        conn, _ = server.accept()
        p = ctx.Process(target=_serve, args=(conn,))
        p.start()
        conn.close()
        client.sendall(b"hello")
        assert client.recv(100) == b"HELLO"
        p.join(WAIT)
        assert p.exitcode == 0
        client.close()


def test_a_socket_accepted_in_the_parent_is_served_by_a_pool_task(ctx):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server, ctx.Pool(2) as pool:
        client = socket.create_connection(server.getsockname(), timeout=WAIT)
        conn, _ = server.accept()
        served = pool.apply_async(_serve, (conn,))
        conn.close()
        client.sendall(b"pool")
        assert client.recv(100) == b"POOL"
        assert served.get(WAIT) is None
        client.close()
