//! The forkserver's death is a clear error, and the next start gets a new forkserver.
//! (Its own binary: it looks for the forkserver among this process's children.)

use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use shoal::process::{ProcessError, StartMethod};
use shoal::Process;

fn sleep_long(_: ()) {
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(sleep_long);

fn exit_with(code: i32) -> i32 {
    code
}
shoal::entry!(exit_with);

/// The direct children of this process (the forkserver is the only one here).
fn own_children() -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            pids.extend(text.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
        }
    }
    pids
}

#[test]
fn forkserver_death_is_reported_and_a_new_one_starts() {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(body));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the test did not finish within 60 s"),
    }
}

fn body() {
    let child = Process::new(sleep_long, ())
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap();
    let servers = own_children();
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert!(
        !servers.contains(&child.pid()),
        "the forkserver forks the children"
    );
    let status = Command::new("kill")
        .args(["-KILL", &servers[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let err = child.join().unwrap_err();
    assert!(matches!(err, ProcessError::ForkServerDied), "{err}");
    assert!(err.to_string().starts_with("the forkserver died"), "{err}");
    // The child itself outlives the forkserver (it is not daemonic) and can still be
    // signalled through its pidfd.
    assert!(child.is_alive());
    child.kill().unwrap();

    let next = Process::new(exit_with, 5)
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap();
    assert_eq!(next.join().unwrap(), 5);
    let servers_now = own_children();
    assert_eq!(servers_now.len(), 1);
    assert_ne!(servers_now, servers);
}
