//! A pool on two machines over Redis: two worker hosts, each a process of its own
//! standing for one machine, and a submitter that maps tasks over both.
//!
//! Run as is, it does everything on this machine: it starts a `redis-server` on a free
//! loopback port (or uses `--redis URL`), starts the two hosts (this same executable
//! in its `host` role), waits until both are alive, maps 1000 tasks through the
//! cluster pool, and stops the hosts.
//!
//! On two real machines, with Redis reachable from both at 10.0.0.5 and the same key
//! on every side:
//!
//! ```text
//! export SHOAL_CLUSTER_KEY=$(head -c 32 /dev/urandom | base64)   # the same everywhere
//! two_machines host --redis redis://10.0.0.5:6379 --pool demo --processes 4   # on machine A
//! two_machines host --redis redis://10.0.0.5:6379 --pool demo --processes 4   # on machine B
//! two_machines submit redis://10.0.0.5:6379 demo                              # anywhere
//! ```
//!
//! Output:
//! worker hosts alive: 2
//! 1000 tasks: sum of squares 332833500, words of 3 letters 333

use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use shoal_cluster::{ClusterKey, Pool};

fn square(x: u64) -> u64 {
    x * x
}
shoal::task!(square);

fn letters(word: String) -> usize {
    word.chars().filter(char::is_ascii_alphabetic).count()
}
shoal::task!(letters);

const WAIT: Duration = Duration::from_secs(60);

/// Processes this run started, killed when it ends however it ends.
struct Started(Vec<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        // A worker host: `host --redis URL --pool NAME [--processes N]`.
        Some("host") => {
            shoal_cluster::serve_with(match shoal_cluster::ServeOptions::from_args(&args[1..]) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            })
            .map_err(Into::into)
        }
        Some("submit") => match &args[1..] {
            [url, pool] => ClusterKey::from_env()
                .map_err(Into::into)
                .and_then(|key| submit(url, pool, key)),
            _ => Err("usage: two_machines submit URL POOL".into()),
        },
        _ => demo(&args),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Maps the tasks through the pool `pool` and prints what came back.
fn submit(url: &str, pool: &str, key: ClusterKey) -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder(url, pool).key(key).connect()?;
    let squares = pool.map(square, 0..1000u64)?;
    let words = ["shoal", "of", "fish", "one", "two", "machines"];
    let lengths = pool.map(
        letters,
        (0..1000).map(|i| words[i % words.len()].to_owned()),
    )?;
    println!(
        "{} tasks: sum of squares {}, words of 3 letters {}",
        squares.len(),
        squares.iter().sum::<u64>(),
        lengths.iter().filter(|&&n| n == 3).count()
    );
    Ok(())
}

/// Both machines on this one: Redis (unless `--redis URL`), two hosts, a submitter.
fn demo(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let mut started = Started(Vec::new());
    let url = match args {
        [flag, url] if flag == "--redis" => url.clone(),
        [] => start_redis(&mut started)?,
        _ => return Err("usage: two_machines [--redis URL] | host ... | submit URL POOL".into()),
    };
    let pool = format!("two-machines-{}", std::process::id());
    // A fresh key for this run; hosts take it from their environment.
    let mut bytes = vec![0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // One process per machine (`host` on each machine when there are two).
    for _machine in ["a", "b"] {
        let host = Command::new(std::env::current_exe()?)
            .args(["host", "--redis", &url, "--pool", &pool, "--processes", "2"])
            .env("SHOAL_CLUSTER_KEY", &hex)
            .stdout(Stdio::null())
            .spawn()?;
        started.0.push(host);
    }
    let until = Instant::now() + WAIT;
    let alive = loop {
        let alive = shoal_cluster::status(&url, &pool)?
            .hosts
            .iter()
            .filter(|h| h.alive)
            .count();
        if alive == 2 {
            break alive;
        }
        if Instant::now() > until {
            return Err(format!("only {alive} of 2 worker hosts came up within {WAIT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("worker hosts alive: {alive}");
    submit(&url, &pool, ClusterKey::new(hex.into_bytes())?)?;
    // The hosts leave on SIGTERM, handing back what they hold.
    for host in started.0.iter_mut().rev().take(2) {
        Command::new("kill")
            .args(["-TERM", &host.id().to_string()])
            .status()?;
    }
    for host in started.0.iter_mut().rev().take(2) {
        let until = Instant::now() + WAIT;
        while host.try_wait()?.is_none() {
            if Instant::now() > until {
                return Err(format!("worker host {} did not stop", host.id()).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// Starts `redis-server` on a free loopback port (recorded in `started`); its URL.
fn start_redis(started: &mut Started) -> Result<String, Box<dyn std::error::Error>> {
    for _ in 0..10 {
        // redis takes no `--port 0`: find a free port, release it, and try again should
        // another process take it first.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("could not start redis-server ({e}): install it, or give --redis URL")
            })?;
        started.0.push(child);
        let url = format!("redis://127.0.0.1:{port}");
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let pong = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok_and(|p| p == "PONG") {
                return Ok(url);
            }
            let server = started.0.last_mut().expect("just pushed");
            if server.try_wait()?.is_some() || Instant::now() > until {
                break; // the port was taken: another one
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err("redis-server did not start on any of 10 free ports".into())
}
