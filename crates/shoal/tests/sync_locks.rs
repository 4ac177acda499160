//! Locks, conditions and shared values used by threads of one process.
//!
//! Cross-process crash tests (SIGKILL of a holder in a child process) live with the
//! process tests; the robust path they exercise is the same one a thread exit takes.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use shoal::sync::TryLockError;
use shoal::{Array, Condition, Lock, RLock, Value};

mod common;
use common::watchdog;

#[test]
fn value_lock_gives_mutual_exclusion() {
    watchdog(|| {
        let v = Value::new(0u64).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let v = v.clone();
                thread::spawn(move || {
                    for _ in 0..100_000 {
                        *v.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(v.load(), 400_000);
    });
}

#[test]
fn rlock_gives_mutual_exclusion_and_nests() {
    watchdog(|| {
        let lock = RLock::new().unwrap();
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, inside) = (lock.clone(), Arc::clone(&inside));
                thread::spawn(move || {
                    for _ in 0..20_000 {
                        let _a = lock.acquire().unwrap();
                        let _b = lock.acquire().unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!lock.is_locked());
    });
}

#[test]
fn a_thread_that_exits_holding_the_lock_hands_it_over() {
    watchdog(|| {
        let lock = Lock::new().unwrap();
        let l2 = lock.clone();
        let tid = thread::spawn(move || {
            std::mem::forget(l2.acquire().unwrap());
        });
        tid.join().unwrap();
        let died = lock.acquire().expect_err("the holder died");
        assert!(died.to_string().contains("died while holding it"), "{died}");
        let guard = died.into_inner();
        assert!(lock.is_locked());
        // Contended again, and usable as normal afterwards.
        let l3 = lock.clone();
        let waiter = thread::spawn(move || l3.acquire().map(drop).is_ok());
        thread::sleep(Duration::from_millis(20));
        drop(guard);
        assert!(waiter.join().unwrap());
        assert!(lock.try_acquire().is_ok());
    });
}

#[test]
fn a_sleeping_waiter_learns_of_the_death() {
    watchdog(|| {
        let lock = Lock::new().unwrap();
        let (l2, l3) = (lock.clone(), lock.clone());
        let (locked_tx, locked_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel::<()>();
        let holder = thread::spawn(move || {
            std::mem::forget(l2.acquire().unwrap());
            locked_tx.send(()).unwrap();
            exit_rx.recv().unwrap(); // exit only when the waiter sleeps
        });
        locked_rx.recv().unwrap();
        let waiter = thread::spawn(move || match l3.acquire_timeout(Duration::from_secs(20)) {
            Err(TryLockError::OwnerDied(_)) => Ok(()),
            Ok(_) => Err("acquired cleanly".to_owned()),
            Err(e) => Err(e.to_string()),
        });
        // Give the waiter time to fall asleep on the word. On a loaded machine it may not
        // have yet: it then finds the word already marked by the kernel, a path that must
        // report the death just the same. (The start-up race this test once had, a
        // waiter taking the lock before the holder, is closed by `locked_rx`.)
        thread::sleep(Duration::from_millis(50));
        exit_tx.send(()).unwrap();
        holder.join().unwrap();
        waiter.join().unwrap().unwrap();
    });
}

#[test]
fn try_timeout_and_not_held() {
    watchdog(|| {
        let lock = Lock::new().unwrap();
        assert!(lock.release().is_err());
        let g = lock.acquire().unwrap();
        let l2 = lock.clone();
        let (would_block, timed_out, waited, not_held) = thread::spawn(move || {
            let wb = matches!(l2.try_acquire(), Err(TryLockError::WouldBlock));
            let start = Instant::now();
            let to = matches!(
                l2.acquire_timeout(Duration::from_millis(50)),
                Err(TryLockError::Timeout)
            );
            (wb, to, start.elapsed(), l2.release().is_err())
        })
        .join()
        .unwrap();
        assert!(would_block && timed_out && not_held);
        assert!(waited >= Duration::from_millis(50));
        g.release();
        let r = RLock::new().unwrap();
        let r2 = r.clone();
        let _held = r.acquire().unwrap();
        assert!(thread::spawn(move || r2.release().is_err()).join().unwrap());
    });
}

#[test]
fn condition_notify_one_and_all() {
    watchdog(|| {
        let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
        let turns = Value::without_lock(0u32).unwrap();
        let woken = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (c, t, w) = (cond.clone(), turns.clone(), Arc::clone(&woken));
                thread::spawn(move || {
                    let g = c.acquire().unwrap();
                    let (g, ok) = c
                        .wait_for(g, || t.load() > 0, Some(Duration::from_secs(20)))
                        .unwrap();
                    assert!(ok);
                    t.store(t.load() - 1);
                    w.fetch_add(1, Ordering::SeqCst);
                    drop(g);
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        {
            let _g = cond.acquire().unwrap();
            turns.store(1);
            cond.notify(1);
        }
        let start = Instant::now();
        while woken.load(Ordering::SeqCst) < 1 {
            assert!(start.elapsed() < Duration::from_secs(20));
            thread::sleep(Duration::from_millis(1));
        }
        {
            let _g = cond.acquire().unwrap();
            turns.store(2);
            cond.notify_all();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn condition_wait_timeout_and_wait_for_time_out() {
    watchdog(|| {
        let cond = Condition::new().unwrap();
        let g = cond.acquire().unwrap();
        let start = Instant::now();
        let (g, timed_out) = cond.wait_timeout(g, Duration::from_millis(30)).unwrap();
        assert!(timed_out && start.elapsed() >= Duration::from_millis(30));
        let flag = AtomicBool::new(false);
        let start = Instant::now();
        let (g, ok) = cond
            .wait_for(
                g,
                || flag.load(Ordering::SeqCst),
                Some(Duration::from_millis(30)),
            )
            .unwrap();
        assert!(!ok && start.elapsed() >= Duration::from_millis(30));
        drop(g);
    });
}

#[test]
fn condition_waiter_learns_that_a_holder_died() {
    watchdog(|| {
        let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
        let c2 = cond.clone();
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let g = c2.acquire().unwrap();
            tx.send(()).unwrap();
            let died = c2.wait_timeout(g, Duration::from_secs(20)).unwrap_err();
            drop(died.into_inner());
        });
        rx.recv().unwrap();
        // The lock comes free only once the waiter sleeps in `wait_timeout`.
        drop(cond.acquire().unwrap());
        let c3 = cond.clone();
        thread::spawn(move || {
            let g = c3.acquire().unwrap();
            c3.notify_all();
            std::mem::forget(g); // die holding the lock
        })
        .join()
        .unwrap();
        waiter.join().unwrap();
    });
}

#[test]
fn arrays_and_values() {
    watchdog(|| {
        let a = Array::from_fn(8, |i| i as u64).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                thread::spawn(move || {
                    for _ in 0..1000 {
                        for x in a.lock().unwrap().iter_mut() {
                            *x += 1;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(a.to_vec(), (0..8).map(|i| i + 4000).collect::<Vec<u64>>());
        let v = Value::new([0.5f64; 3]).unwrap();
        v.store([1.0, 2.0, 3.0]);
        assert_eq!(v.load(), [1.0, 2.0, 3.0]);
        assert!(v.get_lock().is_some());
    });
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Lock>();
    assert_send_sync::<RLock>();
    assert_send_sync::<Condition>();
    assert_send_sync::<Value<u64>>();
    assert_send_sync::<Array<[u8; 3]>>();
}
