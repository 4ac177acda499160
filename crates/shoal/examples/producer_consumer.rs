//! Producer/consumer over a queue, with one sentinel (`None`) per consumer.
//!
//! Output:
//! consumed 100 items, total 4950

use shoal::{Process, Queue};

fn consumer((q, results): (Queue<Option<u64>>, Queue<(u64, u64)>)) {
    let (mut count, mut total) = (0, 0);
    while let Some(item) = q.get().expect("get") {
        count += 1;
        total += item;
    }
    results.put((count, total)).expect("put");
}
shoal::entry!(consumer);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<Option<u64>> = Queue::new()?;
    let results: Queue<(u64, u64)> = Queue::new()?;
    let consumers = (0..2)
        .map(|_| Process::new(consumer, (q.clone(), results.clone())).start())
        .collect::<Result<Vec<_>, _>>()?;
    for i in 0..100 {
        q.put(Some(i))?;
    }
    for _ in &consumers {
        q.put(None)?;
    }
    let (mut count, mut total) = (0, 0);
    for _ in &consumers {
        let (c, t) = results.get()?;
        count += c;
        total += t;
    }
    for c in &consumers {
        c.join()?;
    }
    println!("consumed {count} items, total {total}");
    Ok(())
}
