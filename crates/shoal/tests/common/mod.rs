//! What the integration tests share: a watchdog so that a hang fails the test instead
//! of hanging CI, and a guard that never leaves a child process behind.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use shoal::process::StartMethod;
use shoal::Process;

/// Every start method, for tests that cycle through them.
pub const METHODS: [StartMethod; 3] = [
    StartMethod::Spawn,
    StartMethod::ForkServer,
    StartMethod::Fork,
];

/// How long a test body may run before the watchdog fails it.
pub const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Runs `body` on a thread and returns its value; fails the test (re-raising the
/// body's panic) if the body panics, and fails it if the body takes longer than
/// [`TEST_LIMIT`] (or the given limit).
pub fn watchdog<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_for(TEST_LIMIT, body)
}

/// [`watchdog`] with a limit of `secs` seconds, for the long tests.
pub fn watchdog_secs<T: Send + 'static>(secs: u64, body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_for(Duration::from_secs(secs), body)
}

fn watchdog_for<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(body)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}

/// Polls `cond` every millisecond until it holds; fails after 20 s.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never happened: {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Kills and reaps a child when the test ends, however it ends.
pub struct Reap(pub Process);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join_timeout(Duration::from_secs(10));
    }
}
