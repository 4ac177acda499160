"""shoal.SharedDict and shoal.SharedList: the mapping and sequence protocols against
dict and list, children of every start method, an unrelated process opening by name,
codecs, a writer SIGKILLed mid-update, and the segments removed with their creator."""

from __future__ import annotations

import gc
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest
import shoal
from conftest import joined, start

SHM = "/dev/shm"


def names_of(container):
    return [n for n in os.listdir(SHM) if n == container.name or n.startswith(container.name + ".")]


# ---- one process ----------------------------------------------------------------------


def test_dict_behaves_as_a_dict():
    d = shoal.SharedDict({"a": 1}, codec="pickle")
    model = {"a": 1}
    rng = random.Random(7)
    for i in range(3000):
        k = rng.choice(["a", "b", b"a", 1, 2, -5, 2**63, "long" * 20])
        op = rng.randrange(5)
        if op == 0:
            d[k] = model[k] = (i, [i] * (i % 5))
        elif op == 1:
            assert d.pop(k, None) == model.pop(k, None)
        elif op == 2:
            assert d.get(k) == model.get(k)
        elif op == 3:
            assert d.setdefault(k, i) == model.setdefault(k, i)
        else:
            assert (k in d) == (k in model)
    assert len(d) == len(model)
    assert dict(d) == model == d.copy()
    assert sorted(map(repr, d.keys())) == sorted(map(repr, model.keys()))
    assert sorted(map(repr, d.items())) == sorted(map(repr, model.items()))
    assert d == model
    d.update({"x": 1}, y=2)
    d.update([("z", 3)])
    assert (d["x"], d["y"], d["z"]) == (1, 2, 3)
    d.clear()
    assert len(d) == 0 and dict(d) == {}


def test_dict_key_rules():
    d = shoal.SharedDict()
    d[1] = "int"
    assert d[True] == "int"  # a bool is its int, as in a dict
    d["a"] = "str"
    d[b"a"] = "bytes"
    assert (d["a"], d[b"a"]) == ("str", "bytes")
    for bad in (1.5, None, ("t",), frozenset()):
        with pytest.raises(TypeError, match="str, bytes or int"):
            d[bad] = 1
        assert bad not in d
    with pytest.raises(ValueError, match="64 bits"):
        d[2**64] = 1
    with pytest.raises(KeyError):
        d["missing"]
    with pytest.raises(KeyError):
        del d["missing"]
    with pytest.raises(KeyError):
        d.pop("missing")


def test_list_behaves_as_a_list():
    items = shoal.SharedList([1, 2, 3])
    model = [1, 2, 3]
    rng = random.Random(11)
    for i in range(2000):
        op = rng.randrange(6)
        if op == 0:
            items.append(i)
            model.append(i)
        elif op == 1 and model:
            at = rng.randrange(-len(model), len(model))
            items[at] = model[at] = {"i": i}
        elif op == 2:
            at = rng.randrange(-len(model) - 2, len(model) + 2)
            items.insert(at, i)
            model.insert(at, i)
        elif op == 3 and model:
            at = rng.randrange(-len(model), len(model))
            del items[at]
            del model[at]
        elif op == 4 and model:
            assert items.pop() == model.pop()
        else:
            a, b = rng.randrange(-5, 10), rng.randrange(-5, 10)
            assert items[a:b] == model[a:b]
            assert items[::-2] == model[::-2]
    assert items == model
    assert list(items) == model and len(items) == len(model)
    with pytest.raises(IndexError):
        items[len(model)]
    with pytest.raises(TypeError):
        items[0:1] = [1]
    items.extend(range(3))
    assert items[-3:] == [0, 1, 2]
    assert items.index(2, len(model)) == len(model) + 2
    items.clear()
    with pytest.raises(IndexError):
        items.pop()


def test_codecs_and_their_checks():
    m = shoal.SharedDict(codec="msgpack")
    value = {"a": [1, 2.5, b"x", None, True, "s"], "n": -(2**63)}
    m["k"] = value
    m["t"] = (1, 2)
    assert m["k"] == value
    assert m["t"] == [1, 2]  # MessagePack has arrays, not tuples
    with pytest.raises(TypeError, match="MessagePack"):
        m["bad"] = object()
    raw = shoal.SharedList(codec="raw")
    raw.append(b"bytes")
    raw.append(bytearray(b"ba"))
    assert list(raw) == [b"bytes", b"ba"]
    with pytest.raises(TypeError, match="bytes"):
        raw.append("text")
    with pytest.raises(ValueError, match="MessagePack values, not pickled values"):
        shoal.SharedDict.open(m.name, "pickle")
    with pytest.raises(ValueError, match="unknown codec"):
        shoal.SharedDict(codec="yaml")
    assert shoal.SharedDict.open(m.name).codec == "msgpack"
    with pytest.raises(FileNotFoundError):
        shoal.SharedDict.open(f"shoal-test-no-such-dict-{os.getpid()}")
    with pytest.raises(OSError, match="list"):
        shoal.SharedDict.open(raw.name)  # a list is not a dict


def test_named_containers_and_their_segments_go_with_their_creator():
    name = f"shoal-test-pydict-{os.getpid()}"
    d = shoal.SharedDict(name=name)
    with pytest.raises(FileExistsError):
        shoal.SharedDict(name=name)
    for i in range(5000):  # several generations
        d[i] = "v" * 50
    other = shoal.SharedDict.open(name)
    assert other[4999] == "v" * 50 and len(other) == 5000
    assert sorted(names_of(d)) == sorted([name, name + ".lock", f"{name}.g{_gen(d)}"])
    del d, other
    gc.collect()
    assert [n for n in os.listdir(SHM) if n.startswith(name)] == []


def _gen(d):
    return max(int(n.rsplit(".g", 1)[1]) for n in names_of(d) if ".g" in n)


# ---- other processes ------------------------------------------------------------------


def fill(d, items, who, n):
    for i in range(n):
        d[f"{who}-{i}"] = (who, i)
        items.append((who, i))
    del d[f"{who}-0"]


def test_children_of_every_start_method_share_the_containers(ctx):
    d = shoal.SharedDict()
    items = shoal.SharedList()
    ps = [start(ctx, fill, d, items, w, 300) for w in range(3)]
    for p in ps:
        assert joined(p) == 0
    assert len(d) == 3 * 299
    assert d["2-299"] == (2, 299)
    assert "1-0" not in d
    assert sorted(items) == sorted((w, i) for w in range(3) for i in range(300))


def test_containers_pickle_as_their_name():
    d = shoal.SharedDict(codec="msgpack")
    d["k"] = 1
    back = pickle.loads(pickle.dumps(d))
    assert back.name == d.name and back.codec == "msgpack" and back["k"] == 1
    items = shoal.SharedList([1])
    assert pickle.loads(pickle.dumps(items)) == [1]


def test_an_unrelated_process_opens_by_name():
    d = shoal.SharedDict({"from parent": 1})
    script = (
        "import sys, shoal\n"
        "d = shoal.SharedDict.open(sys.argv[1])\n"
        "d['from child'] = d['from parent'] + 1\n"
    )
    subprocess.run([sys.executable, "-c", script, d.name], check=True, timeout=60)
    assert d["from child"] == 2


def hammer(d, seed):
    rng = random.Random(seed)
    d["started"] = True
    while True:
        k = rng.randrange(500)
        n = rng.randrange(50)
        if rng.random() < 0.6:
            d[k] = [n] * n
        else:
            d.pop(k, None)


def test_a_writer_killed_mid_update_leaves_the_dict_whole():
    ctx = shoal.get_context("fork")
    d = shoal.SharedDict()
    for round in range(20):
        p = start(ctx, hammer, d, round)
        deadline = time.monotonic() + 30
        while "started" not in d:
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.001)
        time.sleep(random.random() * 0.02)
        os.kill(p.pid, signal.SIGKILL)
        assert joined(p) == -signal.SIGKILL
        entries = d.copy()
        assert len(entries) == len(d)
        for k, v in entries.items():
            if k != "started":
                assert v == [len(v)] * len(v), f"a torn value under {k}: {v}"
        d[-1] = "usable"
        assert d.pop(-1) == "usable"
        del d["started"]


def test_scalars_round_trip_with_their_types():
    d = shoal.SharedDict()
    values = [None, True, False, 0, 255, 256, 65535, 65536, -1, 2**31 - 1, -(2**31), 2**31, 2**70]
    values += [1.5, float("inf"), -0.0, "", "a" * 255, "é" * 200, b"", b"x" * 300, (1, "t"), [1], {"d": 1}]
    for i, v in enumerate(values):
        d[i] = v
    again = shoal.SharedDict.open(d.name)
    for i, v in enumerate(values):
        for handle in (d, again, d):
            got = handle[i]
            assert got == v and type(got) is type(v), (v, got)
    # A mutable value is decoded afresh on every read: changing one copy changes nothing.
    d["list"] = [1]
    d["list"].append(2)
    assert d["list"] == [1]


def overwrite(d, key, value):
    d[key] = value


def test_a_cached_read_sees_another_processs_update(ctx):
    d = shoal.SharedDict({"k": "old", 5: 1.5})
    assert d["k"] == "old" and d["k"] == "old" and d.get(5) == 1.5  # cached now
    p = start(ctx, overwrite, d, "k", "new")
    assert joined(p) == 0
    assert d["k"] == "new" and d[5] == 1.5
    p = start(ctx, overwrite, d, 5, None)
    assert joined(p) == 0
    assert d.get(5, "absent") is None


_HELD = []


def drop_inherited():
    _HELD.clear()  # the last reference in this process: the handle is dropped here
    gc.collect()


def test_a_forked_child_dropping_its_copy_removes_no_name():
    _HELD.append(shoal.SharedDict({"k": 1}))
    name = _HELD[0].name
    before = sorted(names_of(_HELD[0]))
    p = start(shoal.get_context("fork"), drop_inherited)
    assert joined(p) == 0
    assert sorted(n for n in os.listdir(SHM) if n == name or n.startswith(name + ".")) == before
    assert shoal.SharedDict.open(name)["k"] == 1
    _HELD.clear()
