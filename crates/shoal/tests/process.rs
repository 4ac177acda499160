//! Starting, supervising and signalling child processes, for every start method.

use std::thread;
use std::time::{Duration, Instant};

use shoal::process::{ProcessError, StartMethod};
use shoal::{Process, SharedMemory};

mod common;
use common::{watchdog, Reap, METHODS};

fn method_code(m: StartMethod) -> u8 {
    match m {
        StartMethod::Spawn => 0,
        StartMethod::ForkServer => 1,
        _ => 2,
    }
}

fn method_of(code: u8) -> StartMethod {
    [
        StartMethod::Spawn,
        StartMethod::ForkServer,
        StartMethod::Fork,
    ][code as usize]
}

fn write_and_exit((shm, value, code): (SharedMemory, u32, i32)) -> i32 {
    shm.write(0, &value.to_le_bytes()).unwrap();
    code
}
shoal::entry!(write_and_exit);

fn sleep_long(_: ()) {
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(sleep_long);

fn panics(_: ()) {
    panic!("deliberate panic in a child");
}
shoal::entry!(panics);

fn report_identity(shm: SharedMemory) {
    let me = shoal::current_process();
    let parent = shoal::parent_process().map_or(0, |p| p.pid());
    let text = format!("{}|{}|{}", me.name(), me.pid(), parent);
    shm.write(0, &(text.len() as u32).to_le_bytes()).unwrap();
    shm.write(4, text.as_bytes()).unwrap();
}
shoal::entry!(report_identity);

/// Starts a daemonic grandchild, publishes its pid, then waits to be killed.
fn daemon_parent((shm, grandchild_method): (SharedMemory, u8)) -> Result<(), ProcessError> {
    let grandchild = Process::new(sleep_long, ())
        .daemon(true)
        .start_method(method_of(grandchild_method))
        .start()?;
    shm.write(0, &grandchild.pid().to_le_bytes()).unwrap();
    thread::sleep(Duration::from_secs(600));
    Ok(())
}
shoal::entry!(daemon_parent);

fn not_registered(_: ()) {}

fn read_u32(shm: &SharedMemory, offset: usize) -> u32 {
    let mut buf = [0u8; 4];
    shm.read(offset, &mut buf).unwrap();
    u32::from_le_bytes(buf)
}

#[test]
fn child_writes_shared_memory_and_exits_with_its_code() {
    watchdog(|| {
        for (i, method) in METHODS.into_iter().enumerate() {
            let shm = SharedMemory::new(64).unwrap();
            let value = 0xC0FFEE + i as u32;
            let child = Process::new(write_and_exit, (shm.clone(), value, 40 + i as i32))
                .start_method(method)
                .start()
                .unwrap();
            assert_eq!(child.start_method(), method);
            assert_eq!(child.join().unwrap(), 40 + i as i32, "{method:?}");
            assert_eq!(read_u32(&shm, 0), value, "{method:?}");
            assert_eq!(child.exitcode(), Some(40 + i as i32));
            assert!(!child.is_alive());
        }
    });
}

#[test]
fn join_timeout_terminate_and_kill() {
    watchdog(|| {
        for method in METHODS {
            let child = Reap(
                Process::new(sleep_long, ())
                    .start_method(method)
                    .start()
                    .unwrap(),
            );
            let t = Instant::now();
            assert_eq!(
                child.0.join_timeout(Duration::from_millis(200)).unwrap(),
                None
            );
            assert!(t.elapsed() >= Duration::from_millis(200));
            assert!(child.0.is_alive());
            assert_eq!(child.0.exitcode(), None);
            child.0.terminate().unwrap();
            assert_eq!(child.0.join().unwrap(), -15, "{method:?}");
            // Signalling an ended child is not an error.
            child.0.terminate().unwrap();

            let child = Reap(
                Process::new(sleep_long, ())
                    .start_method(method)
                    .start()
                    .unwrap(),
            );
            child.0.kill().unwrap();
            assert_eq!(child.0.join().unwrap(), -9, "{method:?}");
        }
    });
}

#[test]
fn panicking_child_exits_with_1() {
    watchdog(|| {
        for method in METHODS {
            let child = Process::new(panics, ())
                .start_method(method)
                .start()
                .unwrap();
            assert_eq!(child.join().unwrap(), 1, "{method:?}");
        }
    });
}

#[test]
fn unregistered_entry_and_closures_are_refused() {
    let err = Process::new(not_registered, ()).start().unwrap_err();
    assert!(matches!(err, ProcessError::NotRegistered { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("`process::not_registered` is not registered"),
        "{msg}"
    );
    assert!(msg.contains("shoal::entry!(not_registered);"), "{msg}");

    let captured = 5;
    let err = Process::new(move |_: ()| captured, ()).start().unwrap_err();
    assert!(matches!(err, ProcessError::NotAFunction { .. }), "{err}");
}

#[test]
fn child_knows_its_name_and_parent() {
    watchdog(|| {
        assert_eq!(shoal::current_process().name(), "MainProcess");
        assert!(shoal::parent_process().is_none());
        for method in METHODS {
            let shm = SharedMemory::new(256).unwrap();
            let name = format!("identity-{method:?}");
            let child = Process::new(report_identity, shm.clone())
                .name(name.clone())
                .start_method(method)
                .start()
                .unwrap();
            assert_eq!(child.name(), name);
            assert_eq!(child.join().unwrap(), 0);
            let len = read_u32(&shm, 0) as usize;
            let mut text = vec![0u8; len];
            shm.read(4, &mut text).unwrap();
            let expected = format!("{name}|{}|{}", child.pid(), std::process::id());
            assert_eq!(String::from_utf8(text).unwrap(), expected);
        }
    });
}

#[test]
fn active_children_lists_running_children() {
    watchdog(|| {
        let children: Vec<Reap> = METHODS
            .into_iter()
            .map(|m| {
                Reap(
                    Process::new(sleep_long, ())
                        .start_method(m)
                        .start()
                        .unwrap(),
                )
            })
            .collect();
        let active: Vec<u32> = shoal::active_children().iter().map(Process::pid).collect();
        for c in &children {
            assert!(
                active.contains(&c.0.pid()),
                "{} not in {active:?}",
                c.0.pid()
            );
            c.0.kill().unwrap();
            assert_eq!(c.0.join().unwrap(), -9);
        }
        let active: Vec<u32> = shoal::active_children().iter().map(Process::pid).collect();
        for c in &children {
            assert!(!active.contains(&c.0.pid()));
        }
    });
}

/// Whether `pid` has ended: gone from /proc, or a zombie.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn daemon_dies_with_its_killed_parent() {
    watchdog(|| {
        for method in METHODS {
            let shm = SharedMemory::new(64).unwrap();
            let parent = Reap(
                Process::new(daemon_parent, (shm.clone(), method_code(method)))
                    .start_method(StartMethod::Spawn)
                    .start()
                    .unwrap(),
            );
            let t = Instant::now();
            let grandchild = loop {
                let pid = read_u32(&shm, 0);
                if pid != 0 {
                    break pid;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "no grandchild pid ({method:?}); parent exit {:?}",
                    parent.0.exitcode()
                );
                thread::sleep(Duration::from_millis(5));
            };
            assert!(!gone(grandchild));
            parent.0.kill().unwrap();
            assert_eq!(parent.0.join().unwrap(), -9);
            let t = Instant::now();
            while !gone(grandchild) {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "daemon {grandchild} ({method:?}) outlived its parent"
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
    });
}

fn sum_segments(segments: Vec<SharedMemory>) -> i32 {
    let mut sum = 0;
    for (i, shm) in segments.iter().enumerate() {
        let mut b = [0u8];
        shm.read(0, &mut b).unwrap();
        sum += i32::from(b[0]);
        shm.write(1, &[i as u8 + 100]).unwrap();
    }
    sum
}
shoal::entry!(sum_segments);

#[test]
fn several_objects_travel_together() {
    watchdog(|| {
        for method in METHODS {
            let segments: Vec<SharedMemory> = (0..10u8)
                .map(|i| {
                    let shm = SharedMemory::new(8).unwrap();
                    shm.write(0, &[i]).unwrap();
                    shm
                })
                .collect();
            let child = Process::new(sum_segments, segments.clone())
                .start_method(method)
                .start()
                .unwrap();
            assert_eq!(child.join().unwrap(), 45, "{method:?}");
            for (i, shm) in segments.iter().enumerate() {
                let mut b = [0u8];
                shm.read(1, &mut b).unwrap();
                assert_eq!(b[0], i as u8 + 100, "{method:?}");
            }
        }
    });
}

/// Exits with a checksum of `bytes` that also depends on their order.
fn checksum(bytes: Vec<u8>) -> i32 {
    let sum = bytes.iter().enumerate().fold(0u32, |acc, (i, &b)| {
        acc.wrapping_mul(31).wrapping_add(b as u32 ^ i as u32)
    });
    (sum % 251) as i32
}
shoal::entry!(checksum);

#[test]
fn arguments_of_any_size_arrive_whole_and_the_next_start_is_unaffected() {
    watchdog(|| {
        for method in METHODS {
            // Sizes around one read of the forkserver, and far above.
            for len in [0usize, 1, 4000, 4096, 4097, 100_000, 3 << 20] {
                let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let want = checksum(bytes.clone());
                let child = Process::new(checksum, bytes)
                    .start_method(method)
                    .start()
                    .unwrap();
                assert_eq!(child.join().unwrap(), want, "{method:?}, {len} bytes");
            }
        }
    });
}

fn tiny_sleep(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}
shoal::entry!(tiny_sleep);

#[test]
fn many_threads_start_children_at_once() {
    watchdog(|| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                thread::spawn(move || {
                    for i in 0..5u64 {
                        let method =
                            [StartMethod::ForkServer, StartMethod::Spawn][(t + i as usize) % 2];
                        let child = Process::new(tiny_sleep, i)
                            .start_method(method)
                            .start()
                            .unwrap();
                        assert_eq!(child.join().unwrap(), 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// Exit codes are 8 bits: the count in tens.
fn count_segments(segments: Vec<SharedMemory>) -> i32 {
    segments.len() as i32 / 10
}
shoal::entry!(count_segments);

#[test]
fn too_many_objects_for_the_forkserver_is_a_clear_error() {
    watchdog(|| {
        let segments: Vec<SharedMemory> = (0..300).map(|_| SharedMemory::new(1).unwrap()).collect();
        let err = Process::new(count_segments, segments.clone())
            .start_method(StartMethod::ForkServer)
            .start()
            .unwrap_err();
        assert!(matches!(err, ProcessError::Start { .. }), "{err}");
        assert!(err.to_string().contains("at most 253 objects"), "{err}");
        // Spawn has no such limit.
        let child = Process::new(count_segments, segments)
            .start_method(StartMethod::Spawn)
            .start()
            .unwrap();
        assert_eq!(child.join().unwrap(), 30);
    });
}

fn exit_code(code: i32) -> i32 {
    code
}
shoal::entry!(exit_code);

#[test]
fn a_ready_sentinel_means_the_exit_code_is_known() {
    use shoal::channel::{wait, Waitable};
    watchdog(|| {
        for method in METHODS {
            for i in 0..30 {
                let child = Reap(
                    Process::new(exit_code, i)
                        .start_method(method)
                        .start()
                        .unwrap(),
                );
                let ready = wait(&[&child.0 as &dyn Waitable], Some(Duration::from_secs(30)));
                assert_eq!(ready.unwrap(), [0], "{method:?}");
                assert!(!child.0.is_alive(), "{method:?}: ended, yet alive");
                assert_eq!(child.0.exitcode(), Some(i), "{method:?}");
            }
        }
    });
}
