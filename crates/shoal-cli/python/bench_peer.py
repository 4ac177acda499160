#!/usr/bin/env python3
"""Python's side of `shoal bench --python`: measures one case and prints it as JSON.

    bench_peer.py check
        {"python": "3.11.7", "faster_fifo": true}
    bench_peer.py run --impl mp-queue --pattern throughput --size 64 --time-ms 400 --cpus 0,1
        {"messages": 81234, "seconds": 0.41}
    bench_peer.py run --impl mp-pipe --pattern ping-pong --size 8 --time-ms 400
        {"p50_ns": 61000.0, "p99_ns": 118000.0, "round_trips": 6500}

Implementations: mp-queue (multiprocessing.Queue), mp-simplequeue
(multiprocessing.SimpleQueue), mp-pipe (multiprocessing.Pipe with send_bytes /
recv_bytes), faster-fifo (faster_fifo.Queue of raw bytes, put_many / get_many).

Throughput: a producer process sends messages of SIZE bytes for the time given, then an
end marker; this process consumes them and reports how many it read and the time from
the start signal to the end marker. Ping-pong: this process sends a message, a child
process sends the same bytes back; the round trips are timed one by one.

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
# Bytes of messages an mp.Queue may hold.
QUEUE_BYTES = 32 * 1024 * 1024


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


def make_channel(impl, size, ctx):
    """(sending end, receiving end) of one direction."""
    if impl == "mp-queue":
        # Bounded, so that a fast producer of large messages cannot pile gigabytes into
        # the feeder thread's buffer (every put takes the semaphore, bounded or not).
        q = ctx.Queue(maxsize=max(4, QUEUE_BYTES // size))
        return q, q
    if impl == "mp-simplequeue":
        q = ctx.SimpleQueue()
        return q, q
    if impl == "mp-pipe":
        rx, tx = ctx.Pipe(duplex=False)
        return tx, rx
    if impl == "faster-fifo":
        q = faster_fifo_queue(size)
        return q, q
    raise ValueError(f"unknown implementation {impl!r}")


def sender(impl, end):
    if impl == "mp-pipe":
        return end.send_bytes
    return end.put


def receiver(impl, end):
    if impl == "mp-pipe":
        return end.recv_bytes
    return end.get


END = b""


def producer(impl, tx, size, seconds, go, cpu):
    detach_stdout()
    pin(cpu)
    msg = b"\xa5" * size
    go.wait()
    deadline = time.perf_counter() + seconds
    if impl == "faster-fifo":
        batch = [msg] * batch_len(size)
        while time.perf_counter() < deadline:
            tx.put_many(batch, block=True, timeout=60)
    else:
        put = sender(impl, tx)
        while True:
            for _ in range(CHUNK):
                put(msg)
            if time.perf_counter() >= deadline:
                break
    if impl == "faster-fifo":
        tx.put(END, block=True, timeout=60)
    else:
        sender(impl, tx)(END)


def throughput(impl, size, seconds, cpus, ctx):
    tx, rx = make_channel(impl, size, ctx)
    go = ctx.Event()
    child = ctx.Process(
        target=producer, args=(impl, tx, size, seconds, go, cpus[1]), daemon=True
    )
    child.start()
    count = 0
    go.set()
    start = time.perf_counter()
    if impl == "faster-fifo":
        done = False
        while not done:
            for m in rx.get_many(block=True, timeout=60, max_messages_to_get=1 << 16):
                if len(m) == 0:
                    done = True
                    break
                count += 1
    else:
        get = receiver(impl, rx)
        while True:
            m = get()
            if len(m) == 0:
                break
            count += 1
    seconds = time.perf_counter() - start
    child.join(30)
    return {"messages": count, "seconds": seconds}


def echo(impl, rx, tx, cpu):
    detach_stdout()
    pin(cpu)
    get, put = receiver(impl, rx), sender(impl, tx)
    while True:
        m = get()
        put(m)
        if len(m) == 0:
            return


def percentile(sorted_samples, q):
    rank = min(max(int(-(-len(sorted_samples) * q // 1)), 1), len(sorted_samples))
    return float(sorted_samples[rank - 1])


def ping_pong(impl, size, seconds, cpus, ctx):
    there_tx, there_rx = make_channel(impl, size, ctx)
    back_tx, back_rx = make_channel(impl, size, ctx)
    child = ctx.Process(
        target=echo, args=(impl, there_rx, back_tx, cpus[1]), daemon=True
    )
    child.start()
    put, get = sender(impl, there_tx), receiver(impl, back_rx)
    msg = b"\xa5" * size
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
    put(END)
    get()
    child.join(30)
    if bytes(back) != msg:
        raise RuntimeError("the echo process sent back other bytes")
    samples.sort()
    return {
        "p50_ns": percentile(samples, 0.50),
        "p99_ns": percentile(samples, 0.99),
        "round_trips": len(samples),
    }


def check():
    try:
        import faster_fifo  # noqa: F401

        ff = True
    except ImportError:
        ff = False
    return {"python": sys.version.split()[0], "faster_fifo": ff}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check")
    run = sub.add_parser("run")
    run.add_argument(
        "--impl",
        required=True,
        choices=["mp-queue", "mp-simplequeue", "mp-pipe", "faster-fifo"],
    )
    run.add_argument("--pattern", required=True, choices=["throughput", "ping-pong"])
    run.add_argument("--size", type=int, required=True)
    run.add_argument("--time-ms", type=int, default=400)
    run.add_argument("--cpus", default=None, help="A,B: this process on A, the child on B")
    args = parser.parse_args()
    try:
        if args.command == "check":
            out = check()
        else:
            if args.size < 1:
                raise ValueError("messages need at least one byte")
            cpus = [None, None]
            if args.cpus:
                cpus = [int(c) for c in args.cpus.split(",")][:2]
            pin(cpus[0])
            ctx = mp.get_context("fork")
            seconds = args.time_ms / 1000.0
            if args.pattern == "throughput":
                out = throughput(args.impl, args.size, seconds, cpus, ctx)
            else:
                out = ping_pong(args.impl, args.size, seconds, cpus, ctx)
    except Exception as e:  # reported to the caller as JSON
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
