//! The progress line `shoal bench` keeps on stderr while it measures.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

/// What starting a peer and warming up adds to each step's measuring budget, roughly.
const STEP_OVERHEAD: Duration = Duration::from_millis(15);

/// A one-line progress report, rewritten in place; silent when stderr is not a
/// terminal (logs and pipes get no carriage returns).
#[derive(Debug)]
pub(crate) struct Progress {
    total: usize,
    done: usize,
    per_step: Duration,
    visible: bool,
    width: usize,
}

impl Progress {
    /// A progress line for `total` steps of about `budget` each.
    pub(crate) fn new(total: usize, budget: Duration) -> Progress {
        Progress {
            total,
            done: 0,
            per_step: budget + STEP_OVERHEAD,
            visible: io::stderr().is_terminal(),
            width: 0,
        }
    }

    /// Starts the next step, described by `what`.
    pub(crate) fn step(&mut self, what: &str) {
        self.done += 1;
        if !self.visible {
            return;
        }
        let left = self.per_step * (self.total - self.done + 1) as u32;
        let line = format!(
            "[{:>3}/{}] {what} (about {} s left)",
            self.done,
            self.total,
            left.as_secs_f64().ceil()
        );
        let pad = self.width.saturating_sub(line.chars().count());
        self.width = line.chars().count();
        // Progress is best effort: a failed write to stderr must not fail the benchmark.
        let _ = write!(io::stderr(), "\r{line}{:pad$}", "");
    }

    /// Erases the line.
    pub(crate) fn finish(&mut self) {
        if self.visible && self.width > 0 {
            let _ = write!(io::stderr(), "\r{:w$}\r", "", w = self.width);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // On an error the message starts on a clean line.
        self.finish();
        self.width = 0;
    }
}
