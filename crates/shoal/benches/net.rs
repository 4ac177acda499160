//! Throughput of `net::Connection` against a raw socket of the same kind, one sender
//! thread and one receiver thread, over a Unix socket and TCP loopback.
//!
//! `cargo bench -p shoal --features tls,compression --bench net` prints a Markdown
//! table: messages/s and MB/s of each, and the ratio connection / raw (the target is at
//! least 0.8 at 64 KiB). Every figure is the median of interleaved runs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use shoal::net::{Client, Connection, Listener};

const RUNS: usize = 5;
const SLICE: Duration = Duration::from_millis(400);

/// Runs `send` and `recv` on two threads for about [`SLICE`]; returns messages/s.
fn rate(size: usize, send: impl FnMut(&[u8]) + Send, recv: impl FnMut(&mut [u8]) + Send) -> f64 {
    let mut send = send;
    let mut recv = recv;
    // Find a count that takes about SLICE: at least 64 messages, 1 GiB at most.
    let count = ((2 << 30) / size).clamp(64, 200_000);
    let msg = vec![0x5au8; size];
    let mut buf = vec![0u8; size];
    let n = (count / 8).max(64);
    let time = |n: usize,
                send: &mut (dyn FnMut(&[u8]) + Send),
                recv: &mut (dyn FnMut(&mut [u8]) + Send),
                buf: &mut [u8]| {
        let start = Instant::now();
        thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..n {
                    send(&msg);
                }
            });
            for _ in 0..n {
                recv(buf);
            }
        });
        start.elapsed()
    };
    // Calibrate, then measure.
    let took = time(n, &mut send, &mut recv, &mut buf);
    let per = took.as_secs_f64() / n as f64;
    let n = ((SLICE.as_secs_f64() / per) as usize).clamp(64, count);
    let took = time(n, &mut send, &mut recv, &mut buf);
    n as f64 / took.as_secs_f64()
}

fn raw_unix() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

fn raw_tcp() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

fn conns(address: &str) -> (Connection, Connection) {
    let listener = Listener::bind(address, Some(b"bench")).unwrap();
    let target = listener.address().clone();
    let t = thread::spawn(move || Client::connect(&target, Some(b"bench")).unwrap());
    let server = listener.accept().unwrap();
    (t.join().unwrap(), server)
}

/// A raw stream with the same framing work as a connection's peer would do: a 4-byte
/// length then the payload, read with `read_exact`.
fn raw_rate<S: Read + Write + Send>(size: usize, (mut a, mut b): (S, S)) -> f64 {
    rate(
        size,
        |m| {
            a.write_all(&(m.len() as u32).to_be_bytes()).unwrap();
            a.write_all(m).unwrap();
        },
        |buf| {
            let mut h = [0u8; 4];
            b.read_exact(&mut h).unwrap();
            b.read_exact(&mut buf[..u32::from_be_bytes(h) as usize])
                .unwrap();
        },
    )
}

fn conn_rate(size: usize, (a, b): (Connection, Connection)) -> f64 {
    rate(
        size,
        |m| a.send_bytes(m).unwrap(),
        |buf| {
            b.recv_bytes_into(buf).unwrap();
        },
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let abstract_name = format!("@shoal-bench-net-{}", std::process::id());
    println!("| transport | size | raw msg/s (MB/s) | Connection msg/s (MB/s) | ratio |");
    println!("|---|---|---|---|---|");
    for (kind, address) in [("unix", abstract_name.as_str()), ("tcp", "127.0.0.1:0")] {
        for size in [1024usize, 64 * 1024, 1 << 20] {
            let mut raw = Vec::new();
            let mut conn = Vec::new();
            for _ in 0..RUNS {
                raw.push(match kind {
                    "unix" => raw_rate(size, raw_unix()),
                    _ => raw_rate(size, raw_tcp()),
                });
                conn.push(conn_rate(size, conns(address)));
            }
            let (r, c) = (median(raw), median(conn));
            let mb = |x: f64| x * size as f64 / 1e6;
            let label = if size >= 1 << 20 {
                format!("{} MiB", size >> 20)
            } else {
                format!("{} KiB", size >> 10)
            };
            println!(
                "| {kind} | {label} | {:.1}k ({:.0}) | {:.1}k ({:.0}) | {:.2} |",
                r / 1e3,
                mb(r),
                c / 1e3,
                mb(c),
                c / r
            );
        }
    }
}
