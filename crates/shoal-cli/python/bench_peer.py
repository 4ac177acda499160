#!/usr/bin/env python3
"""Python's side of `shoal bench --python`: measures one case and prints it as JSON.

    bench_peer.py check
        {"python": "3.11.7", "faster_fifo": true, "shoal": true, "shoal_error": null}
    bench_peer.py run --impl mp-queue --pattern throughput --size 64 --time-ms 400 --cpus 0,1
        {"messages": 81234, "seconds": 0.41}
    bench_peer.py run --impl mp-pipe --pattern ping-pong --size 8 --time-ms 400
        {"p50_ns": 61000.0, "p99_ns": 118000.0, "round_trips": 6500}

    bench_peer.py run --impl shoal-queue --pattern throughput-object --size 0 --time-ms 400
        {"messages": 912345, "seconds": 0.40}
    bench_peer.py run --impl mp-pool --pattern pool-task --size 0 --time-ms 400
        {"messages": 20000, "seconds": 0.45}

Implementations: mp-queue (multiprocessing.Queue), mp-simplequeue
(multiprocessing.SimpleQueue), mp-pipe (multiprocessing.Pipe with send_bytes /
recv_bytes), faster-fifo (faster_fifo.Queue of raw bytes, put_many / get_many), and the
package `shoal`'s own: shoal-queue (shoal.Queue), shoal-simplequeue (shoal.SimpleQueue),
shoal-pipe (shoal.Pipe with send_bytes / recv_bytes). Queues are given `bytes` objects
with `put` and `get` (multiprocessing's queues pickle them). For the pool-task pattern,
mp-pool (multiprocessing.Pool(2).map(f, range(n), chunksize=1)),
process-pool-executor (concurrent.futures.ProcessPoolExecutor(2), submit then result)
and shoal-pool (shoal.Pool(2).map, chunksize=1). For pool-map, mp-pool and shoal-pool
map batches of items chunked by the pool. For pool-submit, process-pool-executor and
shoal-executor (shoal.futures.ProcessPoolExecutor(2)) run submit(f, x).result() one
call at a time, timed one by one.

The -object patterns send a small Python object (a dict of five fields, OBJECT) instead
of bytes, one at a time with the ordinary calls: `put` / `get` for every queue
(faster-fifo included, pickling with its default), `send` / `recv` for pipes; `--size`
is 0 there.

Pool-task: a pool of two workers runs a trivial task (returns its argument) on batches
of items for the time given, after one untimed batch; "messages" counts the tasks.
Throughput: a producer process sends messages of SIZE bytes for the time given, then an
end marker; this process consumes them and reports how many it read and the time from
the start signal to the end marker. Ping-pong: this process sends a message, a child
process sends the same message back; the round trips are timed one by one.

With --cpus A,B this process pins itself to CPU A and the child to CPU B, as shoal's
own cases do. Errors print {"error": "..."} and exit with status 1.
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

# Messages per clock reading in a producer, and per put_many in faster-fifo.
CHUNK = 16
BATCH_BYTES = 256 * 1024
BATCH_MAX = 64
WARM_UP = 50
# Bytes of messages a queue may hold (the queues of multiprocessing and shoal alike).
QUEUE_BYTES = 32 * 1024 * 1024
# The message of the -object patterns: small, of the kinds of fields tasks carry.
OBJECT = {"id": 12345, "name": "task-17", "score": 0.5, "done": False, "tags": ("a", "b")}
# Messages a queue of objects may hold.
QUEUE_OBJECTS = 1 << 16


def batch_len(size):
    return max(1, min(BATCH_MAX, BATCH_BYTES // max(size, 1)))


def detach_stdout():
    """A child lets go of the answer pipe: should the parent be killed, the caller sees
    end-of-file at once instead of waiting for the orphaned child."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def pin(cpu):
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def faster_fifo_queue(size):
    import faster_fifo

    # Raw bytes: no pickling; `bytes` copies each message out of the receive buffer.
    return faster_fifo.Queue(
        max_size_bytes=max(8 * size, 1 << 20) + 4096,
        loads=bytes,
        dumps=lambda m: m,
    )


def faster_fifo_objects():
    import faster_fifo

    # Pickled by faster-fifo's default.
    return faster_fifo.Queue(max_size_bytes=1 << 20)


def is_pipe(impl):
    return impl in ("mp-pipe", "shoal-pipe")


def context(impl):
    """The module whose Queue, Pipe, Event and Process a case uses, with `fork`."""
    if impl.startswith("shoal-"):
        import shoal

        return shoal.get_context("fork")
    return mp.get_context("fork")


def make_channel(impl, size, ctx, objects):
    """(sending end, receiving end) of one direction."""
    if impl in ("mp-queue", "shoal-queue"):
        # Bounded, so that a fast producer of large messages cannot pile gigabytes into
        # the feeder thread's buffer (mp.Queue's puts take its semaphore, bounded or not;
        # an unbounded shoal.Queue buffers in the producer once its ring is full).
        q = ctx.Queue(maxsize=QUEUE_OBJECTS if objects else max(4, QUEUE_BYTES // size))
        return q, q
    if impl in ("mp-simplequeue", "shoal-simplequeue"):
        q = ctx.SimpleQueue()
        return q, q
    if is_pipe(impl):
        rx, tx = ctx.Pipe(duplex=False)
        return tx, rx
    if impl == "faster-fifo":
        q = faster_fifo_objects() if objects else faster_fifo_queue(size)
        return q, q
    raise ValueError(f"unknown implementation {impl!r}")


def sender(impl, end, objects):
    if is_pipe(impl):
        return end.send if objects else end.send_bytes
    return end.put


def receiver(impl, end, objects):
    if is_pipe(impl):
        return end.recv if objects else end.recv_bytes
    return end.get


def message(size, objects):
    return OBJECT if objects else b"\xa5" * size


def end_marker(objects):
    return None if objects else b""


def is_end(m, objects):
    return m is None if objects else len(m) == 0


def producer(impl, tx, size, objects, seconds, go, cpu):
    detach_stdout()
    pin(cpu)
    msg = message(size, objects)
    go.wait()
    deadline = time.perf_counter() + seconds
    batched = impl == "faster-fifo" and not objects
    if batched:
        batch = [msg] * batch_len(size)
        while time.perf_counter() < deadline:
            tx.put_many(batch, block=True, timeout=60)
    else:
        put = sender(impl, tx, objects)
        while True:
            for _ in range(CHUNK):
                put(msg)
            if time.perf_counter() >= deadline:
                break
    if impl == "faster-fifo":
        tx.put(end_marker(objects), block=True, timeout=60)
    else:
        sender(impl, tx, objects)(end_marker(objects))


def throughput(impl, size, objects, seconds, cpus, ctx):
    tx, rx = make_channel(impl, size, ctx, objects)
    go = ctx.Event()
    child = ctx.Process(
        target=producer, args=(impl, tx, size, objects, seconds, go, cpus[1]), daemon=True
    )
    child.start()
    count = 0
    go.set()
    start = time.perf_counter()
    if impl == "faster-fifo" and not objects:
        done = False
        while not done:
            for m in rx.get_many(block=True, timeout=60, max_messages_to_get=1 << 16):
                if len(m) == 0:
                    done = True
                    break
                count += 1
    else:
        get = receiver(impl, rx, objects)
        # The end test written out in each loop: no call per message but `get`'s.
        if objects:
            while True:
                if get() is None:
                    break
                count += 1
        else:
            while True:
                if len(get()) == 0:
                    break
                count += 1
    seconds = time.perf_counter() - start
    child.join(30)
    return {"messages": count, "seconds": seconds}


def echo(impl, rx, tx, objects, cpu):
    detach_stdout()
    pin(cpu)
    get, put = receiver(impl, rx, objects), sender(impl, tx, objects)
    while True:
        m = get()
        put(m)
        if is_end(m, objects):
            return


def percentile(sorted_samples, q):
    rank = min(max(int(-(-len(sorted_samples) * q // 1)), 1), len(sorted_samples))
    return float(sorted_samples[rank - 1])


def ping_pong(impl, size, objects, seconds, cpus, ctx):
    there_tx, there_rx = make_channel(impl, size, ctx, objects)
    back_tx, back_rx = make_channel(impl, size, ctx, objects)
    child = ctx.Process(
        target=echo, args=(impl, there_rx, back_tx, objects, cpus[1]), daemon=True
    )
    child.start()
    put, get = sender(impl, there_tx, objects), receiver(impl, back_rx, objects)
    msg = message(size, objects)
    for _ in range(WARM_UP):
        put(msg)
        get()
    samples = []
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    t0 = clock()
    while t0 < end:
        put(msg)
        back = get()
        t1 = clock()
        samples.append(t1 - t0)
        t0 = t1
    put(end_marker(objects))
    get()
    child.join(30)
    if (back if objects else bytes(back)) != msg:
        raise RuntimeError("the echo process sent back another message")
    samples.sort()
    return {
        "p50_ns": percentile(samples, 0.50),
        "p99_ns": percentile(samples, 0.99),
        "round_trips": len(samples),
    }


# Items per batch of the pool-task pattern.
POOL_BATCH = 2000
# Items per batch of the pool-map pattern (chunked by the pool).
MAP_BATCH = 200_000
# Calls of the pool-submit pattern before the timed ones.
SUBMIT_WARM_UP = 200


def identity(x):
    return x


def make_pool(impl, ctx):
    """A pool of two workers of `multiprocessing` or of the package `shoal` (the
    context's)."""
    if impl in ("mp-pool", "shoal-pool"):
        return ctx.Pool(2)
    raise ValueError(f"{impl!r} is not a pool")


def make_executor(impl, ctx):
    """An executor of two workers: the standard library's or the package `shoal`'s."""
    if impl == "process-pool-executor":
        import concurrent.futures

        return concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx)
    if impl == "shoal-executor":
        import shoal.futures

        return shoal.futures.ProcessPoolExecutor(2, mp_context=ctx)
    raise ValueError(f"{impl!r} is not an executor")


def pool_task(impl, seconds, ctx):
    if impl in ("mp-pool", "shoal-pool"):
        with make_pool(impl, ctx) as pool:

            def batch(first):
                items = range(first, first + POOL_BATCH)
                if pool.map(identity, items, chunksize=1) != list(items):
                    raise RuntimeError("the pool returned other results")

            return timed_batches(batch, seconds, POOL_BATCH)
    with make_executor(impl, ctx) as ex:

        def batch(first):
            futures = [ex.submit(identity, i) for i in range(first, first + POOL_BATCH)]
            if [f.result() for f in futures] != list(range(first, first + POOL_BATCH)):
                raise RuntimeError("the executor returned other results")

        return timed_batches(batch, seconds, POOL_BATCH)


def pool_map(impl, seconds, ctx):
    with make_pool(impl, ctx) as pool:

        def batch(first):
            items = range(first, first + MAP_BATCH)
            if pool.map(identity, items) != list(items):
                raise RuntimeError("the pool returned other results")

        return timed_batches(batch, seconds, MAP_BATCH)


def pool_submit(impl, seconds, ctx):
    with make_executor(impl, ctx) as ex:
        for i in range(SUBMIT_WARM_UP):
            ex.submit(identity, i).result(timeout=60)
        samples = []
        clock = time.perf_counter_ns
        end = clock() + int(seconds * 1e9)
        t0 = clock()
        i = 0
        while t0 < end:
            if ex.submit(identity, i).result(timeout=60) != i:
                raise RuntimeError("the executor returned another result")
            t1 = clock()
            samples.append(t1 - t0)
            t0 = t1
            i += 1
    samples.sort()
    return {
        "p50_ns": percentile(samples, 0.50),
        "p99_ns": percentile(samples, 0.99),
        "round_trips": len(samples),
    }


def timed_batches(batch, seconds, size):
    batch(0)
    tasks = 0
    start = time.perf_counter()
    while tasks == 0 or time.perf_counter() - start < seconds:
        batch(tasks)
        tasks += size
    return {"messages": tasks, "seconds": time.perf_counter() - start}


def check():
    try:
        import faster_fifo  # noqa: F401

        ff = True
    except ImportError:
        ff = False
    try:
        import shoal

        # The package's objects, not merely a directory of that name.
        shoal.Queue, shoal.SimpleQueue, shoal.Pipe, shoal.Pool
        shoal_error = None
    except Exception as e:
        shoal_error = f"{type(e).__name__}: {e}"
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "faster_fifo": ff,
        "shoal": shoal_error is None,
        "shoal_error": shoal_error,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check")
    run = sub.add_parser("run")
    run.add_argument(
        "--impl",
        required=True,
        choices=[
            "mp-queue",
            "mp-simplequeue",
            "mp-pipe",
            "faster-fifo",
            "shoal-queue",
            "shoal-simplequeue",
            "shoal-pipe",
            "mp-pool",
            "process-pool-executor",
            "shoal-pool",
            "shoal-executor",
        ],
    )
    run.add_argument(
        "--pattern",
        required=True,
        choices=[
            "throughput",
            "ping-pong",
            "throughput-object",
            "ping-pong-object",
            "pool-task",
            "pool-map",
            "pool-submit",
        ],
    )
    run.add_argument("--size", type=int, required=True)
    run.add_argument("--time-ms", type=int, default=400)
    run.add_argument("--cpus", default=None, help="A,B: this process on A, the child on B")
    args = parser.parse_args()
    try:
        if args.command == "check":
            out = check()
        else:
            objects = args.pattern.endswith("-object")
            pools = ("pool-task", "pool-map", "pool-submit")
            if args.size < 1 and args.pattern not in pools and not objects:
                raise ValueError("messages need at least one byte")
            cpus = [None, None]
            if args.cpus:
                cpus = [int(c) for c in args.cpus.split(",")][:2]
            pin(cpus[0])
            ctx = context(args.impl)
            seconds = args.time_ms / 1000.0
            if args.pattern == "pool-task":
                out = pool_task(args.impl, seconds, ctx)
            elif args.pattern == "pool-map":
                out = pool_map(args.impl, seconds, ctx)
            elif args.pattern == "pool-submit":
                out = pool_submit(args.impl, seconds, ctx)
            elif args.pattern.startswith("throughput"):
                out = throughput(args.impl, args.size, objects, seconds, cpus, ctx)
            else:
                out = ping_pong(args.impl, args.size, objects, seconds, cpus, ctx)
    except Exception as e:  # reported to the caller as JSON
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
