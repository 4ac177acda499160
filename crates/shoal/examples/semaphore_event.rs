//! Five workers wait for one event, then run at most two at a time under a semaphore.
//!
//! Output:
//! at most 2 at once: true
//! results: [0, 1, 4, 9, 16]

use std::time::Duration;

use shoal::{Array, Event, Process, Semaphore, Value};

type Args = (usize, Semaphore, Event, Value<u32>, Value<u32>, Array<u64>);

fn work((i, sem, go, running, peak, results): Args) {
    go.wait();
    let _slot = sem.acquire();
    {
        let mut r = running.lock().expect("a lock, no holder died");
        *r += 1;
        let mut p = peak.lock().expect("a lock, no holder died");
        *p = (*p).max(*r);
    }
    std::thread::sleep(Duration::from_millis(20));
    results.set(i, (i * i) as u64).expect("in range");
    *running.lock().expect("a lock, no holder died") -= 1;
}
shoal::entry!(work);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sem = Semaphore::new(2)?;
    let go = Event::new()?;
    let (running, peak) = (Value::new(0u32)?, Value::new(0u32)?);
    let results = Array::new(&[0u64; 5])?;
    let workers = (0..5)
        .map(|i| {
            let args = (
                i,
                sem.clone(),
                go.clone(),
                running.clone(),
                peak.clone(),
                results.clone(),
            );
            Process::new(work, args).start()
        })
        .collect::<Result<Vec<_>, _>>()?;
    go.set();
    for w in &workers {
        w.join()?;
    }
    println!("at most 2 at once: {}", peak.load() <= 2);
    println!("results: {:?}", results.to_vec());
    Ok(())
}
