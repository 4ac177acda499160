//! A shared bank account made correct by its lock: two processes deposit, two
//! withdraw; without the lock some updates would be lost.
//!
//! Output:
//! balance 1000

use shoal::{Process, Value};

fn deposit(balance: Value<i64>) {
    for _ in 0..1000 {
        let mut v = balance.lock().expect("a lock, no holder died");
        *v += 2;
    }
}
shoal::entry!(deposit);

fn withdraw(balance: Value<i64>) {
    for _ in 0..1500 {
        let mut v = balance.lock().expect("a lock, no holder died");
        *v -= 1;
    }
}
shoal::entry!(withdraw);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let balance = Value::new(0i64)?;
    let mut ps = Vec::new();
    for _ in 0..2 {
        ps.push(Process::new(deposit, balance.clone()).start()?);
        ps.push(Process::new(withdraw, balance.clone()).start()?);
    }
    for p in &ps {
        p.join()?;
    }
    println!("balance {}", balance.load());
    Ok(())
}
