//! `shoal cluster status` against a real `redis-server` of the test's own.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a free loopback port, stopped when dropped.
struct Redis {
    port: u16,
    child: Child,
    dir: std::path::PathBuf,
}

impl Redis {
    fn start() -> Redis {
        let dir = std::env::temp_dir().join(format!("shoal-cli-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for _ in 0..10 {
            // redis takes no `--port 0`: take a free port, release it, retry on collision.
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "yes", "--dir"])
                .arg(&dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("these tests need redis-server; scripts/test.sh installs it");
            let until = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken: another one
                }
                let up = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                    .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                    .is_ok();
                if up {
                    return Redis { port, child, dir };
                }
                if Instant::now() > until {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("redis-server on port {port} did not answer");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start on any of 10 free ports");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `shoal ARGS` with a watchdog; gives (exit code, stdout, stderr).
fn shoal(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("`shoal {}` did not finish within 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_shows_tasks_pending_and_dead_lettered() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let pool = format!("cli-status-{}", std::process::id());
    // Two tasks waiting at normal priority, one dead letter: what a pool with no
    // host looks like after a forged message.
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for _ in 0..2 {
        let _: String = redis::cmd("XADD")
            .arg(format!("shoal:{{{pool}}}:tasks:1"))
            .arg("*")
            .arg("m")
            .arg("x")
            .query(&mut con)
            .unwrap();
    }
    let _: String = redis::cmd("XADD")
        .arg(format!("shoal:{{{pool}}}:dead"))
        .arg("*")
        .arg("reason")
        .arg("test")
        .query(&mut con)
        .unwrap();
    let (code, out, err) = shoal(&["cluster", "status", "--redis", &url, "--pool", &pool]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(
            "0 worker hosts, 0 in flight, 2 pending (high 0, normal 2, low 0), 1 dead-lettered"
        ),
        "{out}"
    );
    let (code, out, _) = shoal(&[
        "cluster", "status", "--redis", &url, "--pool", &pool, "--json",
    ]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pending"], 2);
    assert_eq!(v["dead_lettered"], 1);
}

#[test]
fn status_of_an_unreachable_redis_is_an_error_sentence() {
    let (code, _, err) = shoal(&[
        "cluster",
        "status",
        "--redis",
        "redis://127.0.0.1:1",
        "--pool",
        "p",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("error: could not read the status of pool p: could not connect to redis"),
        "{err}"
    );
}
