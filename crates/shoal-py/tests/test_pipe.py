"""Pipes from Python: `multiprocessing.Pipe`'s contract on shoal's rings."""

from __future__ import annotations

import array
import os
import pickle
import signal

import pytest
import shoal
from conftest import joined, start
from shoal import BufferTooShort


def echo(conn):
    while True:
        msg = conn.recv()
        conn.send(msg)
        if msg is None:
            return


def test_duplex_round_trips(ctx):
    a, b = ctx.Pipe()
    p = start(ctx, echo, b)
    b.close()  # the child holds its own copy
    for obj in [1, "two", [3, 4], {"five": 5}, b"six" * 1000, None]:
        a.send(obj)
        assert a.recv() == obj
    assert joined(p) == 0  # None made it return
    # Under fork the child inherited `a` as well, as with the standard library; now it
    # is gone, every copy of `b` is closed.
    with pytest.raises(EOFError):
        a.recv()


def sender_then_exit(conn, n):
    for i in range(n):
        conn.send_bytes(i.to_bytes(4, "little"))
    conn.close()


def test_end_of_stream_once_every_copy_is_closed(ctx):
    r, w = ctx.Pipe(duplex=False)
    assert r.readable and not r.writable and w.writable and not w.readable
    p = start(ctx, sender_then_exit, w, 100)
    w.close()  # the parent's copy; the child's copy keeps the pipe open
    got = []
    while True:
        try:
            got.append(int.from_bytes(r.recv_bytes(), "little"))
        except EOFError:
            break
    assert got == list(range(100))
    assert joined(p) == 0


def test_peer_killed_is_end_of_stream(ctx):
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, block_forever, w)
    w.close()
    assert r.recv() == "ready"
    os.kill(p.pid, signal.SIGKILL)
    joined(p)
    with pytest.raises(EOFError):
        r.recv()


def block_forever(w):
    w.send("ready")
    signal.pause()


def test_send_to_a_closed_peer_is_a_broken_pipe():
    a, b = shoal.Pipe()
    b.close()
    with pytest.raises(BrokenPipeError):
        a.send(1)


def test_bytes_api():
    a, b = shoal.Pipe()
    a.send_bytes(b"0123456789", 2, 5)
    assert b.recv_bytes() == b"23456"
    a.send_bytes(memoryview(b"abc"))
    buf = bytearray(10)
    assert b.recv_bytes_into(buf, 3) == 3
    assert buf[3:6] == b"abc"
    arr = array.array("i", [1, 2, 3])
    a.send_bytes(arr)
    out = array.array("i", [0, 0, 0])
    assert b.recv_bytes_into(out) == 12 and out.tolist() == [1, 2, 3]
    a.send_bytes(b"too long for it")
    with pytest.raises(BufferTooShort) as err:
        b.recv_bytes_into(bytearray(4))
    assert err.value.args[0] == b"too long for it"
    a.send_bytes(b"x" * 100)
    with pytest.raises(OSError):
        b.recv_bytes(maxlength=10)


def test_poll_and_timeouts():
    a, b = shoal.Pipe()
    assert not b.poll()
    assert not b.poll(0.01)
    a.send(1)
    assert b.poll(5)
    assert b.recv() == 1


def test_closed_handle_raises_and_context_manager():
    a, b = shoal.Pipe()
    with a:
        a.send("x")
    assert a.closed
    with pytest.raises(OSError):
        a.send("y")
    assert b.recv() == "x"
    with pytest.raises(EOFError):
        b.recv()


def via_queue(q):
    conn = q.get(timeout=30)
    conn.send("through a queue")


def test_a_connection_travels_through_a_queue(ctx):
    # Connections are picklable (no inheritance rule), as in multiprocessing.
    q = ctx.Queue()
    a, b = ctx.Pipe()
    p = start(ctx, via_queue, q)
    q.put(b)
    assert a.recv() == "through a queue"
    assert joined(p) == 0


def test_connection_pickles_within_a_process():
    a, b = shoal.Pipe()
    b2 = pickle.loads(pickle.dumps(b))
    a.send(5)
    assert b2.recv() == 5


def test_wait_over_pipes_queues_and_sentinels(ctx):
    a, b = ctx.Pipe()
    q = ctx.Queue()
    p = start(ctx, sender_then_exit, a, 1)
    ready = shoal.connection.wait([b, q, p.sentinel], timeout=30)
    assert b in ready
    assert shoal.connection.wait([q], timeout=0.01) == []
    q.put(1)
    assert q in shoal.connection.wait([q], timeout=10)
    joined(p)
    assert p.sentinel in shoal.connection.wait([p.sentinel], timeout=10)


def test_recv_async():
    import asyncio

    a, b = shoal.Pipe()

    async def main():
        a.send("hello")
        return await b.recv_async(timeout=5)

    assert asyncio.run(main()) == "hello"
