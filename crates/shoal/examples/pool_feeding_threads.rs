//! A process pool feeding a thread pool: CPU work in worker processes, their results
//! handed as they come (`imap`) to threads that do the (here simulated) I/O.
//!
//! Output:
//! stored 20 results, total 7100

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

fn cube(x: u64) -> u64 {
    x * x * x % 1000
}
shoal::task!(cube);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = shoal::Pool::builder().processes(2).build()?;
    let (tx, rx) = mpsc::channel::<u64>();
    let rx = Arc::new(Mutex::new(rx));
    let stored = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (rx, stored) = (Arc::clone(&rx), Arc::clone(&stored));
            std::thread::spawn(move || loop {
                let next = rx.lock().expect("the receiver").recv();
                match next {
                    Ok(v) => stored.lock().expect("the results").push(v),
                    Err(_) => return,
                }
            })
        })
        .collect();
    for r in pool.imap(cube, 0..20u64) {
        tx.send(r?)?;
    }
    drop(tx);
    for t in threads {
        t.join().expect("a store thread");
    }
    let stored = stored.lock().expect("the results");
    println!(
        "stored {} results, total {}",
        stored.len(),
        stored.iter().sum::<u64>()
    );
    Ok(())
}
