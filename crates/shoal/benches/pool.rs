//! Pool overhead: a trivial task through `map` with chunk size 1 (per-task cost of the
//! whole path: encode, dispatch, run, return, decode), and `map` with automatic chunking
//! over 10 M trivial items (items/s). Python's `multiprocessing.Pool(2).map` is measured
//! in the same run when `python3` is on the path.
//!
//! `cargo bench -p shoal --bench pool` runs the criterion group, then prints a summary:
//! medians of 3 runs. `-- --summary-only` skips criterion; `-- --auto-only` runs only
//! the automatic-chunking figure (for profiling).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use shoal::Pool;

const PROCESSES: usize = 2;
const CHUNK1_TASKS: u64 = 200_000;
const AUTO_ITEMS: u64 = 10_000_000;

fn noop(x: u64) -> u64 {
    x
}
shoal::task!(noop);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Seconds per task of `map(noop)` at chunk size 1.
fn chunk1(pool: &Pool, n: u64) -> f64 {
    let t = Instant::now();
    let out = pool.map(noop, 0..n).unwrap();
    let e = t.elapsed();
    assert_eq!(out.len() as u64, n);
    e.as_secs_f64() / n as f64
}

/// Items per second of `map(noop)` with automatic chunking.
fn auto(pool: &Pool, n: u64) -> f64 {
    let t = Instant::now();
    let out = pool.map(noop, 0..n).unwrap();
    let e = t.elapsed();
    assert_eq!(out.len() as u64, n);
    assert_eq!(out[n as usize - 1], n - 1);
    n as f64 / e.as_secs_f64()
}

/// Seconds per task of `apply_async(noop)` × n, then `get` of each.
fn submit(pool: &Pool, n: u64) -> f64 {
    let t = Instant::now();
    let rs: Vec<_> = (0..n).map(|i| pool.apply_async(noop, i)).collect();
    for (i, r) in rs.into_iter().enumerate() {
        assert_eq!(r.get().unwrap(), i as u64);
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// Seconds per `apply(noop)` one after the other (a round trip each).
fn round_trip(pool: &Pool, n: u64) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        assert_eq!(pool.apply(noop, i).unwrap(), i);
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// Python's `Pool(2).map(f, range(n), chunksize=1)`, seconds per task, if python3 runs.
fn python_chunk1(n: u64) -> Option<f64> {
    let script = format!(
        "import multiprocessing as mp, time\n\
         def f(x):\n    return x\n\
         if __name__ == '__main__':\n\
         \x20   with mp.Pool({PROCESSES}) as p:\n\
         \x20       p.map(f, range(1000), chunksize=1)\n\
         \x20       t = time.perf_counter()\n\
         \x20       p.map(f, range({n}), chunksize=1)\n\
         \x20       print((time.perf_counter() - t) / {n})\n"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn bench(c: &mut Criterion) {
    let pool1 = Pool::builder()
        .processes(PROCESSES)
        .chunksize(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("pool");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("map chunksize=1, 10k trivial tasks", |b| {
        b.iter(|| pool1.map(noop, 0..10_000u64).unwrap())
    });
    let pool = Pool::new(PROCESSES).unwrap();
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("map auto chunks, 1M trivial items", |b| {
        b.iter(|| pool.map(noop, 0..1_000_000u64).unwrap())
    });
    g.finish();
}

fn summary() {
    if std::env::args().any(|a| a == "--auto-only") {
        // For profiling the chunked path alone.
        let pool = Pool::new(PROCESSES).unwrap();
        let rate = median((0..3).map(|_| auto(&pool, AUTO_ITEMS)).collect());
        println!("map(auto chunks): {:.2} M items/s", rate / 1e6);
        return;
    }
    let pool1 = Pool::builder()
        .processes(PROCESSES)
        .chunksize(1)
        .build()
        .unwrap();
    chunk1(&pool1, 10_000); // warm up
    let per_task = median((0..3).map(|_| chunk1(&pool1, CHUNK1_TASKS)).collect());
    let per_submit = median((0..3).map(|_| submit(&pool1, 100_000)).collect());
    let per_apply = median((0..3).map(|_| round_trip(&pool1, 2_000)).collect());
    drop(pool1);
    let pool = Pool::new(PROCESSES).unwrap();
    auto(&pool, 100_000);
    let rate = median((0..3).map(|_| auto(&pool, AUTO_ITEMS)).collect());
    drop(pool);
    println!("\npool, {PROCESSES} workers, medians of 3 runs");
    println!(
        "map(chunksize=1), {CHUNK1_TASKS} trivial tasks: {:>8.3} us/task",
        per_task * 1e6
    );
    match python_chunk1(100_000) {
        Some(py) => println!(
            "python Pool.map(chunksize=1), same run:  {:>8.3} us/task  (shoal {:.1}x faster)",
            py * 1e6,
            py / per_task
        ),
        None => println!("python Pool.map(chunksize=1): python3 not available"),
    }
    println!(
        "apply_async x 100000, then get:          {:>8.3} us/task",
        per_submit * 1e6
    );
    println!(
        "apply, one at a time (round trip):        {:>8.3} us/task",
        per_apply * 1e6
    );
    println!(
        "map(auto chunks), {AUTO_ITEMS} trivial items: {:>8.2} M items/s",
        rate / 1e6
    );
}

criterion_group!(benches, bench);

fn main() {
    let summary_only = std::env::args().any(|a| a == "--summary-only" || a == "--auto-only");
    if !summary_only {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    summary();
}
