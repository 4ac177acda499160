//! Locks and shared values passed to child processes, for every start method.

use std::thread;
use std::time::{Duration, Instant};

use shoal::{Lock, Process, Value};

mod common;
use common::{watchdog, Reap, METHODS};

fn increment((counter, times): (Value<u64>, u32)) {
    for _ in 0..times {
        *counter.lock().unwrap() += 1;
    }
}
shoal::entry!(increment);

fn hold_until_killed((lock, holding): (Lock, Value<u32>)) {
    let guard = lock.acquire().unwrap();
    holding.store(1);
    thread::sleep(Duration::from_secs(600));
    drop(guard);
}
shoal::entry!(hold_until_killed);

#[test]
fn children_increment_a_locked_value() {
    watchdog(|| {
        let counter = Value::new(0u64).unwrap();
        let children: Vec<Process> = METHODS
            .into_iter()
            .cycle()
            .take(6)
            .map(|m| {
                Process::new(increment, (counter.clone(), 500))
                    .start_method(m)
                    .start()
                    .unwrap()
            })
            .collect();
        for c in &children {
            assert_eq!(c.join().unwrap(), 0, "{:?}", c.start_method());
        }
        assert_eq!(counter.load(), 6 * 500);
    });
}

#[test]
fn lock_of_a_killed_child_reports_owner_died() {
    watchdog(|| {
        for method in METHODS {
            let lock = Lock::new().unwrap();
            let holding = Value::without_lock(0u32).unwrap();
            let child = Reap(
                Process::new(hold_until_killed, (lock.clone(), holding.clone()))
                    .start_method(method)
                    .start()
                    .unwrap(),
            );
            let t = Instant::now();
            while holding.load() == 0 {
                assert!(t.elapsed() < Duration::from_secs(30), "{method:?}");
                thread::sleep(Duration::from_millis(2));
            }
            assert!(lock.is_locked());
            child.0.kill().unwrap();
            assert_eq!(child.0.join().unwrap(), -9);
            let died = lock.acquire().unwrap_err();
            drop(died.into_inner());
            assert!(!lock.is_locked(), "{method:?}");
        }
    });
}
