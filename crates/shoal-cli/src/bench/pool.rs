//! `shoal::Pool`: the cost of handing out tasks, and how fast automatic chunking
//! moves many small items.
//!
//! * Per-task overhead (`pool-task`): `map` of a trivial task over batches of items
//!   with chunksize 1 (every item its own message to a worker and back) on a pool of
//!   two workers, repeated for the budget: tasks per second, shown as µs per task.
//!   The baseline (`os-pipe`) is the hand-rolled form: one worker process answering one
//!   8-byte request per task over a pipe, round trip after round trip. With `--python`
//!   the same run measures `multiprocessing.Pool(2).map(f, range(n), chunksize=1)` and
//!   `concurrent.futures.ProcessPoolExecutor(2)` `submit` + `result`, and the package
//!   `shoal`'s `Pool(2).map(f, range(n), chunksize=1)`.
//! * Automatic chunking (`pool-map`): one `map` of the trivial task over 10 M items
//!   (1 M with `--quick`), the chunk size left to the pool: items per second. The
//!   baseline (`os-pipe`) moves the items and their results through a pipe to a worker
//!   process and back in 64 KiB round trips (8192 items each): the cost of moving the
//!   bytes, with no task and no scheduling. With `--python`, `multiprocessing.Pool(2)`
//!   and the package `shoal`'s `Pool(2)` each `map` batches of items from Python,
//!   chunked by the pool.
//! * One call's round trip (`pool-submit`, `--python` only): `submit(f, x).result()`,
//!   one at a time, through the package `shoal`'s `futures.ProcessPoolExecutor(2)` and
//!   through the standard library's (the baseline).
//!
//! The pool's workers and Python's are not pinned: the parent widens its CPUs to all
//! it may use for these cases, and each shoal worker does the same in its initializer
//! (a worker started by the forkserver inherits the forkserver's CPUs).

use std::io::{Read, Write};
use std::time::Instant;

use anyhow::{bail, Context};
use shoal::process::set_cpu_affinity;
use shoal::Pool;

use crate::bench::case::{Case, Pattern};
use crate::bench::measure::Measure;
use crate::bench::stream::Link;
use crate::bench::transport::{combine, Transport};
use crate::bench::{python, Conditions};

/// Items of one `map` call of the per-task case.
const TASK_BATCH: u64 = 5_000;
/// Items of the automatic-chunking case.
const MAP_ITEMS: u64 = 10_000_000;
/// Items of the automatic-chunking case with `--quick`.
const MAP_ITEMS_QUICK: u64 = 1_000_000;
/// Bytes per round trip of the automatic-chunking baseline (8-byte items).
const BASELINE_CHUNK: usize = 64 * 1024;

/// The trivial task: returns its input.
pub(crate) fn identity(x: u64) -> u64 {
    x
}
shoal::task!(identity);

/// A worker's initializer: lets the worker run on every CPU in `cpus`.
pub(crate) fn widen(cpus: Vec<usize>) -> Result<(), String> {
    set_cpu_affinity(&cpus).map_err(|e| format!("could not widen the worker's CPUs: {e}"))
}
shoal::entry!(widen);

/// Items of the automatic-chunking case.
pub(crate) fn map_items(quick: bool) -> u64 {
    if quick {
        MAP_ITEMS_QUICK
    } else {
        MAP_ITEMS
    }
}

/// Measures one pool case.
pub(crate) fn measure(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    match case.transport {
        Transport::OsPipe => pipe_baseline(case, how),
        Transport::ShoalPool => {
            let _wide = how.pinned.widen();
            match case.pattern {
                Pattern::PoolTask => per_task(how),
                Pattern::PoolMap => chunked(how),
                other => bail!("the pool does not run {}", other.name()),
            }
        }
        Transport::PyMpPool
        | Transport::PyProcessPoolExecutor
        | Transport::PyShoalPool
        | Transport::PyShoalExecutor => {
            let _wide = how.pinned.widen();
            python::measure(case, how)
        }
        other => bail!("{} is not a pool", other.name()),
    }
}

fn pool(chunksize: Option<usize>, how: &Conditions) -> anyhow::Result<Pool> {
    let mut b = Pool::builder()
        .processes(2)
        .initializer(widen, how.pinned.allowed().to_vec());
    if let Some(n) = chunksize {
        b = b.chunksize(n);
    }
    b.build().context("could not start the pool")
}

/// `map` with chunksize 1 over batches of items, for the budget.
fn per_task(how: &Conditions) -> anyhow::Result<Measure> {
    let pool = pool(Some(1), how)?;
    // The first batch starts the workers' caches and code: not timed.
    check(&pool.map(identity, 0..TASK_BATCH)?, TASK_BATCH)?;
    let mut tasks = 0;
    let start = Instant::now();
    while tasks == 0 || start.elapsed() < how.budget {
        check(&pool.map(identity, 0..TASK_BATCH)?, TASK_BATCH)?;
        tasks += TASK_BATCH;
    }
    let seconds = start.elapsed().as_secs_f64();
    pool.close();
    pool.join().context("could not join the pool")?;
    Ok(Measure::Throughput {
        messages: tasks,
        seconds,
    })
}

/// One `map` over many items, chunked by the pool.
fn chunked(how: &Conditions) -> anyhow::Result<Measure> {
    let pool = pool(None, how)?;
    check(&pool.map(identity, 0..10_000u64)?, 10_000)?;
    let n = map_items(how.quick);
    let start = Instant::now();
    let out = pool.map(identity, 0..n)?;
    let seconds = start.elapsed().as_secs_f64();
    check(&out, n)?;
    pool.close();
    pool.join().context("could not join the pool")?;
    Ok(Measure::Throughput {
        messages: n,
        seconds,
    })
}

/// Whether `out` is `0..n`.
fn check(out: &[u64], n: u64) -> anyhow::Result<()> {
    if out.len() as u64 != n || out.iter().zip(0..).any(|(&a, b)| a != b) {
        bail!("the pool returned other results than 0..{n}");
    }
    Ok(())
}

/// The hand-rolled worker: a peer process echoing over a pipe, one request of
/// `size` bytes (8 per item) per round trip.
fn pipe_baseline(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    let size = match case.pattern {
        Pattern::PoolTask => 8,
        _ => BASELINE_CHUNK,
    };
    let echo = Case {
        transport: Transport::OsPipe,
        pattern: Pattern::PingPong,
        size,
    };
    let (mut link, peer) = Link::spawn(&echo, how)?;
    let measure = (|| -> anyhow::Result<Measure> {
        let mut ready = [0u8; 1];
        link.read_exact(&mut ready)
            .context("the benchmark peer did not start")?;
        let items = (size / 8) as u64;
        let mut request = vec![0u8; size];
        let mut back = vec![0u8; size];
        let mut round_trip = |next: &mut u64| -> anyhow::Result<()> {
            for chunk in request.chunks_exact_mut(8) {
                chunk.copy_from_slice(&next.to_le_bytes());
                *next += 1;
            }
            link.write_all(&request)?;
            link.read_exact(&mut back)?;
            if back != request {
                bail!("the worker sent back other bytes than it received");
            }
            Ok(())
        };
        let mut next = 0;
        for _ in 0..100 {
            round_trip(&mut next)?;
        }
        let (mut done, start) = (0u64, Instant::now());
        while done == 0 || start.elapsed() < how.budget {
            round_trip(&mut next)?;
            done += items;
        }
        Ok(Measure::Throughput {
            messages: done,
            seconds: start.elapsed().as_secs_f64(),
        })
    })()
    .with_context(|| format!("benchmark {} failed", case.name()));
    // Closing our end lets the peer see end-of-file and exit.
    drop(link);
    combine(measure, peer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_checked_in_order() {
        assert!(check(&[0, 1, 2], 3).is_ok());
        assert!(check(&[0, 2, 1], 3).is_err());
        assert!(check(&[0, 1], 3).is_err());
        assert_eq!(map_items(true), MAP_ITEMS_QUICK);
    }
}
