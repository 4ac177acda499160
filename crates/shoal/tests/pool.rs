//! The process pool through its public API: results, streaming, crashes, panics,
//! timeouts, recycling, initializers, termination, and async use.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use shoal::pool::{MapError, TaskError};
use shoal::process::StartMethod;
use shoal::{Pool, SharedMemory};

mod common;
use common::{eventually, watchdog, watchdog_secs};

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}
shoal::task!(square);

fn my_pid(_: u64) -> u32 {
    std::process::id()
}
shoal::task!(my_pid);

fn sleep_us(us: u64) -> u64 {
    thread::sleep(Duration::from_micros(us));
    us
}
shoal::task!(sleep_us);

fn panic_on_tens(x: u64) -> u64 {
    if x.is_multiple_of(10) {
        panic!("boom {x}");
    }
    x
}
shoal::task!(panic_on_tens);

fn abort_on(x: u64) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    x
}
shoal::task!(abort_on);

fn add((a, b): (i64, i64)) -> i64 {
    a + b
}
shoal::task!(add);

static INITIALIZED: AtomicBool = AtomicBool::new(false);

fn init_worker(counter: SharedMemory) {
    counter
        .atomic_u64(0)
        .unwrap()
        .fetch_add(1, Ordering::SeqCst);
    INITIALIZED.store(true, Ordering::SeqCst);
}
shoal::entry!(init_worker);

fn was_initialized(_: u32) -> bool {
    INITIALIZED.load(Ordering::SeqCst)
}
shoal::task!(was_initialized);

/// Whether no process with this pid exists any more (not even a zombie).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err()
}

fn sigkill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

#[test]
fn map_of_100k_items_is_in_order() {
    watchdog(|| {
        let pool = Pool::new(2).unwrap();
        let got = pool.map(square, 0..100_000u64).unwrap();
        let want: Vec<u64> = (0..100_000u64).map(square).collect();
        assert_eq!(got, want);
        // Chunk size 1 too.
        let pool1 = Pool::builder().processes(2).chunksize(1).build().unwrap();
        assert_eq!(pool1.map(square, 0..5_000u64).unwrap(), want[..5_000]);
    });
}

#[test]
fn imap_unordered_returns_the_same_multiset() {
    watchdog(|| {
        let pool = Pool::new(2).unwrap();
        let mut got: Vec<u64> = pool
            .imap_unordered(square, 0..20_000u64)
            .collect::<Result<_, _>>()
            .unwrap();
        got.sort_unstable();
        let mut want: Vec<u64> = (0..20_000u64).map(square).collect();
        want.sort_unstable();
        assert_eq!(got, want);
    });
}

#[test]
fn imap_over_an_endless_input_stays_bounded() {
    watchdog(|| {
        let pool = Pool::new(2).unwrap();
        let pulled = Arc::new(AtomicU64::new(0));
        let p2 = Arc::clone(&pulled);
        let input = (0u64..).inspect(move |_| {
            p2.fetch_add(1, Ordering::Relaxed);
        });
        let mut it = pool.imap(square, input);
        const BOUND: u64 = 100_000;
        assert!(it.max_in_flight() <= BOUND);
        for i in 0..10_000u64 {
            assert_eq!(it.next().unwrap().unwrap(), square(i));
            assert!(it.in_flight() <= it.max_in_flight());
            // What was pulled from the input is what is in flight plus what was
            // yielded: nothing is collected ahead.
            assert!(pulled.load(Ordering::Relaxed) <= i + 1 + it.max_in_flight());
        }
        drop(it);
        assert_eq!(pool.apply(square, 3).unwrap(), 9);
    });
}

/// During a `map` of `n` short tasks, SIGKILLs a random worker `kills` times, without
/// retries then with: the call returns, failures are `WorkerDied` of the killed tasks,
/// retries make every item succeed, and the pool serves another map afterwards.
fn kill_storm(n: u64, kills: usize) {
    watchdog_secs(600, move || {
        for retries in [0u32, 1000] {
            let pool = Arc::new(
                Pool::builder()
                    .processes(2)
                    .chunksize(1)
                    .retries(retries)
                    .build()
                    .unwrap(),
            );
            let killer_pool = Arc::clone(&pool);
            let done = Arc::new(AtomicBool::new(false));
            let done2 = Arc::clone(&done);
            let max_kills = kills;
            let killer = thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
                let mut kills = 0;
                while kills < max_kills {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    thread::sleep(Duration::from_millis(2 + seed % 8));
                    let pids = killer_pool.worker_pids();
                    if pids.is_empty() {
                        continue;
                    }
                    sigkill(pids[(seed as usize / 7) % pids.len()]);
                    kills += 1;
                }
                done2.store(true, Ordering::SeqCst);
                kills
            });
            let outcomes: Vec<Result<u64, TaskError>> =
                pool.imap(sleep_us, (0..n).map(|i| 100 + i % 100)).collect();
            let kills = killer.join().unwrap();
            assert_eq!(kills, max_kills);
            assert_eq!(outcomes.len() as u64, n);
            let mut failed = 0;
            for (i, o) in outcomes.iter().enumerate() {
                match o {
                    Ok(v) => assert_eq!(*v, 100 + i as u64 % 100),
                    Err(TaskError::WorkerDied { signal, task, .. }) => {
                        assert_eq!(*signal, Some(9));
                        assert_eq!(*task, i as u64);
                        failed += 1;
                    }
                    Err(e) => panic!("item {i}: unexpected {e}"),
                }
            }
            assert!(failed <= kills, "{failed} items failed for {kills} kills");
            if retries > 0 {
                assert_eq!(failed, 0);
            } else {
                // The workers were busy: the kills hit running tasks.
                eprintln!("{failed} items failed for {kills} kills");
                assert!(failed >= 1);
            }
            // The pool serves another map afterwards.
            let got = pool.map(square, 0..1_000u64).unwrap();
            assert_eq!(got, (0..1_000u64).map(square).collect::<Vec<_>>());
            assert!(done.load(Ordering::SeqCst));
        }
    });
}

#[test]
fn kill_storm_never_hangs_and_retries_make_every_item_succeed() {
    kill_storm(10_000, 50);
}

#[test]
#[ignore = "soak: about a minute"]
fn kill_storm_soak() {
    kill_storm(100_000, 1_000);
}

#[test]
fn a_panicking_task_fails_alone() {
    watchdog(|| {
        let pool = Pool::builder().processes(2).chunksize(7).build().unwrap();
        let before: HashSet<u32> = pool.worker_pids().into_iter().collect();
        let outcomes: Vec<_> = pool.imap(panic_on_tens, 0..100u64).collect();
        for (i, o) in outcomes.iter().enumerate() {
            if i % 10 == 0 {
                match o {
                    Err(TaskError::Panicked { task, message, .. }) => {
                        assert_eq!(*task, i as u64);
                        assert_eq!(message, &format!("boom {i}"));
                    }
                    other => panic!("item {i}: {other:?}"),
                }
            } else {
                assert_eq!(o.as_ref().unwrap(), &(i as u64));
            }
        }
        // map reports every failure, in input order.
        let err = pool.map(panic_on_tens, 5..100u64).unwrap_err();
        let want: Vec<u64> = (5..100u64).filter(|x| x % 10 == 0).map(|x| x - 5).collect();
        assert_eq!(err.failed_tasks(), want); // item 5 of the call is 10, and so on
        assert!(matches!(err, MapError::Failed { total: 95, .. }), "{err}");
        for (e, x) in err.failures().iter().zip((10..100u64).step_by(10)) {
            assert!(
                matches!(e, TaskError::Panicked { message, .. } if message.contains(&format!("boom {x}"))),
                "{e}"
            );
        }
        let shown = err.to_string();
        assert!(
            shown.starts_with("9 of 95 tasks failed: task 5 panicked"),
            "{shown}"
        );
        assert!(shown.ends_with("and 6 more"), "{shown}");
        // The workers lived on.
        let after: HashSet<u32> = pool.worker_pids().into_iter().collect();
        assert_eq!(before, after);
    });
}

#[test]
fn an_aborting_task_fails_with_worker_died_and_the_worker_is_replaced() {
    watchdog(|| {
        let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
        let outcomes: Vec<_> = pool.imap(abort_on, 0..10u64).collect();
        for (i, o) in outcomes.iter().enumerate() {
            if i == 3 {
                match o {
                    Err(TaskError::WorkerDied { signal, task, .. }) => {
                        assert_eq!(*signal, Some(6));
                        assert_eq!(*task, 3);
                    }
                    other => panic!("item 3: {other:?}"),
                }
            } else {
                assert_eq!(o.as_ref().unwrap(), &(i as u64));
            }
        }
        assert_eq!(pool.worker_pids().len(), 2);
    });
}

#[test]
fn a_task_past_its_timeout_fails_and_its_worker_is_replaced() {
    watchdog(|| {
        let pool = Pool::builder()
            .processes(1)
            .task_timeout(Duration::from_millis(1000))
            .build()
            .unwrap();
        let before = pool.worker_pids();
        let t = Instant::now();
        let err = pool.apply(sleep_us, 60_000_000).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(1000));
        assert!(err.is_timeout(), "{err}");
        assert!(err.to_string().contains("ran longer than"), "{err}");
        assert_eq!(pool.apply(sleep_us, 10).unwrap(), 10);
        let after = pool.worker_pids();
        assert_eq!(after.len(), 1);
        assert_ne!(before, after);
        // Other tasks of the same call go on.
        let out: Vec<_> = pool.imap(sleep_us, [10, 60_000_000, 20]).collect();
        assert_eq!(out[0], Ok(10));
        assert!(out[1].as_ref().unwrap_err().is_timeout());
        assert_eq!(out[2], Ok(20));
    });
}

#[test]
fn workers_are_recycled_after_max_tasks_per_child() {
    watchdog(|| {
        let pool = Pool::builder()
            .processes(1)
            .chunksize(1)
            .max_tasks_per_child(10)
            .build()
            .unwrap();
        let pids = pool.map(my_pid, 0..50u64).unwrap();
        let distinct: HashSet<u32> = pids.iter().copied().collect();
        assert_eq!(distinct.len(), 5, "{distinct:?}");
        for w in pids.chunks(10) {
            assert!(w.iter().all(|p| *p == w[0]));
        }
    });
}

#[test]
fn the_initializer_runs_once_per_worker() {
    watchdog(|| {
        let counter = SharedMemory::new(8).unwrap();
        let pool = Pool::builder()
            .processes(3)
            .initializer(init_worker, counter.clone())
            .build()
            .unwrap();
        let all = pool.map(was_initialized, 0..300u32).unwrap();
        assert!(all.into_iter().all(|b| b));
        pool.close();
        pool.join().unwrap();
        assert_eq!(counter.atomic_u64(0).unwrap().load(Ordering::SeqCst), 3);
    });
}

#[test]
fn terminate_leaves_no_child_process() {
    watchdog(|| {
        for method in [
            StartMethod::ForkServer,
            StartMethod::Spawn,
            StartMethod::Fork,
        ] {
            let pool = Pool::builder()
                .processes(2)
                .start_method(method)
                .build()
                .unwrap();
            let pids = pool.worker_pids();
            assert_eq!(pids.len(), 2);
            let running: Vec<_> = (0..4)
                .map(|_| pool.apply_async(sleep_us, 60_000_000))
                .collect();
            thread::sleep(Duration::from_millis(50));
            pool.terminate();
            for pid in &pids {
                assert!(gone(*pid), "worker {pid} of {method:?} is still there");
            }
            assert!(pool.worker_pids().is_empty());
            for r in running {
                assert!(matches!(r.get(), Err(TaskError::Terminated { .. })));
            }
            assert_eq!(pool.apply(square, 2), Err(TaskError::Closed));
        }
        // Dropping a pool terminates it too.
        let pool = Pool::new(2).unwrap();
        let pids = pool.worker_pids();
        drop(pool);
        for pid in pids {
            assert!(gone(pid), "worker {pid} outlived its pool");
        }
    });
}

#[test]
fn close_and_join_finish_the_submitted_work() {
    watchdog(|| {
        let pool = Pool::new(2).unwrap();
        assert!(matches!(
            pool.join(),
            Err(shoal::pool::PoolError::StillRunning)
        ));
        let r = pool.map_async(sleep_us, vec![1000; 20]);
        let s = pool.starmap_async(add, vec![(1, 2), (3, 4)]);
        pool.close();
        assert_eq!(pool.apply(square, 1), Err(TaskError::Closed));
        pool.join().unwrap();
        assert!(r.ready());
        assert_eq!(r.successful(), Some(true));
        assert_eq!(r.get().unwrap(), vec![1000; 20]);
        assert_eq!(s.get().unwrap(), vec![3, 7]);
        // A scoped pool closes and joins on drop.
        let r = {
            let pool = Pool::builder().processes(2).build_scoped().unwrap();
            assert_eq!(pool.starmap(add, [(1, 1), (2, 2)]).unwrap(), vec![2, 4]);
            pool.apply_async(sleep_us, 20_000)
        };
        assert!(r.ready());
        assert_eq!(r.get().unwrap(), 20_000);
    });
}

#[test]
fn unregistered_tasks_are_refused() {
    fn not_registered(x: u8) -> u8 {
        x
    }
    watchdog(|| {
        let pool = Pool::new(1).unwrap();
        let e = pool.apply(not_registered, 1).unwrap_err();
        assert!(matches!(e, TaskError::NotRegistered { .. }), "{e}");
        let e = pool.map(not_registered, [1, 2]).unwrap_err();
        assert!(
            matches!(e, MapError::Call(TaskError::NotRegistered { .. })),
            "{e}"
        );
    });
}

/// An argument that its worker refuses to decode when it is 13.
#[derive(serde::Serialize)]
struct NoThirteen(u64);

impl<'de> serde::Deserialize<'de> for NoThirteen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<NoThirteen, D::Error> {
        match u64::deserialize(d)? {
            13 => Err(serde::de::Error::custom("13 is refused")),
            x => Ok(NoThirteen(x)),
        }
    }
}

/// A result that its worker refuses to encode when it is odd.
#[derive(serde::Deserialize, Debug, PartialEq)]
struct EvenOnly(u64);

impl serde::Serialize for EvenOnly {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 2 == 1 {
            return Err(serde::ser::Error::custom("odd results are refused"));
        }
        s.serialize_u64(self.0)
    }
}

fn halve_odd(x: NoThirteen) -> EvenOnly {
    EvenOnly(if x.0.is_multiple_of(3) {
        x.0 | 1
    } else {
        x.0 & !1
    })
}
shoal::task!(halve_odd);

#[test]
fn items_a_worker_cannot_decode_or_encode_fail_alone_and_their_chunk_goes_on() {
    watchdog(|| {
        let pool = Pool::builder().processes(2).chunksize(10).build().unwrap();
        let outcomes: Vec<_> = pool.imap(halve_odd, (0..40).map(NoThirteen)).collect();
        for (i, o) in outcomes.iter().enumerate() {
            let i = i as u64;
            match o {
                Err(TaskError::Codec { task, error }) if i == 13 => {
                    assert_eq!(*task, 13);
                    let m = error.to_string();
                    assert!(m.contains("could not decode the argument"), "{m}");
                    assert!(m.contains("13 is refused"), "{m}");
                }
                Err(TaskError::Codec { task, error }) if i.is_multiple_of(3) => {
                    assert_eq!(*task, i);
                    let m = error.to_string();
                    assert!(m.contains("could not encode the result"), "{m}");
                }
                Ok(v) if i != 13 && !i.is_multiple_of(3) => assert_eq!(v, &EvenOnly(i & !1)),
                other => panic!("item {i}: {other:?}"),
            }
        }
        let err = pool.map(halve_odd, (0..40).map(NoThirteen)).unwrap_err();
        let mut want: Vec<u64> = (0..40)
            .filter(|x: &u64| x.is_multiple_of(3) || *x == 13)
            .collect();
        want.sort_unstable();
        assert_eq!(err.failed_tasks(), want);
    });
}

#[test]
fn async_results_are_awaited_from_tokio() {
    watchdog(|| {
        let pool = Pool::new(2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = pool.apply_async(square, 12);
            let b = pool.map_async(square, 0..10u64);
            let a = tokio::time::timeout(Duration::from_secs(60), a)
                .await
                .unwrap();
            assert_eq!(a.unwrap(), 144);
            let b = tokio::time::timeout(Duration::from_secs(60), b)
                .await
                .unwrap();
            assert_eq!(b.unwrap(), (0..10u64).map(square).collect::<Vec<_>>());
            let slow = pool.apply_async(sleep_us, 50_000);
            let t = Instant::now();
            assert_eq!(slow.await.unwrap(), 50_000);
            assert!(t.elapsed() >= Duration::from_millis(50));
        });
    });
}

#[cfg(feature = "progress")]
#[test]
fn a_progress_bar_does_not_change_results() {
    watchdog(|| {
        let pool = Pool::builder().processes(2).progress(true).build().unwrap();
        let got = pool.map(square, 0..10_000u64).unwrap();
        assert_eq!(got, (0..10_000u64).map(square).collect::<Vec<_>>());
        let n = pool.imap(square, 0u64..).take(1_000).count();
        assert_eq!(n, 1_000);
    });
}

/// Builds a pool, publishes its worker pids in `shm` (count, then pids), and keeps it
/// busy until killed.
fn pool_owner(shm: SharedMemory) {
    let pool = Pool::new(2).unwrap();
    let pids = pool.worker_pids();
    for (i, pid) in pids.iter().enumerate() {
        shm.atomic_u64(8 * (i + 1))
            .unwrap()
            .store(u64::from(*pid), Ordering::SeqCst);
    }
    shm.atomic_u64(0)
        .unwrap()
        .store(pids.len() as u64, Ordering::SeqCst);
    let _ = pool.map(sleep_us, vec![1_000_000u64; 1_000]);
}
shoal::entry!(pool_owner);

#[test]
fn sigint_in_the_parent_stops_its_workers() {
    watchdog(|| {
        for method in [StartMethod::ForkServer, StartMethod::Spawn] {
            let shm = SharedMemory::new(64).unwrap();
            let owner = shoal::Process::new(pool_owner, shm.clone())
                .start_method(method)
                .start()
                .unwrap();
            eventually("the pool owner publishes its workers", || {
                shm.atomic_u64(0).unwrap().load(Ordering::SeqCst) >= 2
            });
            let pids: Vec<u32> = (1..=2)
                .map(|i| shm.atomic_u64(8 * i).unwrap().load(Ordering::SeqCst) as u32)
                .collect();
            let _ = std::process::Command::new("kill")
                .args(["-INT", &owner.pid().to_string()])
                .status();
            assert_eq!(
                owner.join_timeout(Duration::from_secs(60)).unwrap(),
                Some(-2)
            );
            for pid in pids {
                eventually(&format!("worker {pid} ends with its pool"), || gone(pid));
            }
        }
    });
}

fn pid_after_us(us: u64) -> u32 {
    thread::sleep(Duration::from_micros(us));
    std::process::id()
}
shoal::task!(pid_after_us);

#[test]
fn short_tasks_do_not_wait_behind_a_long_one() {
    watchdog(|| {
        let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
        let mut input = vec![3_000_000u64];
        input.extend([10_000u64; 20]);
        let pids = pool.map(pid_after_us, input).unwrap();
        let stuck = pids[0];
        let behind = pids[1..].iter().filter(|p| **p == stuck).count();
        // At most the one chunk sent ahead to the busy worker waits behind the long
        // task; the other worker takes the rest.
        assert!(behind <= 1, "{behind} short tasks ran after the long one");
    });
}

fn failing_init(_: ()) -> Result<(), String> {
    Err("no configuration".to_owned())
}
shoal::entry!(failing_init);

#[test]
fn a_failing_initializer_breaks_the_pool_instead_of_looping() {
    watchdog(|| {
        let pool = Pool::builder()
            .processes(2)
            .initializer(failing_init, ())
            .build()
            .unwrap();
        let e = pool.apply(square, 1).unwrap_err();
        assert!(matches!(e, TaskError::Broken { .. }), "{e}");
        assert!(e.to_string().contains("failed with exit code 1"), "{e}");
        let e = pool.map(square, 0..10u64).unwrap_err();
        assert!(matches!(e, MapError::Call(TaskError::Broken { .. })), "{e}");
        pool.close();
        pool.join().unwrap();
    });
}

fn checksum(data: Vec<u8>) -> (usize, u64) {
    (data.len(), data.iter().map(|&b| u64::from(b)).sum())
}
shoal::task!(checksum);

fn big_result(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}
shoal::task!(big_result);

#[test]
fn arguments_and_results_larger_than_the_rings_travel_whole() {
    watchdog(|| {
        let pool = Pool::new(2).unwrap();
        let inputs: Vec<Vec<u8>> = (0..6u8)
            .map(|k| vec![k; (3 << 20) + usize::from(k)])
            .collect();
        let want: Vec<(usize, u64)> = inputs.iter().cloned().map(checksum).collect();
        assert_eq!(pool.map(checksum, inputs).unwrap(), want);
        let sizes = [10usize, 5 << 20, 100, 9 << 20];
        let got = pool.map(big_result, sizes).unwrap();
        for (g, n) in got.iter().zip(sizes) {
            assert_eq!(g, &big_result(n));
        }
    });
}

static RUNS: std::sync::OnceLock<SharedMemory> = std::sync::OnceLock::new();

fn keep_run_counter(shm: SharedMemory) {
    let _ = RUNS.set(shm);
}
shoal::entry!(keep_run_counter);

/// Aborts the first time item 7 runs (counted across workers in shared memory).
fn abort_at_seven_once(x: u64) -> u64 {
    if x == 7 {
        let runs = RUNS.get().unwrap().atomic_u64(0).unwrap();
        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
            std::process::abort();
        }
    }
    x * 10
}
shoal::task!(abort_at_seven_once);

#[test]
fn a_retry_runs_the_crashed_item_again_and_the_rest_of_its_chunk_goes_on() {
    watchdog(|| {
        for retries in [0u32, 1] {
            let runs = SharedMemory::new(8).unwrap();
            let pool = Pool::builder()
                .processes(2)
                .chunksize(5)
                .retries(retries)
                .initializer(keep_run_counter, runs.clone())
                .build()
                .unwrap();
            let out: Vec<_> = pool.imap(abort_at_seven_once, 0..20u64).collect();
            for (i, o) in out.iter().enumerate() {
                if i == 7 && retries == 0 {
                    match o {
                        Err(TaskError::WorkerDied {
                            signal: Some(6),
                            task: 7,
                            ..
                        }) => {}
                        other => panic!("item 7: {other:?}"),
                    }
                } else {
                    assert_eq!(o, &Ok(i as u64 * 10), "item {i}");
                }
            }
            let expected_runs = if retries == 0 { 1 } else { 2 };
            assert_eq!(
                runs.atomic_u64(0).unwrap().load(Ordering::SeqCst),
                expected_runs
            );
        }
    });
}

#[test]
fn map_timeout_gives_up_and_the_pool_goes_on() {
    watchdog(|| {
        let pool = Pool::new(2).unwrap();
        // Within the limit: the results.
        let got = pool
            .map_timeout(square, 0..100u64, Duration::from_secs(60))
            .unwrap();
        assert_eq!(got, (0..100u64).map(square).collect::<Vec<_>>());
        // One item runs for a minute: the call gives up at its limit, far earlier.
        let err = pool
            .map_timeout(sleep_us, [10, 60_000_000, 20], Duration::from_millis(200))
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        let MapError::Timeout {
            finished, failures, ..
        } = &err
        else {
            unreachable!()
        };
        assert!(*finished < 3 && failures.is_empty(), "{err}");
        assert!(err
            .to_string()
            .starts_with("the map did not finish within 200ms"));
        // Failures seen before the limit are in the error.
        let err = pool
            .map_timeout(panic_on_tens, [10], Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(err.failed_tasks(), [0]);
        assert!(!err.is_timeout());
        // The other worker still serves.
        assert_eq!(pool.map(square, [3u64]).unwrap(), [9]);
        pool.terminate();
    });
}

#[test]
fn imap_next_timeout_waits_at_most_its_limit_and_leaves_the_iterator_intact() {
    watchdog(|| {
        let pool = Pool::new(1).unwrap();
        // The first item sleeps 2 s: a wait of 1 ms cannot see it finish.
        let mut it = pool.imap(sleep_us, [2_000_000u64, 10]);
        let err = it.next_timeout(Duration::from_millis(1)).unwrap_err();
        assert_eq!(err.timeout, Duration::from_millis(1));
        assert_eq!(err.to_string(), "no outcome arrived within 1ms");
        // The item ran on; the same iterator yields it, then the rest, then the end.
        assert_eq!(
            it.next_timeout(Duration::from_secs(30)).unwrap(),
            Some(Ok(2_000_000))
        );
        assert_eq!(
            it.next_timeout(Duration::from_secs(30)).unwrap(),
            Some(Ok(10))
        );
        assert_eq!(it.next_timeout(Duration::from_secs(30)).unwrap(), None);
        // Failures come through as outcomes, not as time-outs.
        let mut it = pool.imap_unordered(panic_on_tens, [20u64]);
        let outcome = it.next_timeout(Duration::from_secs(30)).unwrap();
        assert!(outcome.unwrap().unwrap_err().is_panic());
        assert!(it.next().is_none());
    });
}
