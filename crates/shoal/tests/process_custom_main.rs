//! Children of a binary whose `main` shoal does not know about (`harness = false`), and
//! daemonic children stopped when their parent returns from `main`.
//!
//! Speaks the small part of libtest's command line that test runners use (`--list`,
//! `--exact NAME`), so that nextest can run it.

use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use shoal::process::StartMethod;
use shoal::{Process, SharedMemory};

fn add((shm, a, b): (SharedMemory, u8, u8)) -> i32 {
    shm.write(0, &[a + b]).unwrap();
    i32::from(a) * 2
}
shoal::entry!(add);

fn sleep_long(_: ()) {
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(sleep_long);

const START_DAEMON_AND_EXIT: &str = "--start-daemon-and-exit";

fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn children_run_without_libtest() {
    for method in [
        StartMethod::Spawn,
        StartMethod::ForkServer,
        StartMethod::Fork,
    ] {
        let shm = SharedMemory::new(8).unwrap();
        let child = Process::new(add, (shm.clone(), 20, 22))
            .start_method(method)
            .start()
            .unwrap();
        assert_eq!(child.join().unwrap(), 40, "{method:?}");
        let mut out = [0u8];
        shm.read(0, &mut out).unwrap();
        assert_eq!(out[0], 42, "{method:?}");
    }
}

fn daemon_is_terminated_when_parent_returns_from_main() {
    for method in ["spawn", "forkserver", "fork"] {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([START_DAEMON_AND_EXIT, method])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let pid: u32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let t = Instant::now();
        while !gone(pid) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "daemon {pid} ({method}) outlived its parent's exit"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

const TESTS: [(&str, fn()); 2] = [
    ("children_run_without_libtest", children_run_without_libtest),
    (
        "daemon_is_terminated_when_parent_returns_from_main",
        daemon_is_terminated_when_parent_returns_from_main,
    ),
];

/// Runs `test` under a 60 s watchdog.
fn run(name: &str, test: fn()) -> bool {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let ok = std::panic::catch_unwind(test).is_ok();
        let _ = tx.send(ok);
    });
    let ok = rx.recv_timeout(Duration::from_secs(60)).unwrap_or(false);
    println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(START_DAEMON_AND_EXIT) {
        let method = match args.get(1).map(String::as_str) {
            Some("spawn") => StartMethod::Spawn,
            Some("fork") => StartMethod::Fork,
            _ => StartMethod::ForkServer,
        };
        let daemon = Process::new(sleep_long, ())
            .daemon(true)
            .start_method(method)
            .start()
            .unwrap();
        println!("{}", daemon.pid());
        // Returning from main runs the exit handlers, which stop the daemon.
        return;
    }
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in TESTS {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = args
        .iter()
        .position(|a| a == "--exact")
        .and_then(|i| args.get(i + 1));
    let filter = args.iter().find(|a| !a.starts_with("--"));
    let mut failed = 0;
    for (name, test) in TESTS {
        let selected = match (exact, filter) {
            (Some(e), _) => e == name,
            (None, Some(f)) => name.contains(f.as_str()),
            (None, None) => true,
        };
        if selected && !run(name, test) {
            failed += 1;
        }
    }
    if failed > 0 {
        std::process::exit(101);
    }
}
