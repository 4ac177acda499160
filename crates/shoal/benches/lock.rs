//! Uncontended acquire + release: shoal's robust `Lock` against `std::sync::Mutex`.
//!
//! The figure to read is the ratio between the two, measured in the same run.
#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended acquire+release");
    let std_mutex = std::sync::Mutex::new(());
    group.bench_function("std::sync::Mutex", |b| {
        b.iter(|| drop(black_box(&std_mutex).lock()))
    });
    let lock = shoal::Lock::new().expect("a lock");
    group.bench_function("shoal::Lock", |b| {
        b.iter(|| drop(black_box(&lock).acquire()))
    });
    let rlock = shoal::RLock::new().expect("an rlock");
    group.bench_function("shoal::RLock", |b| {
        b.iter(|| drop(black_box(&rlock).acquire()))
    });
    group.finish();
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
