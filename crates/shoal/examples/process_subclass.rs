//! Python's "subclass `Process` and override `run`": a struct holds the child's state
//! (the subclass's attributes) and its `run(self)` method is the entry.
//!
//! Output:
//! Worker-1 squares 7: 49
//! exit code 0

use serde::{Deserialize, Serialize};
use shoal::{current_process, Process, SimpleQueue};

/// The subclass: its attributes travel to the child with it.
#[derive(Serialize, Deserialize)]
struct Squarer {
    x: u64,
    results: SimpleQueue<String>,
}

impl Squarer {
    /// The overridden `run`.
    fn run(self) {
        let me = current_process();
        let name = me.name();
        let line = format!("{name} squares {}: {}", self.x, self.x * self.x);
        self.results.put(line).expect("the queue takes it");
    }
}
shoal::entry!(Squarer::run);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let results = SimpleQueue::new()?;
    let worker = Squarer {
        x: 7,
        results: results.clone(),
    };
    let child = Process::new(Squarer::run, worker)
        .name("Worker-1")
        .start()?;
    println!("{}", results.get()?);
    println!("exit code {}", child.join()?);
    Ok(())
}
