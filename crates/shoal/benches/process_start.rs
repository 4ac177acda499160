//! Cost of a child process from `start` to `join` (the child runs an empty entry), per
//! start method, against `std::process::Command::new("/bin/true")` measured in the same
//! run.

use std::hint::black_box;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use shoal::process::StartMethod;
use shoal::Process;

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

criterion_group!(benches, start_join);
criterion_main!(benches);
