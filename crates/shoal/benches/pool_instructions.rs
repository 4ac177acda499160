//! The pool's chunk path, counted by callgrind: the program that
//! `scripts/callgrind-pool.sh` runs under `valgrind --tool=callgrind` to count the
//! instructions one item of `map` costs in the parent and in the workers, a measure the
//! machine's noise does not move.
//!
//! `pool_instructions <n>` runs one `map` of a trivial task over `n` items in a pool of
//! two workers started with `StartMethod::Fork` (so that callgrind follows the workers:
//! they are the same program image, and each writes its own count). Chunks hold 4 096
//! items: what automatic chunking chooses for a trivial task over more than 32 768
//! items (`shoal bench pool-map`). Left automatic, chunks would follow the pace of
//! tasks slowed fifty times by callgrind, and shrink to a few hundred items. The script runs it twice (`n` and `2n`) and divides the difference
//! of the two totals by `n`, which cancels the cost of starting the pool. Without
//! arguments (as `cargo bench` runs it) it maps a few items, a smoke test.
#![allow(missing_docs)]

use shoal::process::StartMethod;
use shoal::Pool;

/// The chunk size of automatic chunking for a trivial task over many items.
const CHUNK: usize = 4096;

fn identity(x: u64) -> u64 {
    x
}
shoal::task!(identity);

fn run(n: u64) -> Result<(), String> {
    let pool = Pool::builder()
        .processes(2)
        .chunksize(CHUNK)
        .start_method(StartMethod::Fork)
        .build()
        .map_err(|e| format!("could not start the pool: {e}"))?;
    let out = pool
        .map(identity, 0..n)
        .map_err(|e| format!("map failed: {e}"))?;
    if out.len() as u64 != n || out.iter().enumerate().any(|(i, &x)| x != i as u64) {
        return Err(format!("map of {n} items gave wrong results"));
    }
    pool.close();
    pool.join().map_err(|e| format!("join failed: {e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [n] if !n.starts_with('-') => match n.parse::<u64>() {
            Ok(n) => run(n),
            Err(e) => Err(format!("`{n}` is not a number of items: {e}")),
        },
        // `cargo bench` (which passes `--bench`) or no arguments: a few items.
        _ => run(10_000),
    };
    if let Err(e) = result {
        eprintln!("pool_instructions: {e}");
        std::process::exit(2);
    }
}
