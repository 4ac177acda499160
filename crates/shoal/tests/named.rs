//! Objects opened by name from processes that did not inherit them: this binary is run
//! again as an unrelated program (`std::process::Command`, no descriptor passed), which
//! opens or serves queues and pipe ends by name alone.
//!
//! `harness = false`: the peer roles are chosen by the first argument before libtest
//! would see it; the small part of libtest's command line that nextest uses (`--list`,
//! `--exact NAME`) is spoken here.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use shoal::codec::Codec;
use shoal::process::{open_named, Named, NamedError};
use shoal::{Connection, Queue};

const WAIT: Duration = Duration::from_secs(30);
const PEER: &str = "--named-peer";

fn unique(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "itest-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// This binary as a peer in `role`, with its stdout piped.
fn peer(role: &str, args: &[&str]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg(PEER)
        .arg(role)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The peer's next line of output (fails after [`WAIT`]).
fn line_of(out: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

/// Waits for `child` at most [`WAIT`]; its exit code.
fn wait(mut child: Child) -> i32 {
    for _ in 0..WAIT.as_millis() / 10 {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    panic!("the peer did not exit within {WAIT:?}");
}

// ---- the peer's roles -------------------------------------------------------------

/// Opens `jobs` (MessagePack) and `answers` by name, answers each job `(i, text)` with
/// `(i * 2, text.len())`, until the job `(u32::MAX, _)`.
fn role_worker(jobs: &str, answers: &str) {
    let jobs: Queue<(u32, String)> = Queue::open_named(jobs).unwrap();
    assert_eq!(jobs.codec(), Codec::MessagePack);
    let answers: Queue<(u32, usize)> = Queue::open_named(answers).unwrap();
    loop {
        let (i, text) = jobs.get_timeout(WAIT).unwrap();
        if i == u32::MAX {
            break;
        }
        answers.put((i * 2, text.len())).unwrap();
    }
    println!("worker done");
}

/// Serves a pipe end under `name`, answers each message reversed until an empty one.
fn role_pipe_server(name: &str) {
    let (ours, theirs) = shoal::Pipe::duplex().unwrap();
    let served = Named::serve(name, theirs).unwrap();
    println!("ready");
    loop {
        let mut data = ours.recv_bytes_timeout(WAIT).unwrap();
        if data.is_empty() {
            break;
        }
        data.reverse();
        ours.send_bytes(&data).unwrap();
    }
    drop(served);
    println!("pipe server done");
}

/// Serves a queue holding three messages under `name`, then waits to be killed.
fn role_doomed(name: &str) {
    let q = Queue::builder()
        .codec(Codec::Raw)
        .build_named::<()>(name)
        .unwrap();
    for m in [&b"one"[..], b"two", b"three"] {
        q.put_bytes(m).unwrap();
    }
    println!("ready");
    thread::sleep(WAIT);
}

/// Prints the errors of opening a name nobody serves, and of a typed open of a queue
/// of raw bytes.
fn role_errors(unserved: &str, raw: &str) {
    println!("{}", Queue::<u8>::open_named(unserved).unwrap_err());
    println!("{}", Queue::<u8>::open_named(raw).unwrap_err());
    let wrong = open_named::<Connection>(raw).unwrap_err();
    println!("{wrong}");
}

// ---- the tests --------------------------------------------------------------------

/// A Rust process creates two named queues; an unrelated one opens them by name and
/// they exchange 10 000 MessagePack messages.
fn an_unrelated_process_opens_queues_by_name_and_exchanges_messages() {
    let (jobs_name, answers_name) = (unique("jobs"), unique("answers"));
    let jobs = Queue::builder()
        .codec(Codec::MessagePack)
        .maxsize(64)
        .build_named::<(u32, String)>(&jobs_name)
        .unwrap();
    let answers = Queue::<(u32, usize)>::create_named(&answers_name).unwrap();
    let mut child = peer("worker", &[&jobs_name, &answers_name]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let n = 10_000u32;
    let feeder = {
        let jobs = Queue::clone(&jobs);
        thread::spawn(move || {
            for i in 0..n {
                jobs.put_timeout((i, "x".repeat(i as usize % 7)), WAIT)
                    .unwrap();
            }
            jobs.put_timeout((u32::MAX, String::new()), WAIT).unwrap();
        })
    };
    for i in 0..n {
        assert_eq!(answers.get_timeout(WAIT).unwrap(), (i * 2, i as usize % 7));
    }
    feeder.join().unwrap();
    assert_eq!(line_of(&mut out), "worker done");
    assert_eq!(wait(child), 0);
}

/// An unrelated process serves a pipe end by name; this one opens it and talks.
fn a_pipe_end_served_by_another_process_is_opened_by_name() {
    let name = unique("pipe");
    let mut child = peer("pipe-server", &[&name]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(line_of(&mut out), "ready");
    let end: Connection = open_named(&name).unwrap();
    for i in 0..1000u32 {
        let message = format!("message {i}").into_bytes();
        end.send_bytes(&message).unwrap();
        let mut back = end.recv_bytes_timeout(WAIT).unwrap();
        back.reverse();
        assert_eq!(back, message);
    }
    end.send_bytes(b"").unwrap();
    assert_eq!(line_of(&mut out), "pipe server done");
    assert_eq!(wait(child), 0);
}

/// The creator is killed: what it put is still there for the opener, and the name is
/// no longer served.
fn a_killed_creator_leaves_the_opened_queue_working_and_the_name_free() {
    let name = unique("doomed");
    let mut child = peer("doomed", &[&name]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(line_of(&mut out), "ready");
    let q = Queue::<()>::open_named_bytes(&name).unwrap();
    assert_eq!(q.codec(), Codec::Raw);
    child.kill().unwrap();
    assert_ne!(wait(child), 0);
    for m in [&b"one"[..], b"two", b"three"] {
        assert_eq!(q.get_bytes_timeout(WAIT).unwrap(), m);
    }
    let err = Queue::<()>::open_named_bytes(&name).unwrap_err();
    assert!(matches!(err, NamedError::NotServed { .. }), "{err}");
    // The name can be served again by anyone.
    let again = Queue::<u8>::create_named(&name).unwrap();
    drop(again);
}

/// The errors another process sees: no such name, a typed open of raw bytes, a pipe
/// end asked of a queue.
fn openers_are_told_what_is_wrong() {
    let (unserved, raw) = (unique("nobody"), unique("raw"));
    let _raw = Queue::builder()
        .codec(Codec::Raw)
        .build_named::<()>(&raw)
        .unwrap();
    let mut child = peer("errors", &[&unserved, &raw]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(
        line_of(&mut out),
        format!(
            "no shoal queue named '{unserved}' is served by a live process of this user on \
             this machine (a named object is served from its creation until its creator \
             drops it or exits)"
        )
    );
    assert_eq!(
        line_of(&mut out),
        format!(
            "the queue '{raw}' carries raw bytes messages, not typed messages: open it with \
             Queue::open_named_bytes and use put_bytes/get_bytes"
        )
    );
    assert_eq!(
        line_of(&mut out),
        format!("the shoal object named '{raw}' is a queue, not a pipe")
    );
    assert_eq!(wait(child), 0);
}

const TESTS: [(&str, fn()); 4] = [
    (
        "an_unrelated_process_opens_queues_by_name_and_exchanges_messages",
        an_unrelated_process_opens_queues_by_name_and_exchanges_messages,
    ),
    (
        "a_pipe_end_served_by_another_process_is_opened_by_name",
        a_pipe_end_served_by_another_process_is_opened_by_name,
    ),
    (
        "a_killed_creator_leaves_the_opened_queue_working_and_the_name_free",
        a_killed_creator_leaves_the_opened_queue_working_and_the_name_free,
    ),
    (
        "openers_are_told_what_is_wrong",
        openers_are_told_what_is_wrong,
    ),
];

/// Runs `test` under a 90 s watchdog.
fn run(name: &str, test: fn()) -> bool {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let ok = std::panic::catch_unwind(test).is_ok();
        let _ = tx.send(ok);
    });
    let ok = rx.recv_timeout(Duration::from_secs(90)).unwrap_or(false);
    println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if args.first() == Some(&PEER) {
        match &args[1..] {
            ["worker", jobs, answers] => role_worker(jobs, answers),
            ["pipe-server", name] => role_pipe_server(name),
            ["doomed", name] => role_doomed(name),
            ["errors", unserved, raw] => role_errors(unserved, raw),
            other => panic!("unknown peer role {other:?}"),
        }
        return;
    }
    if args.contains(&"--list") {
        if !args.contains(&"--ignored") {
            for (name, _) in TESTS {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = args
        .iter()
        .position(|a| *a == "--exact")
        .and_then(|i| args.get(i + 1))
        .filter(|a| !a.starts_with("--"));
    let filter = args.iter().find(|a| !a.starts_with("--"));
    let mut failed = 0;
    for (name, test) in TESTS {
        let selected = match (exact, filter) {
            (Some(e), _) => *e == name,
            (None, Some(f)) => name.contains(*f),
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
