//! A daemon process that reports heartbeats to its parent; a daemon never outlives
//! its parent (it is killed when the parent exits).
//!
//! Output:
//! heartbeats seen: 3
//! daemon alive before exit: true

use std::time::Duration;

use shoal::Queue;

/// Puts a heartbeat every 10 ms, forever.
fn monitor(beats: Queue<u64>) {
    for n in 1.. {
        if beats.put(n).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
shoal::entry!(monitor);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let beats: Queue<u64> = Queue::new()?;
    let daemon = shoal::Process::new(monitor, beats.clone())
        .daemon(true)
        .start()?;
    let mut seen = 0;
    for _ in 0..3 {
        beats.get_timeout(Duration::from_secs(30))?;
        seen += 1;
    }
    println!("heartbeats seen: {seen}");
    println!("daemon alive before exit: {}", daemon.is_alive());
    Ok(())
}
