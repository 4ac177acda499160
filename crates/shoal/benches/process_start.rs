//! Cost of a child process, per start method, against
//! `std::process::Command::new("/bin/true")` measured in the same run:
//! - `process_start_join`: `start` → the child's (empty) entry → `join`;
//! - `process_start_to_entry`: `start` → the first instruction of the entry, which
//!   writes the wall clock into shared memory (the only clock both processes read).
#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use shoal::process::StartMethod;
use shoal::{Process, SharedMemory};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn stamp(shm: SharedMemory) {
    shm.write(0, &now_ns().to_le_bytes()).unwrap();
}
shoal::entry!(stamp);

fn start_to_entry(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_start_to_entry");
    group.sample_size(30);
    let shm = SharedMemory::new(8).unwrap();
    for (label, method) in [
        ("forkserver", StartMethod::ForkServer),
        ("spawn", StartMethod::Spawn),
        ("fork", StartMethod::Fork),
    ] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = now_ns();
                    let child = Process::new(stamp, shm.clone())
                        .start_method(method)
                        .start()
                        .unwrap();
                    assert_eq!(child.join().unwrap(), 0);
                    let mut buf = [0u8; 8];
                    shm.read(0, &mut buf).unwrap();
                    total += Duration::from_nanos(u64::from_le_bytes(buf).saturating_sub(t0));
                }
                total
            })
        });
    }
    group.finish();
}

fn first_instruction(n: u32) -> i32 {
    black_box(n) as i32
}
shoal::entry!(first_instruction);

fn start_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_start_join");
    group.sample_size(30);
    group.bench_function("command_bin_true", |b| {
        b.iter(|| {
            let status = Command::new("/bin/true").status().unwrap();
            assert!(status.success());
        })
    });
    for (label, method) in [
        ("forkserver", StartMethod::ForkServer),
        ("spawn", StartMethod::Spawn),
        ("fork", StartMethod::Fork),
    ] {
        group.bench_function(label, |b| {
            b.iter(|| {
                let child = Process::new(first_instruction, 0)
                    .start_method(method)
                    .start()
                    .unwrap();
                assert_eq!(child.join().unwrap(), 0);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, start_join, start_to_entry);
criterion_main!(benches);
