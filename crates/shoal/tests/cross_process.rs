//! The synchronisation primitives across real processes: exclusion, robustness when a
//! holder is SIGKILLed, wake-ups and timeouts, and every start method receiving shoal
//! objects as arguments. (Barrier and event ping-pong across processes: sync_signals.rs.)

use std::thread;
use std::time::{Duration, Instant};

use shoal::process::StartMethod;
use shoal::sync::{Condition, Event, Lock, RLock, Semaphore, TryLockError};
use shoal::{Process, Value};

mod common;
use common::{watchdog, Reap};

const LONG: Duration = Duration::from_secs(30);

fn start<F, A, R>(f: F, args: A) -> Reap
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
    R: shoal::process::EntryReturn + 'static,
{
    Reap(Process::new(f, args).start().expect("start a child"))
}

fn join(child: &Reap) -> i32 {
    child
        .0
        .join_timeout(LONG)
        .expect("join")
        .expect("the child did not finish in time")
}

// ---- exclusion -----------------------------------------------------------------------

fn increment((value, n): (Value<u64>, u32)) {
    for _ in 0..n {
        let mut guard = value.lock().expect("a lock, no holder died");
        *guard += 1;
    }
}
shoal::entry!(increment);

#[test]
fn four_processes_increment_one_value_exactly() {
    watchdog(|| {
        let value = Value::new(0u64).unwrap();
        let children: Vec<Reap> = (0..4)
            .map(|_| start(increment, (value.clone(), 100_000)))
            .collect();
        for c in &children {
            assert_eq!(join(c), 0);
        }
        assert_eq!(value.load(), 400_000);
    });
}

// ---- robustness: a holder SIGKILLed --------------------------------------------------

fn hold_lock_forever((lock, held): (Lock, Event)) {
    let guard = lock.acquire().expect("free lock");
    held.set();
    thread::sleep(Duration::from_secs(600));
    drop(guard);
}
shoal::entry!(hold_lock_forever);

fn hold_rlock_forever((lock, held): (RLock, Event)) {
    let outer = lock.acquire().expect("free lock");
    let inner = lock.acquire().expect("re-entrant");
    held.set();
    thread::sleep(Duration::from_secs(600));
    drop((inner, outer));
}
shoal::entry!(hold_rlock_forever);

#[test]
fn a_killed_lock_holder_hands_the_lock_over_as_owner_died() {
    watchdog(|| {
        let lock = Lock::new().unwrap();
        let held = Event::new().unwrap();
        let child = start(hold_lock_forever, (lock.clone(), held.clone()));
        assert!(held.wait_timeout(LONG), "the child never took the lock");
        assert!(matches!(lock.try_acquire(), Err(TryLockError::WouldBlock)));

        // A waiter already asleep in acquire() is woken by the death.
        let waiter = {
            let lock = lock.clone();
            thread::spawn(move || match lock.acquire() {
                Ok(_) => "acquired normally",
                Err(died) => {
                    drop(died.into_inner());
                    "owner died"
                }
            })
        };
        thread::sleep(Duration::from_millis(20));
        child.0.kill().unwrap();
        assert_eq!(join(&child), -9);
        assert_eq!(waiter.join().unwrap(), "owner died");

        // The lock is usable afterwards, with no trace of the death.
        drop(lock.acquire().expect("a normal acquire after the recovery"));
        assert!(!lock.is_locked());
    });
}

#[test]
fn the_next_acquire_after_the_death_reports_owner_died_at_once() {
    watchdog(|| {
        for _ in 0..3 {
            let lock = Lock::new().unwrap();
            let held = Event::new().unwrap();
            let child = start(hold_lock_forever, (lock.clone(), held.clone()));
            assert!(held.wait_timeout(LONG));
            child.0.kill().unwrap();
            assert_eq!(join(&child), -9);
            // Once the process is reaped the kernel has already marked the word: even a
            // non-blocking attempt sees the death, no timed polling involved.
            match lock.try_acquire() {
                Err(TryLockError::OwnerDied(died)) => {
                    assert_eq!(died.process_id(), Some(child.0.pid()));
                    drop(died.into_inner());
                }
                Ok(_) => panic!("acquired without learning of the death"),
                Err(TryLockError::WouldBlock) => panic!("the dead holder still blocks the lock"),
                Err(other) => panic!("unexpected outcome: {other}"),
            }
            drop(lock.acquire().expect("usable afterwards"));
        }
    });
}

#[test]
fn a_killed_rlock_holder_hands_the_rlock_over_as_owner_died() {
    watchdog(|| {
        let lock = RLock::new().unwrap();
        let held = Event::new().unwrap();
        let child = start(hold_rlock_forever, (lock.clone(), held.clone()));
        assert!(held.wait_timeout(LONG));
        child.0.kill().unwrap();
        assert_eq!(join(&child), -9);
        let guard = match lock.acquire() {
            Err(died) => died.into_inner(),
            Ok(_) => panic!("acquired without learning of the death"),
        };
        assert_eq!(
            lock.depth(),
            1,
            "the dead holder's recursion count is not inherited"
        );
        drop(guard);
        drop(lock.acquire().expect("usable afterwards"));
        assert!(!lock.is_locked());
    });
}

// ---- semaphore -----------------------------------------------------------------------

fn crowd((sem, inside, most, rounds): (Semaphore, Value<u32>, Value<u32>, u32)) {
    for _ in 0..rounds {
        let permit = sem.acquire();
        {
            let mut n = inside.lock().unwrap();
            *n += 1;
            let mut m = most.lock().unwrap();
            *m = (*m).max(*n);
        }
        std::hint::black_box((0..200).sum::<u32>());
        *inside.lock().unwrap() -= 1;
        drop(permit);
    }
}
shoal::entry!(crowd);

#[test]
fn a_semaphore_of_three_admits_at_most_three_of_eight_processes() {
    watchdog(|| {
        let sem = Semaphore::new(3).unwrap();
        let inside = Value::new(0u32).unwrap();
        let most = Value::new(0u32).unwrap();
        let children: Vec<Reap> = (0..8)
            .map(|_| start(crowd, (sem.clone(), inside.clone(), most.clone(), 300)))
            .collect();
        for c in &children {
            assert_eq!(join(c), 0);
        }
        assert!(
            most.load() <= 3,
            "{} processes were inside at once",
            most.load()
        );
        assert!(most.load() >= 1);
        assert_eq!(inside.load(), 0);
        assert_eq!(sem.value(), 3);
    });
}

// ---- event and condition -------------------------------------------------------------

fn await_flag((cond, flag, ready): (Condition, Value<u32>, Event)) -> i32 {
    let guard = cond.acquire().expect("no holder died");
    ready.set();
    match cond.wait_for(guard, || flag.load() == 1, Some(LONG)) {
        Ok((_guard, true)) => 0,
        Ok((_guard, false)) => 3,
        Err(_) => 4,
    }
}
shoal::entry!(await_flag);

#[test]
fn condition_notify_all_wakes_waiting_processes() {
    watchdog(|| {
        let cond = Condition::new().unwrap();
        let flag = Value::without_lock(0u32).unwrap();
        let readies: Vec<Event> = (0..3).map(|_| Event::new().unwrap()).collect();
        let children: Vec<Reap> = readies
            .iter()
            .map(|r| start(await_flag, (cond.clone(), flag.clone(), r.clone())))
            .collect();
        for r in &readies {
            assert!(r.wait_timeout(LONG));
        }
        {
            let _guard = cond.acquire().unwrap();
            flag.store(1);
            cond.notify_all();
        }
        for c in &children {
            assert_eq!(join(c), 0);
        }

        let t0 = Instant::now();
        let never = Event::new().unwrap();
        assert!(!never.wait_timeout(Duration::from_millis(50)));
        assert!(t0.elapsed() >= Duration::from_millis(50));

        let guard = cond.acquire().unwrap();
        let t0 = Instant::now();
        let (_guard, timed_out) = cond.wait_timeout(guard, Duration::from_millis(30)).unwrap();
        assert!(timed_out);
        assert!(t0.elapsed() >= Duration::from_millis(30));
    });
}

// ---- every start method receives a Value, a Lock and an Event ------------------------

fn use_objects((value, lock, done): (Value<u64>, Lock, Event)) -> i32 {
    let guard = lock.acquire().expect("no holder died");
    value.store(value.load() + 41);
    drop(guard);
    done.set();
    7
}
shoal::entry!(use_objects);

#[test]
fn every_start_method_passes_value_lock_and_event() {
    watchdog(|| {
        for method in [
            StartMethod::Spawn,
            StartMethod::ForkServer,
            StartMethod::Fork,
        ] {
            let value = Value::new(1u64).unwrap();
            let lock = Lock::new().unwrap();
            let done = Event::new().unwrap();
            let child = Reap(
                Process::new(use_objects, (value.clone(), lock.clone(), done.clone()))
                    .start_method(method)
                    .start()
                    .unwrap(),
            );
            assert!(
                done.wait_timeout(LONG),
                "{method:?}: the child never set the event"
            );
            assert_eq!(join(&child), 7, "{method:?}");
            assert_eq!(value.load(), 42, "{method:?}");
            drop(lock.try_acquire().expect("the child released the lock"));
        }
    });
}
