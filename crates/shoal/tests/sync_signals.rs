//! Semaphore, BoundedSemaphore, Event and Barrier under contention: with threads, and
//! with child processes that receive them as `Process` arguments.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal::sync::{Barrier, BarrierError, BoundedSemaphore, Event, ReleaseError, Semaphore};
use shoal::{Process, SharedMemory};

mod common;
use common::{eventually, watchdog, METHODS};

#[test]
fn semaphore_of_three_never_admits_four() {
    watchdog(|| {
        let sem = Semaphore::new(3).unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (sem, inside, most) = (sem.clone(), Arc::clone(&inside), Arc::clone(&most));
                std::thread::spawn(move || {
                    for n in 0..500 {
                        let _permit = if (i + n) % 3 == 0 {
                            sem.acquire_timeout(Duration::from_secs(20))
                                .expect("a permit within 20 s")
                        } else {
                            sem.acquire()
                        };
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        assert!(now <= 3, "{now} threads inside a semaphore of 3");
                        if n % 16 == 0 {
                            std::thread::yield_now();
                        }
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) >= 1);
        assert_eq!(sem.value(), 3);
    });
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    let sem = BoundedSemaphore::new(2).unwrap();
    let p = sem.acquire();
    p.forget();
    sem.release().unwrap();
    let err = sem.release().unwrap_err();
    assert_eq!(err, ReleaseError::OverReleased { limit: 2 });
    assert!(err.to_string().contains("released too many times"), "{err}");
    assert_eq!(sem.value(), 2);
}

#[test]
fn bounded_semaphore_hands_permits_between_threads() {
    watchdog(|| {
        let sem = BoundedSemaphore::new(1).unwrap();
        sem.acquire().forget();
        let other = sem.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..1000 {
                other.acquire().forget();
            }
        });
        for _ in 0..1000 {
            // Give the permit back only once it was taken: never above the bound.
            eventually("the permit is taken", || sem.value() == 0);
            sem.release().unwrap();
        }
        t.join().unwrap();
        assert_eq!(sem.value(), 0);
    });
}

#[test]
fn timeouts_wait_at_least_their_timeout() {
    watchdog(|| {
        let d = Duration::from_millis(25);
        let sem = Semaphore::new(0).unwrap();
        let start = Instant::now();
        assert!(sem.acquire_timeout(d).is_none());
        assert!(start.elapsed() >= d);

        let bsem = BoundedSemaphore::new(0).unwrap();
        let start = Instant::now();
        assert!(bsem.acquire_timeout(d).is_none());
        assert!(start.elapsed() >= d);

        let ev = Event::new().unwrap();
        let start = Instant::now();
        assert!(!ev.wait_timeout(d));
        assert!(start.elapsed() >= d);

        let b = Barrier::new(2).unwrap();
        let start = Instant::now();
        assert_eq!(b.wait_timeout(d), Err(BarrierError::Timeout));
        assert!(start.elapsed() >= d);
    });
}

#[test]
fn event_set_wakes_every_waiter_and_clear_rearms() {
    watchdog(|| {
        let ev = Event::new().unwrap();
        let woke = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..5)
            .map(|i| {
                let (ev, woke) = (ev.clone(), Arc::clone(&woke));
                std::thread::spawn(move || {
                    if i % 2 == 0 {
                        ev.wait();
                    } else {
                        assert!(ev.wait_timeout(Duration::from_secs(20)));
                    }
                    woke.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            woke.load(Ordering::SeqCst),
            0,
            "nobody passes a clear event"
        );
        ev.set();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(woke.load(Ordering::SeqCst), 5);
        assert!(ev.is_set());
        ev.wait(); // set: returns at once
        ev.clear();
        assert!(!ev.wait_timeout(Duration::from_millis(5)));
    });
}

#[test]
fn event_ping_pong() {
    watchdog(|| {
        let (ping, pong) = (Event::new().unwrap(), Event::new().unwrap());
        let (ping2, pong2) = (ping.clone(), pong.clone());
        let rounds = 2000;
        let t = std::thread::spawn(move || {
            for _ in 0..rounds {
                ping2.wait();
                ping2.clear();
                pong2.set();
            }
        });
        for _ in 0..rounds {
            ping.set();
            pong.wait();
            pong.clear();
        }
        t.join().unwrap();
    });
}

/// Runs `rounds` rounds of `parties` threads and checks each round's indexes.
fn barrier_rounds(parties: usize, rounds: usize) {
    let b = Barrier::new(parties).unwrap();
    let threads: Vec<_> = (0..parties)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                (0..rounds)
                    .map(|_| b.wait().expect("an unbroken barrier"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for round in 0..rounds {
        let mut seen: Vec<usize> = results.iter().map(|r| r[round].index()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..parties).collect::<Vec<_>>(), "round {round}");
        let leaders = results.iter().filter(|r| r[round].is_leader()).count();
        assert_eq!(leaders, 1, "round {round}");
    }
    assert!(!b.is_broken());
    assert_eq!(b.n_waiting(), 0);
}

#[test]
fn barrier_thousand_rounds_of_four() {
    watchdog(|| barrier_rounds(4, 1000));
}

#[test]
fn barrier_abort_breaks_waiters_until_reset() {
    watchdog(|| {
        let b = Barrier::new(4).unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.wait())
            })
            .collect();
        eventually("three waiters", || b.n_waiting() == 3);
        b.abort();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(BarrierError::Broken));
        }
        assert!(b.is_broken());
        assert_eq!(b.wait(), Err(BarrierError::Broken));
        assert_eq!(
            b.wait_timeout(Duration::from_secs(1)),
            Err(BarrierError::Broken)
        );
        b.reset();
        assert!(!b.is_broken());
        // Usable again for full rounds.
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            (0..3)
                .map(|_| {
                    let b = b2.clone();
                    std::thread::spawn(move || b.wait().map(|r| r.index()))
                })
                .collect::<Vec<_>>()
        });
        let mine = b.wait().unwrap().index();
        let mut all: Vec<usize> = t
            .join()
            .unwrap()
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        all.push(mine);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    });
}

#[test]
fn barrier_timeout_breaks_the_others() {
    watchdog(|| {
        let b = Barrier::new(3).unwrap();
        let other = b.clone();
        let t = std::thread::spawn(move || other.wait());
        eventually("one waiter", || b.n_waiting() == 1);
        assert_eq!(
            b.wait_timeout(Duration::from_millis(20)),
            Err(BarrierError::Timeout)
        );
        assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
        assert!(b.is_broken());
        b.reset();
        assert!(!b.is_broken());
    });
}

#[test]
fn barrier_reset_wakes_waiters_with_broken() {
    watchdog(|| {
        let b = Barrier::new(3).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.wait())
            })
            .collect();
        eventually("two waiters", || b.n_waiting() == 2);
        b.reset();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(BarrierError::Broken));
        }
        assert!(!b.is_broken());
        // The next full round passes.
        barrier_on(&b, 3);
    });
}

/// One full round on `b` with `parties` threads.
fn barrier_on(b: &Barrier, parties: usize) {
    let ts: Vec<_> = (0..parties)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || b.wait_timeout(Duration::from_secs(20)))
        })
        .collect();
    for t in ts {
        t.join().unwrap().unwrap();
    }
}

#[test]
fn abort_after_a_round_does_not_break_its_waiters() {
    watchdog(|| {
        // Repeatedly: a round completes and an abort follows at once; every waiter of
        // the completed round passes, and only later waits see Broken.
        for _ in 0..50 {
            let b = Barrier::new(3).unwrap();
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    std::thread::spawn(move || b.wait())
                })
                .collect();
            eventually("two waiters", || b.n_waiting() == 2);
            b.wait().unwrap();
            b.abort();
            for t in ts {
                t.join().unwrap().unwrap();
            }
            assert_eq!(b.wait(), Err(BarrierError::Broken));
        }
    });
}

#[test]
fn barrier_with_more_threads_than_parties() {
    watchdog(|| {
        // Eight threads share a barrier of four: rounds fill with whoever comes. After
        // an abort, every round that completed let all four of its waiters through
        // (the abort never reaches back into a completed round).
        let b = Barrier::new(4).unwrap();
        let passed = Arc::new(AtomicUsize::new(0));
        let rounds = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (b, passed, rounds) = (b.clone(), Arc::clone(&passed), Arc::clone(&rounds));
                std::thread::spawn(move || loop {
                    match b.wait() {
                        Ok(r) => {
                            assert!(r.index() < 4);
                            if r.is_leader() {
                                rounds.fetch_add(1, Ordering::SeqCst);
                            }
                            passed.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => return e,
                    }
                })
            })
            .collect();
        eventually("500 rounds", || rounds.load(Ordering::SeqCst) >= 500);
        b.abort();
        for t in threads {
            assert_eq!(t.join().unwrap(), BarrierError::Broken);
        }
        assert_eq!(
            passed.load(Ordering::SeqCst),
            4 * rounds.load(Ordering::SeqCst)
        );
    });
}

#[test]
fn abort_in_the_middle_of_many_rounds_stops_everyone() {
    watchdog(|| {
        let b = Barrier::new(4).unwrap();
        let rounds_done = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (b, done) = (b.clone(), Arc::clone(&rounds_done));
                std::thread::spawn(move || loop {
                    match b.wait() {
                        Ok(r) => {
                            if r.is_leader() {
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => return e,
                    }
                })
            })
            .collect();
        eventually("some rounds", || rounds_done.load(Ordering::SeqCst) >= 100);
        b.abort();
        for t in threads {
            assert_eq!(t.join().unwrap(), BarrierError::Broken);
        }
        assert!(b.is_broken());
        b.reset();
        barrier_on(&b, 4);
    });
}

// ---- across processes -------------------------------------------------------------

/// Kills and reaps the children when the test ends, however it ends.
struct Reap(Vec<Process>);

impl Drop for Reap {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = p.kill();
            let _ = p.join_timeout(Duration::from_secs(10));
        }
    }
}

impl Reap {
    /// Joins every child and checks that each exited with 0.
    fn join_all(&self) {
        for p in &self.0 {
            assert_eq!(
                p.join_timeout(Duration::from_secs(25)).unwrap(),
                Some(0),
                "child {} ({:?})",
                p.pid(),
                p.start_method()
            );
        }
    }
}

/// Starts `n` children running `entry`, cycling through the start methods.
fn start<F, A>(n: usize, entry: F, args: impl Fn(usize) -> A) -> Reap
where
    F: Fn(A) -> i32 + Copy + 'static,
    A: serde::Serialize + serde::de::DeserializeOwned,
{
    Reap(
        (0..n)
            .map(|i| {
                Process::new(entry, args(i))
                    .start_method(METHODS[i % METHODS.len()])
                    .start()
                    .unwrap()
            })
            .collect(),
    )
}

/// Takes the semaphore `times` times; words 0 and 1 of `shm` count the holders now and
/// the most ever seen. Exits with 3 if it ever saw more than three holders.
fn hold_semaphore((sem, shm, times): (Semaphore, SharedMemory, u32)) -> i32 {
    let inside = shm.atomic_u32(0).unwrap();
    let most = shm.atomic_u32(4).unwrap();
    for _ in 0..times {
        let _permit = sem.acquire();
        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        std::thread::yield_now();
        inside.fetch_sub(1, Ordering::SeqCst);
        if now > 3 {
            return 3;
        }
    }
    0
}
shoal::entry!(hold_semaphore);

#[test]
fn processes_share_a_semaphore_of_three() {
    watchdog(|| {
        let sem = Semaphore::new(3).unwrap();
        let shm = SharedMemory::new(8).unwrap();
        let children = start(6, hold_semaphore, |_| (sem.clone(), shm.clone(), 300));
        children.join_all();
        let most = shm.atomic_u32(4).unwrap().load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} holders at once");
        assert_eq!(sem.value(), 3);
    });
}

/// Waits at the barrier `rounds` times, writing its index of each round as one byte at
/// `slot * rounds + round`.
fn barrier_rounds_child((b, shm, slot, rounds): (Barrier, SharedMemory, usize, usize)) -> i32 {
    for round in 0..rounds {
        let index = match b.wait_timeout(Duration::from_secs(20)) {
            Ok(r) => r.index() as u8,
            Err(_) => return 2,
        };
        shm.write(slot * rounds + round, &[index]).unwrap();
    }
    0
}
shoal::entry!(barrier_rounds_child);

#[test]
fn processes_pass_a_barrier_a_thousand_times() {
    watchdog(|| {
        let (parties, rounds) = (4, 1000);
        let b = Barrier::new(parties).unwrap();
        let shm = SharedMemory::new(parties * rounds).unwrap();
        let children = start(parties, barrier_rounds_child, |slot| {
            (b.clone(), shm.clone(), slot, rounds)
        });
        children.join_all();
        let mut seen = vec![0u8; parties * rounds];
        shm.read(0, &mut seen).unwrap();
        for round in 0..rounds {
            let mut idx: Vec<u8> = (0..parties).map(|s| seen[s * rounds + round]).collect();
            idx.sort_unstable();
            assert_eq!(idx, vec![0, 1, 2, 3], "round {round}");
        }
        assert!(!b.is_broken());
    });
}

/// Answers `rounds` pings with pongs.
fn pong((ping, pong, rounds): (Event, Event, u32)) -> i32 {
    for _ in 0..rounds {
        if !ping.wait_timeout(Duration::from_secs(20)) {
            return 2;
        }
        ping.clear();
        pong.set();
    }
    0
}
shoal::entry!(pong);

#[test]
fn processes_play_event_ping_pong() {
    watchdog(|| {
        let (ping, pong_ev) = (Event::new().unwrap(), Event::new().unwrap());
        let rounds = 2000;
        let child = start(1, pong, |_| (ping.clone(), pong_ev.clone(), rounds));
        for _ in 0..rounds {
            ping.set();
            assert!(pong_ev.wait_timeout(Duration::from_secs(20)));
            pong_ev.clear();
        }
        child.join_all();
    });
}

/// Waits once at the barrier; exits with 0 only if it is told the barrier broke.
fn expect_broken(b: Barrier) -> i32 {
    match b.wait_timeout(Duration::from_secs(20)) {
        Err(BarrierError::Broken) => 0,
        Err(BarrierError::Timeout) => 2,
        Ok(_) => 3,
        Err(_) => 4,
    }
}
shoal::entry!(expect_broken);

#[test]
fn abort_reaches_waiters_in_other_processes() {
    watchdog(|| {
        let b = Barrier::new(4).unwrap();
        let children = start(3, expect_broken, |_| b.clone());
        eventually("three waiting children", || b.n_waiting() == 3);
        b.abort();
        children.join_all();
        assert!(b.is_broken());
    });
}

/// Waits once at the barrier; exits with 0 when the round completes.
fn pass_once(b: Barrier) -> i32 {
    match b.wait_timeout(Duration::from_secs(20)) {
        Ok(_) => 0,
        Err(BarrierError::Broken) => 1,
        Err(_) => 2,
    }
}
shoal::entry!(pass_once);

#[test]
fn a_party_killed_while_waiting_is_released_by_abort_and_forgotten_by_reset() {
    watchdog(|| {
        let b = Barrier::new(3).unwrap();
        // The victim waits without a timeout and is SIGKILLed in the barrier.
        let victim = start(1, pass_once, |_| b.clone());
        eventually("the victim waiting", || b.n_waiting() == 1);
        let other = start(1, expect_broken, |_| b.clone());
        eventually("two waiting children", || b.n_waiting() == 2);
        victim.0[0].kill().unwrap();
        assert_eq!(
            victim.0[0].join_timeout(Duration::from_secs(20)).unwrap(),
            Some(-9)
        );
        // The dead party still counts as arrived; nothing completes the round until
        // someone gives up. An abort releases the survivor with an error.
        assert_eq!(b.n_waiting(), 2);
        b.abort();
        other.join_all();
        assert!(b.is_broken());
        // A reset forgets the dead party: three live parties pass again.
        b.reset();
        assert_eq!(b.n_waiting(), 0);
        let children = start(2, pass_once, |_| b.clone());
        assert!(b.wait_timeout(Duration::from_secs(20)).is_ok());
        children.join_all();
    });
}

/// Returns a kept permit of a bounded semaphore, then tries once more.
fn over_release(sem: BoundedSemaphore) -> i32 {
    if sem.release().is_err() {
        return 2;
    }
    match sem.release() {
        Err(ReleaseError::OverReleased { limit: 1 }) => 0,
        _ => 3,
    }
}
shoal::entry!(over_release);

#[test]
fn a_child_cannot_over_release_a_bounded_semaphore() {
    watchdog(|| {
        let sem = BoundedSemaphore::new(1).unwrap();
        sem.acquire().forget();
        start(1, over_release, |_| sem.clone()).join_all();
        assert_eq!(sem.value(), 1);
    });
}
