//! Parallel processing with a result queue: four workers square their slice of
//! 0..1000 and send back partial sums.
//!
//! Output:
//! sum of squares of 0..999: 332833500

use shoal::{Process, Queue};

fn squares((start, out): (u64, Queue<u64>)) {
    out.put((start..1000).step_by(4).map(|x| x * x).sum())
        .expect("put");
}
shoal::entry!(squares);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: Queue<u64> = Queue::new()?;
    let workers = (0..4)
        .map(|s| Process::new(squares, (s, out.clone())).start())
        .collect::<Result<Vec<_>, _>>()?;
    let total: u64 = (0..4).map(|_| out.get()).sum::<Result<u64, _>>()?;
    for w in &workers {
        w.join()?;
    }
    println!("sum of squares of 0..999: {total}");
    Ok(())
}
