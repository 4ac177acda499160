//! Ping-pong between two processes: a shoal `Event` each way against an OS pipe each
//! way, measured in the same run.
//!
//! Both peers are real processes: the Event peer is a shoal `Process` (it receives the
//! events as its argument), the pipe peer is this benchmark program run again with
//! [`PIPE_PEER`] set (its stdin and stdout are the pipes). With two CPUs or more, the
//! benchmark pins itself to one CPU and each peer to another, so that every hop crosses
//! CPUs as in `shoal bench`'s default placement.
#![allow(missing_docs)] // criterion's macros and this bench's helpers need no docs

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::Criterion;
use shoal::process::{available_cpus, set_cpu_affinity};
use shoal::sync::Event;
use shoal::{Process, SharedMemory};

/// The environment variable that makes this program the pipe peer, pinned to the CPU
/// it names (`-` for none).
const PIPE_PEER: &str = "SHOAL_EVENT_BENCH_PIPE_PEER";

/// How long either side waits for the other before it gives up (a hang fails).
const PATIENCE: Duration = Duration::from_secs(60);

/// The Event peer: on each `ping`, clears it and sets `pong`, until `stop` is non-zero.
fn event_peer((ping, pong, stop, cpu): (Event, Event, SharedMemory, Option<usize>)) -> i32 {
    if let Some(cpu) = cpu {
        set_cpu_affinity(&[cpu]).expect("pin the event peer");
    }
    let stop = stop.atomic_u32(0).expect("the stop word");
    loop {
        if !ping.wait_timeout(PATIENCE) {
            return 1;
        }
        ping.clear();
        if stop.load(Ordering::Acquire) != 0 {
            return 0;
        }
        pong.set();
    }
}
shoal::entry!(event_peer);

/// The pipe peer: echoes 8-byte messages until end of file.
fn pipe_peer(cpu: &str) {
    if let Ok(cpu) = cpu.parse::<usize>() {
        set_cpu_affinity(&[cpu]).expect("pin the pipe peer");
    }
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut msg = [0u8; 8];
    while input.read_exact(&mut msg).is_ok() {
        output.write_all(&msg).expect("answer");
        output.flush().expect("answer");
    }
}

fn ping_pong(c: &mut Criterion, peer_cpu: Option<usize>) {
    let mut group = c.benchmark_group("ping-pong between two processes");

    let mut child: Child = Command::new(std::env::current_exe().expect("this program"))
        .env(
            PIPE_PEER,
            peer_cpu.map_or("-".to_owned(), |c| c.to_string()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the pipe peer");
    let mut tx = child.stdin.take().expect("a pipe");
    let mut rx = child.stdout.take().expect("a pipe");
    group.bench_function("os pipe, 8 bytes", |b| {
        let mut back = [0u8; 8];
        b.iter(|| {
            tx.write_all(&[7; 8]).unwrap();
            rx.read_exact(&mut back).unwrap();
        })
    });
    drop(tx);
    assert!(child.wait().expect("the pipe peer").success());

    let (ping, pong) = (Event::new().unwrap(), Event::new().unwrap());
    let stop = SharedMemory::new(4).unwrap();
    let peer = Process::new(
        event_peer,
        (ping.clone(), pong.clone(), stop.clone(), peer_cpu),
    )
    .start()
    .expect("start the event peer");
    group.bench_function("shoal Event", |b| {
        b.iter(|| {
            ping.set();
            assert!(pong.wait_timeout(PATIENCE), "the event peer stopped");
            pong.clear();
        })
    });
    stop.atomic_u32(0).unwrap().store(1, Ordering::Release);
    ping.set();
    assert_eq!(peer.join_timeout(PATIENCE).unwrap(), Some(0));
    group.finish();
}

fn main() {
    if let Ok(cpu) = std::env::var(PIPE_PEER) {
        return pipe_peer(&cpu);
    }
    let cpus = available_cpus().expect("this process's CPUs");
    let peer_cpu = match cpus.as_slice() {
        [mine, theirs, ..] => {
            set_cpu_affinity(&[*mine]).expect("pin the benchmark");
            Some(*theirs)
        }
        _ => None,
    };
    let mut c = Criterion::default().configure_from_args();
    ping_pong(&mut c, peer_cpu);
    c.final_summary();
}
