//! The harness of the cluster tests: a real `redis-server` on a free loopback port,
//! worker hosts as separate processes, and a watchdog.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable that turns the test binary into a worker host: its value
/// is the host's command line, one argument per line.
pub const HOST_ARGS_ENV: &str = "SHOAL_CLUSTER_TEST_HOST_ARGS";
/// The name a host's tasks report (inherited by its local workers).
pub const HOST_NAME_ENV: &str = "SHOAL_CLUSTER_TEST_HOST_NAME";

/// The key every test host and submitter shares.
pub const KEY: &[u8] = b"test cluster key, 32 bytes long!";

/// Processes the harness started, killed by the watchdog when a test hangs.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn track(pid: u32) {
    CHILDREN.lock().unwrap().push(pid);
}

fn untrack(pid: u32) {
    CHILDREN.lock().unwrap().retain(|p| *p != pid);
}

fn kill_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Fails the test (killing what it started) when it runs longer than `limit`.
pub fn watchdog(name: &'static str, limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("watchdog: {name} still running after {limit:?}; killing its processes");
        for pid in CHILDREN.lock().unwrap().iter() {
            kill_pid(*pid, "KILL");
        }
        std::process::exit(101);
    });
}

/// A unique name for this test's pool.
pub fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits until `ready()` or `limit`; panics with `what` on timeout.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < until,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `redis-server` of the test's own, with append-only persistence in a temporary
/// directory.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// More arguments of `redis-server` (TLS, a password).
    extra: Vec<String>,
    /// `redis` or `rediss`.
    scheme: &'static str,
    /// The userinfo part of the URL (`:password@`), or nothing.
    auth: String,
    /// The network namespace it runs in, if not this one.
    netns: Option<String>,
    /// The address it listens on.
    addr: String,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port. Fails (never skips) when
    /// `redis-server` is not installed.
    pub fn start() -> Redis {
        Redis::start_with(|_| (Vec::new(), "redis", String::new()))
    }

    /// Starts a `redis-server` that takes TLS only, with a certificate for 127.0.0.1
    /// (its PEM file is given back, and named by `SSL_CERT_FILE` for this process and
    /// its children) and the password `password`.
    pub fn start_tls(password: &str) -> (Redis, PathBuf) {
        let mut cert_file = PathBuf::new();
        let r = Redis::start_with(|dir| {
            let certified =
                rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
            cert_file = dir.join("server.crt");
            let key_file = dir.join("server.key");
            std::fs::write(&cert_file, certified.cert.pem()).unwrap();
            std::fs::write(&key_file, certified.key_pair.serialize_pem()).unwrap();
            // The client trusts the certificate through SSL_CERT_FILE, in this process
            // and in the hosts, which inherit its environment. Set before the first
            // connection; each test runs in a process of its own.
            std::env::set_var("SSL_CERT_FILE", &cert_file);
            let extra = vec![
                "--tls-cert-file".to_owned(),
                cert_file.display().to_string(),
                "--tls-key-file".to_owned(),
                key_file.display().to_string(),
                "--tls-ca-cert-file".to_owned(),
                cert_file.display().to_string(),
                "--tls-auth-clients".to_owned(),
                "no".to_owned(),
                "--requirepass".to_owned(),
                password.to_owned(),
            ];
            (extra, "rediss", format!(":{password}@"))
        });
        (r, cert_file)
    }

    /// Starts a `redis-server` inside the network namespace `netns`, listening on
    /// `addr:6379` (the port is free in a namespace of its own).
    pub fn start_in(netns: &str, addr: &str) -> Redis {
        let dir = std::env::temp_dir().join(unique("shoal-cluster-redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            port: 6379,
            dir,
            child: None,
            extra: Vec::new(),
            scheme: "redis",
            auth: String::new(),
            netns: Some(netns.to_owned()),
            addr: addr.to_owned(),
        };
        assert!(
            r.launch(),
            "redis-server did not start in namespace {netns}"
        );
        r
    }

    fn start_with(
        setup: impl FnOnce(&std::path::Path) -> (Vec<String>, &'static str, String),
    ) -> Redis {
        let dir = std::env::temp_dir().join(unique("shoal-cluster-redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let (extra, scheme, auth) = setup(&dir);
        for _ in 0..10 {
            // redis takes no `--port 0`: find a free port, release it, and retry
            // should another process take it first.
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut r = Redis {
                port,
                dir: dir.clone(),
                child: None,
                extra: extra.clone(),
                scheme,
                auth: auth.clone(),
                netns: None,
                addr: "127.0.0.1".to_owned(),
            };
            if r.launch() {
                return r;
            }
        }
        panic!("redis-server did not start on any of 10 free ports");
    }

    /// Starts the server on `self.port`; false when it exited (the port was taken).
    fn launch(&mut self) -> bool {
        let port = self.port.to_string();
        let ports: [&str; 4] = if self.scheme == "rediss" {
            ["--port", "0", "--tls-port", &port]
        } else {
            ["--port", &port, "--tls-port", "0"]
        };
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "redis-server"]);
                c
            }
            None => Command::new("redis-server"),
        };
        let child = cmd
            .args(ports)
            .args(&self.extra)
            .args(["--bind", &self.addr])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => panic!(
                "could not start redis-server ({e}): these tests need it; \
                 scripts/test.sh installs it (apt-get install -y redis-server)"
            ),
        };
        track(child.id());
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                untrack(child.id());
                return false;
            }
            if self.ping() {
                self.child = Some(child);
                return true;
            }
            assert!(
                Instant::now() < until,
                "redis-server on port {} did not answer",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        // Through the client, so that TLS and the password are part of the check;
        // a server still loading its append-only file answers with an error.
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok_and(|r| r == "PONG")
    }

    pub fn url(&self) -> String {
        format!("{}://{}{}:{}", self.scheme, self.auth, self.addr, self.port)
    }

    /// Stops the server (SHUTDOWN: the append-only file is flushed) and starts it again
    /// on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.launch(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(mut con) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) {
                // SHUTDOWN flushes the append-only file; the server closes the
                // connection instead of answering.
                let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
            }
            let until = Instant::now() + Duration::from_secs(20);
            while !matches!(c.try_wait(), Ok(Some(_))) {
                if Instant::now() > until {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            untrack(c.id());
        }
    }

    /// A plain connection, for what the tests check in Redis itself.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            untrack(c.id());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A worker host: this test binary again, running only its host entry.
pub struct Host {
    pub name: String,
    child: Option<Child>,
}

impl Host {
    /// Starts a host named `name` serving `pool` with `processes` local processes.
    pub fn start(redis: &Redis, pool: &str, name: &str, processes: usize, extra: &[&str]) -> Host {
        Host::start_in(None, redis, pool, name, processes, extra)
    }

    /// As [`Host::start`], inside the network namespace `netns` when given.
    pub fn start_in(
        netns: Option<&str>,
        redis: &Redis,
        pool: &str,
        name: &str,
        processes: usize,
        extra: &[&str],
    ) -> Host {
        let mut args = vec![
            "--redis".to_owned(),
            redis.url(),
            "--pool".to_owned(),
            pool.to_owned(),
            "--processes".to_owned(),
            processes.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match netns {
            // `ip netns exec` execs the program: the host is still our child.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = cmd
            .args([
                "worker_host_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOST_ARGS_ENV, args.join("\n"))
            .env(HOST_NAME_ENV, name)
            .env(shoal_cluster::KEY_ENV, std::str::from_utf8(KEY).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("could not start a worker host");
        track(child.id());
        Host {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            untrack(c.id());
        }
    }

    /// SIGTERM, then waits up to `limit` for the exit; gives whether it exited with 0.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        kill_pid(c.id(), "TERM");
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                untrack(c.id());
                return st.success();
            }
            if Instant::now() > until {
                let _ = c.kill();
                let _ = c.wait();
                untrack(c.id());
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The body of the worker host entry: serves when the harness started this process as
/// a host, and exits; returns at once otherwise.
pub fn host_entry() {
    let Ok(args) = std::env::var(HOST_ARGS_ENV) else {
        return;
    };
    // A host whose test process died stops too.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(3);
        }
        std::thread::sleep(Duration::from_millis(100));
    });
    let opts = shoal_cluster::ServeOptions::from_args(args.lines()).expect("host arguments");
    match shoal_cluster::serve_with(opts) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("worker host failed: {e}");
            std::process::exit(2);
        }
    }
}

/// Network namespaces joined by veth pairs to a bridge in this namespace, removed
/// when dropped.
pub struct Netns {
    pub names: Vec<String>,
    bridge: String,
    /// The subnet's first three octets.
    pub net: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("could not run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// `n` namespaces; namespace `i` has address `<net>.{10 + i}/24`, this namespace
    /// `<net>.1` on the bridge. Err when namespaces cannot be made here.
    pub fn create(n: usize) -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        // A subnet of test addresses inside namespaces this test made.
        let net = format!("10.213.{}", 20 + id % 200);
        let mut me = Netns {
            names: Vec::new(),
            bridge: format!("shbr{id}"),
            net,
        };
        ip(&["link", "add", &me.bridge, "type", "bridge"])?;
        let cidr = format!("{}.1/24", me.net);
        ip(&["addr", "add", &cidr, "dev", &me.bridge])?;
        ip(&["link", "set", &me.bridge, "up"])?;
        for i in 0..n {
            let ns = format!("shoal-{id}-{i}");
            ip(&["netns", "add", &ns])?;
            me.names.push(ns.clone());
            let outer = format!("sho{id}x{i}");
            let inner = format!("shi{id}x{i}");
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &outer, "master", &me.bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            let addr = format!("{}/24", me.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(me)
    }

    /// The address of namespace `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.net, 10 + i)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            // The veth pair goes with its inner end.
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
