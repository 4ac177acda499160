//! Queue and Pipe throughput between two threads, against `std::sync::mpsc::sync_channel` and an
//! OS pipe (one write and one read per message) measured in the same run.
//!
//! `cargo bench -p shoal --bench channel` runs the criterion groups, then prints a
//! summary table: medians of 3 runs of `SUMMARY_MESSAGES` messages, in msg/s, and the
//! ratios of `Queue` to each baseline, then ping-pong round trips and 1 MiB messages.
//! `-- --summary-only` skips criterion; `SHOAL_BENCH_PIN=1` pins the two sides to CPUs 0
//! and 1; `SHOAL_BENCH_ONLY=<name>` restricts the baselines; `SHOAL_BENCH_RING=<bytes>`
//! sets the ring of the 1 MiB runs.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::io::{Read, Write};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shoal::channel::{Pipe, Queue};

const SUMMARY_MESSAGES: u64 = 2_000_000;
const SIZES: [usize; 2] = [8, 64];

/// Sends `n` messages of `size` bytes from a new thread to this one; returns the time.
fn queue_1to1(size: usize, n: u64) -> Duration {
    let q: Queue<()> = Queue::new().unwrap();
    let tx = q.clone();
    pin(0);
    let producer = spawn_pinned(move || {
        let msg = vec![7u8; size];
        for _ in 0..n {
            tx.put_bytes(&msg).unwrap();
        }
    });
    let start = Instant::now();
    let mut buf = Vec::with_capacity(size);
    for _ in 0..n {
        q.get_bytes_into(&mut buf).unwrap();
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

/// As `queue_1to1`, in batches of 64 (one claim per batch on each side).
fn queue_batched_1to1(size: usize, n: u64) -> Duration {
    const BATCH: usize = 64;
    let q: Queue<()> = Queue::new().unwrap();
    let tx = q.clone();
    pin(0);
    let producer = spawn_pinned(move || {
        let msg = vec![7u8; size];
        let batch: Vec<&[u8]> = vec![&msg[..]; BATCH];
        let mut left = n as usize;
        while left > 0 {
            let k = left.min(BATCH);
            tx.put_bytes_many(&batch[..k]).unwrap();
            left -= k;
        }
    });
    let start = Instant::now();
    let mut got = 0u64;
    while got < n {
        got += q
            .get_bytes_with(BATCH, None, |m| {
                std::hint::black_box(m);
            })
            .unwrap() as u64;
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

fn mpsc_1to1(size: usize, n: u64) -> Duration {
    let (tx, rx) = sync_channel::<Vec<u8>>(4096);
    pin(0);
    let producer = spawn_pinned(move || {
        for _ in 0..n {
            tx.send(vec![7u8; size]).unwrap();
        }
    });
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(rx.recv().unwrap());
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

/// Pins the calling thread to CPU `cpu` when `SHOAL_BENCH_PIN=1` (the two sides of each
/// run then have a CPU each, as on a machine with idle cores).
///
/// `shoal::process::set_cpu_affinity` pins a whole process, so one thread is pinned by
/// its kernel thread id (`/proc/thread-self`) through `taskset`; `SHOAL_BENCH_PIN=same`
/// instead puts the whole benchmark on CPU 0 with `set_cpu_affinity` (both sides share
/// one CPU, the case where a waiter must sleep at once).
fn pin(cpu: usize) {
    match std::env::var("SHOAL_BENCH_PIN").as_deref() {
        Ok("same") => shoal::process::set_cpu_affinity(&[0]).expect("pin to CPU 0"),
        Ok(_) => {
            let me = std::fs::read_link("/proc/thread-self").expect("read /proc/thread-self");
            let tid = me
                .file_name()
                .expect("a thread id")
                .to_string_lossy()
                .into_owned();
            let status = std::process::Command::new("taskset")
                .args(["-p", "-c", &cpu.to_string(), &tid])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run taskset");
            assert!(
                status.success(),
                "taskset could not pin thread {tid} to CPU {cpu}"
            );
        }
        Err(_) => {}
    }
}

/// Starts `body` on a new thread pinned to CPU 1 (see [`pin`]) and returns once it is
/// pinned, so that the caller starts its clock after the pinning, not before.
fn spawn_pinned<T: Send + 'static>(
    body: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ready = std::sync::Arc::new(std::sync::Barrier::new(2));
    let ready2 = std::sync::Arc::clone(&ready);
    let handle = std::thread::spawn(move || {
        pin(1);
        ready2.wait();
        body()
    });
    ready.wait();
    handle
}

/// An anonymous pipe as its two ends (read end, write end).
fn os_pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    std::io::pipe().expect("create an OS pipe")
}

fn pipe_1to1(size: usize, n: u64) -> Duration {
    let (mut r, mut w) = os_pipe();
    pin(0);
    let producer = spawn_pinned(move || {
        let msg = vec![7u8; size];
        for _ in 0..n {
            w.write_all(&msg).unwrap();
        }
    });
    let start = Instant::now();
    let mut buf = vec![0u8; size];
    for _ in 0..n {
        r.read_exact(&mut buf).unwrap();
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

/// Sends `n` messages of `size` bytes through a one-way shoal `Pipe`; returns the time.
fn shoal_pipe_1to1(size: usize, n: u64) -> Duration {
    let (tx, rx) = Pipe::simplex().unwrap();
    pin(0);
    let producer = spawn_pinned(move || {
        let msg = vec![7u8; size];
        for _ in 0..n {
            tx.send_bytes(&msg).unwrap();
        }
    });
    let start = Instant::now();
    let mut buf = vec![0u8; size];
    for _ in 0..n {
        rx.recv_bytes_into(&mut buf).unwrap();
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

type Transport = (&'static str, fn(usize, u64) -> Duration);
const TRANSPORTS: [Transport; 5] = [
    ("shoal Queue", queue_1to1),
    ("shoal Queue batch 64", queue_batched_1to1),
    ("shoal Pipe", shoal_pipe_1to1),
    ("std mpsc sync_channel", mpsc_1to1),
    ("OS pipe", pipe_1to1),
];

fn bench(c: &mut Criterion) {
    for size in SIZES {
        let mut g = c.benchmark_group(format!("1to1_{size}B"));
        g.throughput(Throughput::Elements(1));
        g.measurement_time(Duration::from_secs(3));
        g.warm_up_time(Duration::from_millis(500));
        for (name, f) in TRANSPORTS {
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| f(size, iters))
            });
        }
        g.finish();
    }
}

fn rate(f: fn(usize, u64) -> Duration, size: usize) -> f64 {
    let mut runs: Vec<f64> = (0..3)
        .map(|_| SUMMARY_MESSAGES as f64 / f(size, SUMMARY_MESSAGES).as_secs_f64())
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

fn summary() {
    println!("\nmedian of 3 runs, {SUMMARY_MESSAGES} messages, one producer thread -> one consumer thread");
    println!(
        "{:<24} {:>6} {:>14} {:>12}",
        "transport", "size", "msg/s", "Queue is"
    );
    for size in SIZES {
        // `SHOAL_BENCH_ONLY=Queue` measures only the transports whose name contains it.
        let only = std::env::var("SHOAL_BENCH_ONLY").unwrap_or_default();
        let rates: Vec<(&str, f64)> = TRANSPORTS
            .iter()
            .filter(|(n, _)| n.contains(only.as_str()) || n.contains("Queue"))
            .map(|(n, f)| (*n, rate(*f, size)))
            .collect();
        let queue = rates[0].1;
        for (name, r) in &rates {
            let ratio = if *name == "shoal Queue" {
                String::new()
            } else if name.starts_with("shoal Queue") {
                format!("{:.2}x of it", r / queue)
            } else {
                format!("{:.1}x", queue / r)
            };
            println!("{name:<24} {size:>5}B {:>14.0} {ratio:>12}", r);
        }
    }
}

/// Large messages: `n` messages of `size` bytes, copying put vs in-place reservation,
/// against an OS pipe; returns the time.
/// Ring bytes for the large-message runs: `SHOAL_BENCH_RING`, or 4 messages.
fn ring_bytes(size: usize) -> usize {
    std::env::var("SHOAL_BENCH_RING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4 * size)
}

fn large_queue(size: usize, n: u64, in_place: bool) -> Duration {
    let q: Queue<()> = Queue::builder()
        .capacity_bytes(ring_bytes(size))
        .cell_size(4096)
        .build()
        .unwrap();
    let tx = q.clone();
    pin(0);
    let producer = spawn_pinned(move || {
        let msg = vec![7u8; size];
        for _ in 0..n {
            if in_place {
                use std::io::Write;
                let mut slot = tx.reserve(size).unwrap();
                slot.write_all(&msg).unwrap();
                slot.commit();
            } else {
                tx.put_bytes(&msg).unwrap();
            }
        }
    });
    let start = Instant::now();
    let mut buf = Vec::with_capacity(size);
    for _ in 0..n {
        q.get_bytes_into(&mut buf).unwrap();
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

fn large_pipe(size: usize, n: u64) -> Duration {
    let (mut r, mut w) = os_pipe();
    pin(0);
    let producer = spawn_pinned(move || {
        let msg = vec![7u8; size];
        for _ in 0..n {
            w.write_all(&msg).unwrap();
        }
    });
    let start = Instant::now();
    let mut buf = vec![0u8; size];
    for _ in 0..n {
        r.read_exact(&mut buf).unwrap();
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

fn large_summary() {
    const SIZE: usize = 1 << 20;
    const N: u64 = 1000;
    let gbps = |f: &dyn Fn() -> Duration| {
        let mut runs: Vec<f64> = (0..3)
            .map(|_| (SIZE as u64 * N) as f64 / f().as_secs_f64() / 1e9)
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[1]
    };
    let copy = gbps(&|| large_queue(SIZE, N, false));
    let fits = Queue::builder()
        .capacity_bytes(ring_bytes(SIZE))
        .cell_size(4096)
        .build()
        .is_ok_and(|q: Queue<()>| q.max_reserve() >= SIZE);
    let in_place = if fits {
        gbps(&|| large_queue(SIZE, N, true))
    } else {
        f64::NAN
    };
    let pipe = gbps(&|| large_pipe(SIZE, N));
    println!(
        "\n1 MiB messages, median of 3 runs of {N}, GB/s ({} KiB ring of 4 KiB cells)",
        ring_bytes(SIZE) / 1024
    );
    println!("{:<32} {:>8.2}", "shoal Queue put_bytes (copy)", copy);
    println!(
        "{:<32} {:>8.2} {:>8.2}x copy",
        "shoal Queue reserve (in place)",
        in_place,
        in_place / copy
    );
    println!(
        "{:<32} {:>8.2} {:>8.2}x Queue is",
        "OS pipe",
        pipe,
        copy / pipe
    );
}

/// Ping-pong round trips of 64-byte messages between two threads that both keep
/// spinning (the peer is busy): p50 and p99 in nanoseconds.
fn ping_pong_queue(rounds: usize) -> (f64, f64) {
    let ab: Queue<()> = Queue::new().unwrap();
    let ba: Queue<()> = Queue::new().unwrap();
    let (ab2, ba2) = (ab.clone(), ba.clone());
    pin(0);
    let peer = spawn_pinned(move || {
        let mut buf = Vec::with_capacity(64);
        for _ in 0..rounds {
            ab2.get_bytes_into(&mut buf).unwrap();
            ba2.put_bytes(&buf).unwrap();
        }
    });
    let msg = [1u8; 64];
    let mut buf = Vec::with_capacity(64);
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        ab.put_bytes(&msg).unwrap();
        ba.get_bytes_into(&mut buf).unwrap();
        times.push(t.elapsed().as_nanos() as f64);
    }
    peer.join().unwrap();
    percentiles(times)
}

/// As `ping_pong_queue`, over a duplex shoal `Pipe`.
fn ping_pong_shoal_pipe(rounds: usize) -> (f64, f64) {
    let (a, b) = Pipe::duplex().unwrap();
    pin(0);
    let peer = spawn_pinned(move || {
        let mut buf = [0u8; 64];
        for _ in 0..rounds {
            let n = b.recv_bytes_into(&mut buf).unwrap();
            b.send_bytes(&buf[..n]).unwrap();
        }
    });
    let msg = [1u8; 64];
    let mut buf = [0u8; 64];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        a.send_bytes(&msg).unwrap();
        a.recv_bytes_into(&mut buf).unwrap();
        times.push(t.elapsed().as_nanos() as f64);
    }
    peer.join().unwrap();
    percentiles(times)
}

fn ping_pong_pipe(rounds: usize) -> (f64, f64) {
    let (mut r1, mut w1) = os_pipe();
    let (mut r2, mut w2) = os_pipe();
    pin(0);
    let peer = spawn_pinned(move || {
        let mut buf = [0u8; 64];
        for _ in 0..rounds {
            r1.read_exact(&mut buf).unwrap();
            w2.write_all(&buf).unwrap();
        }
    });
    let msg = [1u8; 64];
    let mut buf = [0u8; 64];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        w1.write_all(&msg).unwrap();
        r2.read_exact(&mut buf).unwrap();
        times.push(t.elapsed().as_nanos() as f64);
    }
    peer.join().unwrap();
    percentiles(times)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn ping_pong_summary() {
    const ROUNDS: usize = 200_000;
    let (q50, q99) = ping_pong_queue(ROUNDS);
    let (s50, s99) = ping_pong_shoal_pipe(ROUNDS);
    let (p50, p99) = ping_pong_pipe(ROUNDS / 10);
    println!("\nping-pong round trip, 64 B, two threads, ns");
    println!("{:<24} {:>10} {:>10}", "transport", "p50", "p99");
    println!("{:<24} {:>10.0} {:>10.0}", "shoal Queue", q50, q99);
    println!("{:<24} {:>10.0} {:>10.0}", "shoal Pipe", s50, s99);
    println!("{:<24} {:>10.0} {:>10.0}", "OS pipe", p50, p99);
}

criterion_group!(benches, bench);

fn main() {
    let summary_only = std::env::args().any(|a| a == "--summary-only");
    if !summary_only {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    summary();
    ping_pong_summary();
    large_summary();
}
