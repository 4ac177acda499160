//! A lock around a critical section: four processes each add to a shared counter
//! 1000 times, read-modify-write under the lock, and no update is lost.
//!
//! Output:
//! counter: 4000

use shoal::{Lock, Value};

/// Adds one to `counter` 1000 times, each under `lock`.
fn add((counter, lock): (Value<u64>, Lock)) {
    for _ in 0..1000 {
        let _held = lock.acquire().expect("the lock");
        let v = counter.load();
        counter.store(v + 1);
    }
}
shoal::entry!(add);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counter = Value::without_lock(0u64)?;
    let lock = Lock::new()?;
    let children = (0..4)
        .map(|_| shoal::Process::new(add, (counter.clone(), lock.clone())).start())
        .collect::<Result<Vec<_>, _>>()?;
    for child in children {
        child.join()?;
    }
    println!("counter: {}", counter.load());
    Ok(())
}
