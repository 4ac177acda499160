"""Value, Array and shared_memory from Python, and a segment whose creator is killed."""

from __future__ import annotations

import ctypes
import os
import signal

import pytest
import shoal
from conftest import joined, start
from shoal import shared_memory


def deposit(account, n):
    for _ in range(n):
        with account.get_lock():
            account.value += 1


def test_value_bank_account_is_correct_with_its_lock(ctx):
    account = ctx.Value("i", 0)
    ps = [start(ctx, deposit, account, 3000) for _ in range(3)]
    for p in ps:
        assert joined(p) == 0
    assert account.value == 9000


def upper(arr):
    with arr.get_lock():
        arr.value = arr.value.upper()


def test_array_of_chars(ctx):
    arr = ctx.Array("c", b"hello world")
    p = start(ctx, upper, arr)
    assert joined(p) == 0
    assert arr.value == b"HELLO WORLD"
    assert arr.raw == b"HELLO WORLD"
    assert arr[0:5] == b"HELLO"


def square_all(arr):
    for i in range(len(arr)):
        arr[i] = arr[i] * arr[i]


def test_raw_array_and_types(ctx):
    arr = ctx.RawArray("d", [1.0, 2.0, 3.0])
    p = start(ctx, square_all, arr)
    assert joined(p) == 0
    assert list(arr) == [1.0, 4.0, 9.0]
    zeros = shoal.RawArray(ctypes.c_int, 4)
    assert list(zeros) == [0, 0, 0, 0]
    v = shoal.RawValue(ctypes.c_double, 1.5)
    assert v.value == 1.5
    assert shoal.Value("i", 3, lock=False).value == 3
    with pytest.raises(AttributeError):
        shoal.Value("i", 3, lock=object())


def write_segment(name):
    shm = shared_memory.SharedMemory(name)
    shm.buf[:5] = b"child"
    shm.close()


def test_shared_memory_by_name(ctx):
    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        assert shm.size >= 4096 and len(shm.buf) == shm.size  # whole pages, as on macOS
        p = start(ctx, write_segment, shm.name)
        assert joined(p) == 0
        assert bytes(shm.buf[:5]) == b"child"
    finally:
        shm.close()
        shm.unlink()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(shm.name)


def test_foreign_file_is_refused(tmp_path):
    name = f"shoal-test-foreign-{os.getpid()}"
    path = f"/dev/shm/{name}"
    with open(path, "wb") as f:
        f.write(b"\0" * 8192)
    try:
        with pytest.raises(OSError):
            shared_memory.SharedMemory(name)
    finally:
        os.unlink(path)


def create_and_die(name_out, ready):
    shm = shared_memory.SharedMemory(create=True, size=1 << 16)
    name_out.put(shm.name)
    ready.wait(30)
    os.kill(os.getpid(), signal.SIGKILL)


def test_segment_of_a_killed_creator_is_collected(ctx):
    names, ready = ctx.Queue(), ctx.Event()
    p = start(ctx, create_and_die, names, ready)
    name = names.get(timeout=30)
    ready.set()
    joined(p)
    assert os.path.exists(f"/dev/shm/{name}")
    assert name in shoal.collect_dead_segments()
    assert not os.path.exists(f"/dev/shm/{name}")


def test_shareable_list():
    sl = shared_memory.ShareableList([1, 2.5, b"bytes", "str", None, True])
    try:
        other = shared_memory.ShareableList(name=sl.shm.name)
        other[0] = 99
        assert sl[0] == 99 and list(sl)[1:] == [2.5, b"bytes", "str", None, True]
        other.shm.close()
    finally:
        sl.shm.close()
        sl.shm.unlink()
