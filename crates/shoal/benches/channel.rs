//! Queue throughput between two threads, against `std::sync::mpsc::sync_channel` and an
//! OS pipe (one write and one read per message) measured in the same run.
//!
//! `cargo bench -p shoal --bench channel` runs the criterion groups, then prints a
//! summary table: medians of 3 runs of `SUMMARY_MESSAGES` messages, in msg/s, and the
//! ratios of `Queue` to each baseline. `-- --summary-only` skips criterion.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::io::{Read, Write};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shoal::channel::Queue;

const SUMMARY_MESSAGES: u64 = 2_000_000;
const SIZES: [usize; 2] = [8, 64];

/// Sends `n` messages of `size` bytes from a new thread to this one; returns the time.
fn queue_1to1(size: usize, n: u64) -> Duration {
    let q: Queue<()> = Queue::new().unwrap();
    let tx = q.clone();
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let msg = vec![7u8; size];
        for _ in 0..n {
            tx.put_bytes(&msg).unwrap();
        }
    });
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
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let msg = vec![7u8; size];
        let batch: Vec<&[u8]> = vec![&msg[..]; BATCH];
        let mut left = n as usize;
        while left > 0 {
            let k = left.min(BATCH);
            tx.put_bytes_many(&batch[..k]).unwrap();
            left -= k;
        }
    });
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
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        for _ in 0..n {
            tx.send(vec![7u8; size]).unwrap();
        }
    });
    for _ in 0..n {
        std::hint::black_box(rx.recv().unwrap());
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

/// An anonymous pipe as two files (read end, write end).
fn os_pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` is an array of two ints, as pipe2 requires.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(ret, 0, "pipe2 failed: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 just returned these two descriptors; nothing else owns them.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

fn pipe_1to1(size: usize, n: u64) -> Duration {
    let (mut r, mut w) = os_pipe();
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let msg = vec![7u8; size];
        for _ in 0..n {
            w.write_all(&msg).unwrap();
        }
    });
    let mut buf = vec![0u8; size];
    for _ in 0..n {
        r.read_exact(&mut buf).unwrap();
    }
    let t = start.elapsed();
    producer.join().unwrap();
    t
}

type Transport = (&'static str, fn(usize, u64) -> Duration);
const TRANSPORTS: [Transport; 4] = [
    ("shoal Queue", queue_1to1),
    ("shoal Queue batch 64", queue_batched_1to1),
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
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
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
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let msg = vec![7u8; size];
        for _ in 0..n {
            w.write_all(&msg).unwrap();
        }
    });
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

criterion_group!(benches, bench);

fn main() {
    let summary_only = std::env::args().any(|a| a == "--summary-only");
    if !summary_only {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    summary();
    large_summary();
}
