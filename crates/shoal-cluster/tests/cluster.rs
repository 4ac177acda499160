//! A cluster pool against a real `redis-server`, with worker hosts in separate
//! processes: a 10 000-task map over three hosts, a host SIGKILLed mid-run, Redis
//! restarted mid-run, mis-signed messages, dead letters, timeouts, graceful stops.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{unique, wait_for, watchdog, Host, Redis, HOST_NAME_ENV, KEY};
use redis::Commands;
use shoal_cluster::{ClusterKey, Pool, TaskError};

/// The item and the name of the host that ran it.
fn tag(i: u32) -> (u32, String) {
    (i, std::env::var(HOST_NAME_ENV).unwrap_or_default())
}
shoal::task!(tag);

/// As `tag`, a little slower, so that a run lasts long enough to be interrupted.
fn slow_tag(i: u32) -> (u32, String) {
    std::thread::sleep(Duration::from_millis(1));
    tag(i)
}
shoal::task!(slow_tag);

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}
shoal::task!(nap);

/// Creates a file: whether a task ran is seen from outside.
fn touch(path: String) -> bool {
    std::fs::write(path, b"ran").is_ok()
}
shoal::task!(touch);

fn hundred_over(x: i32) -> i32 {
    100 / x
}
shoal::task!(hundred_over);

/// Adds one byte to the file `dir/i` (how many times item `i` ran, seen from outside),
/// then takes 50 ms.
fn count_run((dir, i): (String, u32)) -> u32 {
    use std::io::Write;
    let path = std::path::Path::new(&dir).join(i.to_string());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(b"r");
    }
    std::thread::sleep(Duration::from_millis(50));
    i
}
shoal::task!(count_run);

/// How many times each item of `0..n` ran, from the files of `count_run` in `dir`.
fn runs(dir: &std::path::Path, n: u32) -> Vec<u64> {
    (0..n)
        .map(|i| std::fs::metadata(dir.join(i.to_string())).map_or(0, |m| m.len()))
        .collect()
}

/// Not a test: the entry of the worker host processes the tests start (see
/// `common::Host`); it returns at once in a normal run.
#[test]
fn worker_host_entry() {
    common::host_entry();
}

fn key() -> ClusterKey {
    ClusterKey::new(KEY.to_vec()).unwrap()
}

fn pool(redis: &Redis, name: &str) -> Pool {
    Pool::builder(&redis.url(), name)
        .key(key())
        .connect()
        .unwrap()
}

fn hosts_seen(redis: &Redis, pool: &str, n: usize) {
    let url = redis.url();
    wait_for(
        &format!("{n} worker hosts"),
        Duration::from_secs(60),
        || shoal_cluster::status(&url, pool).is_ok_and(|s| s.hosts.len() >= n),
    );
}

/// Checks a map's results: item `i` at place `i`, each once; gives the count per host.
fn check(results: &[(u32, String)], n: u32) -> BTreeMap<String, usize> {
    assert_eq!(results.len(), n as usize);
    let mut per_host = BTreeMap::new();
    for (i, (item, host)) in results.iter().enumerate() {
        assert_eq!(*item, i as u32, "result {i} is for item {item}");
        *per_host.entry(host.clone()).or_insert(0) += 1;
    }
    per_host
}

#[test]
fn three_worker_hosts_serve_a_10000_task_map() {
    watchdog(
        "three_worker_hosts_serve_a_10000_task_map",
        Duration::from_secs(300),
    );
    let redis = Redis::start();
    let name = unique("map");
    let _hosts: Vec<Host> = (0..3)
        .map(|i| Host::start(&redis, &name, &format!("host{i}"), 2, &[]))
        .collect();
    hosts_seen(&redis, &name, 3);
    let pool = pool(&redis, &name);
    let results = pool
        .map_timeout(tag, 0..10_000u32, Duration::from_secs(240))
        .unwrap();
    let per_host = check(&results, 10_000);
    eprintln!("tasks per host: {per_host:?}, {:?}", pool.stats());
    assert_eq!(per_host.len(), 3, "every host served: {per_host:?}");
    assert_eq!(pool.stats().completed, 10_000);
    assert_eq!(pool.in_flight(), 0);
    // Nothing is left behind in Redis.
    let s = shoal_cluster::status(&redis.url(), &name).unwrap();
    assert_eq!((s.pending, s.in_flight, s.dead_lettered), (0, 0, 0));
    assert_eq!(s.hosts.len(), 3);
    assert!(s.hosts.iter().all(|h| h.processes == 2));
    // The hosts' counters, as their next heartbeats report them.
    let url = redis.url();
    wait_for(
        "the hosts to report 10 000 tasks done",
        Duration::from_secs(60),
        || {
            shoal_cluster::status(&url, &name)
                .is_ok_and(|s| s.hosts.iter().map(|h| h.done).sum::<u64>() == 10_000)
        },
    );
}

#[test]
fn a_worker_host_killed_mid_run_loses_no_task() {
    watchdog(
        "a_worker_host_killed_mid_run_loses_no_task",
        Duration::from_secs(300),
    );
    let redis = Redis::start();
    let name = unique("kill");
    let lease = ["--lease-ms", "1000"];
    let mut hosts: Vec<Host> = (0..3)
        .map(|i| Host::start(&redis, &name, &format!("host{i}"), 2, &lease))
        .collect();
    hosts_seen(&redis, &name, 3);
    let pool = Arc::new(pool(&redis, &name));
    let p = Arc::clone(&pool);
    let run =
        std::thread::spawn(move || p.map_timeout(slow_tag, 0..10_000u32, Duration::from_secs(240)));
    // Kill host0 once it has done some of the work and holds more.
    let url = redis.url();
    wait_for("host0 to be busy", Duration::from_secs(120), || {
        shoal_cluster::status(&url, &name).is_ok_and(|s| {
            s.hosts
                .iter()
                .any(|h| h.done >= 500 && h.held > 0 && h.pid == hosts[0].pid())
        })
    });
    hosts[0].kill();
    let results = run.join().unwrap().unwrap();
    let per_host = check(&results, 10_000);
    let stats = pool.stats();
    eprintln!("tasks per host: {per_host:?}, {stats:?}");
    assert_eq!(stats.completed, 10_000);
    // The killed host's last heartbeat ages; the others finished its tasks.
    let s = shoal_cluster::status(&url, &name).unwrap();
    assert_eq!((s.pending, s.in_flight, s.dead_lettered), (0, 0, 0));
}

#[test]
fn redis_restarted_mid_run_the_pool_reconnects_and_finishes() {
    watchdog(
        "redis_restarted_mid_run_the_pool_reconnects_and_finishes",
        Duration::from_secs(300),
    );
    let mut redis = Redis::start();
    let name = unique("restart");
    let _hosts: Vec<Host> = (0..2)
        .map(|i| Host::start(&redis, &name, &format!("host{i}"), 2, &[]))
        .collect();
    hosts_seen(&redis, &name, 2);
    let pool = Arc::new(pool(&redis, &name));
    let p = Arc::clone(&pool);
    let run =
        std::thread::spawn(move || p.map_timeout(slow_tag, 0..5_000u32, Duration::from_secs(240)));
    wait_for("the first results", Duration::from_secs(120), || {
        pool.stats().completed >= 500
    });
    redis.restart();
    let results = run.join().unwrap().unwrap();
    let per_host = check(&results, 5_000);
    eprintln!("tasks per host: {per_host:?}, {:?}", pool.stats());
    // And the pool goes on after it.
    assert_eq!(pool.apply(hundred_over, 4).unwrap(), 25);
}

#[test]
fn mis_signed_and_unsigned_tasks_are_dead_lettered_and_run_nowhere() {
    watchdog(
        "mis_signed_and_unsigned_tasks_are_dead_lettered_and_run_nowhere",
        Duration::from_secs(180),
    );
    let redis = Redis::start();
    let name = unique("signed");
    let _hosts: Vec<Host> = (0..2)
        .map(|i| Host::start(&redis, &name, &format!("host{i}"), 1, &[]))
        .collect();
    hosts_seen(&redis, &name, 2);
    let dir = std::env::temp_dir().join(unique("shoal-cluster-touch"));
    std::fs::create_dir_all(&dir).unwrap();
    let forged = dir.join("forged");
    // A submitter with another key: its tasks are signed, but not with the cluster's.
    let wrong = Pool::builder(&redis.url(), &name)
        .key(ClusterKey::new(b"not the cluster key at all......".to_vec()).unwrap())
        .connect()
        .unwrap();
    let r = wrong.apply_async(touch, forged.to_string_lossy().into_owned());
    // An entry written straight into the task stream, not signed at all.
    let mut con = redis.connection();
    let stream = format!("shoal:{{{name}}}:tasks:1");
    let _: String = con
        .xadd(&stream, "*", &[("m", b"plain bytes".as_slice())])
        .unwrap();
    let _: String = con
        .xadd(&stream, "*", &[("x", b"no m field".as_slice())])
        .unwrap();
    let dead = format!("shoal:{{{name}}}:dead");
    wait_for("three dead letters", Duration::from_secs(60), || {
        con.xlen::<_, u64>(&dead).unwrap_or(0) >= 3
    });
    let letters: redis::streams::StreamRangeReply = con.xrange_all(&dead).unwrap();
    let reasons: HashSet<String> = letters
        .ids
        .iter()
        .map(|e| e.get::<String>("reason").unwrap())
        .collect();
    eprintln!("dead-letter reasons: {reasons:?}");
    assert!(reasons.contains("the message's signature does not check"));
    assert!(reasons.contains("the message is not a signed shoal envelope"));
    assert!(letters
        .ids
        .iter()
        .all(|e| e.get::<String>("stream").unwrap() == stream));
    // The forged task's result never comes, and it ran nowhere…
    assert!(matches!(
        r.get_timeout(Duration::from_millis(500)),
        Err(TaskError::WaitTimeout { .. })
    ));
    // …though the hosts run what is signed with the key.
    let good = dir.join("good");
    let pool = pool(&redis, &name);
    assert!(pool
        .apply(touch, good.to_string_lossy().into_owned())
        .unwrap());
    assert!(good.exists());
    assert!(!forged.exists(), "a mis-signed task ran");
    let s = shoal_cluster::status(&redis.url(), &name).unwrap();
    assert_eq!((s.pending, s.in_flight, s.dead_lettered), (0, 0, 3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_task_delivered_too_often_is_dead_lettered_and_its_caller_told() {
    watchdog(
        "a_task_delivered_too_often_is_dead_lettered_and_its_caller_told",
        Duration::from_secs(180),
    );
    let redis = Redis::start();
    let name = unique("deliveries");
    let lease = ["--lease-ms", "500"];
    let mut first = Host::start(&redis, &name, "first", 1, &lease);
    hosts_seen(&redis, &name, 1);
    let pool = Pool::builder(&redis.url(), &name)
        .key(key())
        .max_deliveries(1)
        .connect()
        .unwrap();
    let r = pool.apply_async(nap, 600_000);
    let url = redis.url();
    wait_for(
        "the first host to hold the task",
        Duration::from_secs(60),
        || shoal_cluster::status(&url, &name).is_ok_and(|s| s.in_flight == 1),
    );
    first.kill();
    // The second host finds the task's lease run out; its one delivery is spent.
    let _second = Host::start(&redis, &name, "second", 1, &lease);
    match r.get_timeout(Duration::from_secs(60)) {
        Err(TaskError::DeadLettered { deliveries, .. }) => assert_eq!(deliveries, 1),
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let s = shoal_cluster::status(&url, &name).unwrap();
    assert_eq!((s.pending, s.in_flight, s.dead_lettered), (0, 0, 1));
}

#[test]
fn task_failures_and_timeouts_reach_their_callers() {
    watchdog(
        "task_failures_and_timeouts_reach_their_callers",
        Duration::from_secs(180),
    );
    let redis = Redis::start();
    let name = unique("failures");
    let _host = Host::start(&redis, &name, "host0", 2, &[]);
    hosts_seen(&redis, &name, 1);
    let pool = Pool::builder(&redis.url(), &name)
        .key(key())
        .task_timeout(Duration::from_millis(300))
        .connect()
        .unwrap();
    let err = pool.map(hundred_over, [5, 10, 0, 20]).unwrap_err();
    assert!(matches!(err, TaskError::Panicked { task: 2, .. }), "{err}");
    assert_eq!(
        pool.map(hundred_over, [1, 2, 4]).unwrap(),
        vec![100, 50, 25]
    );
    // An input that does not tell its length is chunked by batch.
    let unknown = (1..=64).filter(|x| 64 % x == 0);
    assert_eq!(
        pool.map(hundred_over, unknown).unwrap(),
        vec![100, 50, 25, 12, 6, 3, 1]
    );
    let err = pool.apply(nap, 60_000).unwrap_err();
    assert!(matches!(err, TaskError::Timeout { .. }), "{err}");
    assert_eq!(pool.apply(nap, 1).unwrap(), 1);
    let s = shoal_cluster::status(&redis.url(), &name).unwrap();
    assert_eq!((s.pending, s.in_flight, s.dead_lettered), (0, 0, 0));
}

#[test]
fn a_worker_host_stopped_with_sigterm_finishes_or_hands_back_its_tasks() {
    watchdog(
        "a_worker_host_stopped_with_sigterm_finishes_or_hands_back_its_tasks",
        Duration::from_secs(240),
    );
    let redis = Redis::start();
    let name = unique("sigterm");
    // A short grace: some tasks finish within it, the rest go back to the pool.
    let opts = ["--grace-ms", "200", "--lease-ms", "1000"];
    let mut leaving = Host::start(&redis, &name, "leaving", 2, &opts);
    let _staying = Host::start(&redis, &name, "staying", 2, &opts);
    hosts_seen(&redis, &name, 2);
    let pool = Arc::new(pool(&redis, &name));
    let p = Arc::clone(&pool);
    let run =
        std::thread::spawn(move || p.map_timeout(nap, vec![150u64; 40], Duration::from_secs(180)));
    let url = redis.url();
    wait_for(
        "the leaving host to hold tasks",
        Duration::from_secs(60),
        || {
            shoal_cluster::status(&url, &name)
                .is_ok_and(|s| s.hosts.iter().any(|h| h.pid == leaving.pid() && h.held > 0))
        },
    );
    assert!(
        leaving.terminate(Duration::from_secs(60)),
        "the host did not exit cleanly"
    );
    let results = run.join().unwrap().unwrap();
    assert_eq!(results, vec![150u64; 40]);
    let s = shoal_cluster::status(&url, &name).unwrap();
    assert_eq!(s.hosts.len(), 1, "the stopped host left the pool's hosts");
    assert_eq!((s.pending, s.in_flight, s.dead_lettered), (0, 0, 0));
}

#[test]
fn tls_and_a_password_pass_through_the_url() {
    watchdog(
        "tls_and_a_password_pass_through_the_url",
        Duration::from_secs(180),
    );
    let (redis, cert) = Redis::start_tls("s3cret-pass");
    assert_eq!(
        std::env::var_os("SSL_CERT_FILE"),
        Some(cert.into_os_string())
    );
    assert!(redis.url().starts_with("rediss://:s3cret-pass@"));
    let name = unique("tls");
    let _hosts: Vec<Host> = (0..2)
        .map(|i| Host::start(&redis, &name, &format!("host{i}"), 1, &[]))
        .collect();
    hosts_seen(&redis, &name, 2);
    let pool = pool(&redis, &name);
    let results = pool
        .map_timeout(tag, 0..500u32, Duration::from_secs(120))
        .unwrap();
    check(&results, 500);
    // A wrong password, or no TLS, is refused when the pool connects.
    let wrong = redis.url().replace("s3cret-pass", "wrong");
    let err = Pool::builder(&wrong, &name)
        .key(key())
        .connect()
        .unwrap_err();
    assert!(
        matches!(err, shoal_cluster::ClusterError::Connect(_)),
        "{err}"
    );
    assert!(
        !err.to_string().contains("wrong"),
        "the password is not shown: {err}"
    );
    let plain = format!("redis://:s3cret-pass@127.0.0.1:{}", redis.port);
    assert!(Pool::builder(&plain, &name).key(key()).connect().is_err());
}

#[test]
fn the_map_crosses_a_network_between_namespaces() {
    watchdog(
        "the_map_crosses_a_network_between_namespaces",
        Duration::from_secs(300),
    );
    // Redis in one namespace, each worker host in another, this submitter in the
    // test's own: every task crosses veth pairs and a bridge.
    let nets = match common::Netns::create(4) {
        Ok(n) => n,
        Err(e) => {
            println!("skipped: network namespaces cannot be made here ({e})");
            return;
        }
    };
    let redis = Redis::start_in(&nets.names[0], &nets.addr(0));
    let name = unique("netns");
    let _hosts: Vec<Host> = (1..4)
        .map(|i| {
            Host::start_in(
                Some(&nets.names[i]),
                &redis,
                &name,
                &format!("host{i}"),
                2,
                &[],
            )
        })
        .collect();
    hosts_seen(&redis, &name, 3);
    let pool = pool(&redis, &name);
    let results = pool
        .map_timeout(tag, 0..10_000u32, Duration::from_secs(240))
        .unwrap();
    let per_host = check(&results, 10_000);
    eprintln!("tasks per host: {per_host:?}");
    assert_eq!(per_host.len(), 3);
    // Redis saw the hosts come from their namespaces' addresses.
    let mut con = redis.connection();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    for i in 1..4 {
        assert!(
            clients.contains(&format!("addr={}:", nets.addr(i))),
            "no client from {}: {clients}",
            nets.addr(i)
        );
    }
}

#[test]
fn a_cancelled_task_that_no_host_took_never_runs() {
    watchdog(
        "a_cancelled_task_that_no_host_took_never_runs",
        Duration::from_secs(180),
    );
    let redis = Redis::start();
    let name = unique("cancel");
    let dir = std::env::temp_dir().join(unique("shoal-cluster-cancel"));
    std::fs::create_dir_all(&dir).unwrap();
    let pool = pool(&redis, &name);
    // No host yet: the task waits in the stream, and is withdrawn from it.
    let cancelled = dir.join("cancelled");
    pool.apply_async(touch, cancelled.to_string_lossy().into_owned())
        .cancel();
    assert_eq!(pool.in_flight(), 0);
    let s = shoal_cluster::status(&redis.url(), &name).unwrap();
    assert_eq!(s.pending, 0);
    // A host that comes later runs the next task, and not the withdrawn one before it.
    let _host = Host::start(&redis, &name, "host0", 1, &[]);
    let after = dir.join("after");
    assert!(pool
        .apply_async(touch, after.to_string_lossy().into_owned())
        .get_timeout(Duration::from_secs(60))
        .unwrap());
    assert!(after.exists());
    assert!(!cancelled.exists(), "a cancelled task ran");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_mis_signed_chunk_is_dead_lettered_whole_and_none_of_its_tasks_runs() {
    watchdog(
        "a_mis_signed_chunk_is_dead_lettered_whole_and_none_of_its_tasks_runs",
        Duration::from_secs(180),
    );
    let redis = Redis::start();
    let name = unique("signed-chunk");
    let _host = Host::start(&redis, &name, "host0", 2, &[]);
    hosts_seen(&redis, &name, 1);
    let dir = std::env::temp_dir().join(unique("shoal-cluster-chunk"));
    std::fs::create_dir_all(&dir).unwrap();
    // 64 items in chunks of 8 (an eighth of the map), signed with another key.
    let wrong = Pool::builder(&redis.url(), &name)
        .key(ClusterKey::new(b"not the cluster key at all......".to_vec()).unwrap())
        .chunk_size(8)
        .connect()
        .unwrap();
    let d = dir.to_string_lossy().into_owned();
    let items: Vec<(String, u32)> = (0..64).map(|i| (d.clone(), i)).collect();
    let err = wrong
        .map_timeout(count_run, items.clone(), Duration::from_secs(3))
        .unwrap_err();
    assert!(matches!(err, TaskError::WaitTimeout { .. }), "{err}");
    // One dead letter per entry: each chunk went whole, with its message as it was.
    let mut con = redis.connection();
    let dead = format!("shoal:{{{name}}}:dead");
    wait_for("the chunks' dead letters", Duration::from_secs(60), || {
        con.xlen::<_, u64>(&dead).unwrap_or(0) >= 8
    });
    let letters: redis::streams::StreamRangeReply = con.xrange_all(&dead).unwrap();
    assert_eq!(letters.ids.len(), 8, "one dead letter per chunk");
    for e in &letters.ids {
        assert_eq!(
            e.get::<String>("reason").unwrap(),
            "the message's signature does not check"
        );
        assert!(e.get::<Vec<u8>>("m").unwrap().starts_with(b"SHC2"));
    }
    assert_eq!(
        runs(&dir, 64),
        vec![0; 64],
        "a task of a mis-signed chunk ran"
    );
    // The same chunks signed with the cluster key run, each task once.
    let pool = Pool::builder(&redis.url(), &name)
        .key(key())
        .chunk_size(8)
        .connect()
        .unwrap();
    let got = pool
        .map_timeout(count_run, items, Duration::from_secs(120))
        .unwrap();
    assert_eq!(got, (0..64).collect::<Vec<u32>>());
    assert_eq!(runs(&dir, 64), vec![1; 64]);
    let s = shoal_cluster::status(&redis.url(), &name).unwrap();
    assert_eq!((s.pending, s.in_flight, s.dead_lettered), (0, 0, 8));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_chunk_whose_host_dies_is_run_again_elsewhere_and_each_task_answered_once() {
    watchdog(
        "a_chunk_whose_host_dies_is_run_again_elsewhere_and_each_task_answered_once",
        Duration::from_secs(240),
    );
    let redis = Redis::start();
    let name = unique("chunk-kill");
    let lease = ["--lease-ms", "1000"];
    // One local process, room for 2 tasks: the host runs one 16-task chunk at a time.
    let mut first = Host::start(&redis, &name, "first", 1, &lease);
    hosts_seen(&redis, &name, 1);
    let dir = std::env::temp_dir().join(unique("shoal-cluster-chunk-kill"));
    std::fs::create_dir_all(&dir).unwrap();
    let pool = Arc::new(
        Pool::builder(&redis.url(), &name)
            .key(key())
            .chunk_size(16)
            .connect()
            .unwrap(),
    );
    let d = dir.to_string_lossy().into_owned();
    let items: Vec<(String, u32)> = (0..128).map(|i| (d.clone(), i)).collect();
    let p = Arc::clone(&pool);
    let run = std::thread::spawn(move || p.map_timeout(count_run, items, Duration::from_secs(180)));
    // Kill the host in the first half of a chunk: some of its tasks ran, and their
    // results (stored per chunk) were not.
    wait_for(
        "the first host to be inside a chunk",
        Duration::from_secs(60),
        || {
            let started = runs(&dir, 128).iter().filter(|r| **r > 0).count();
            (1..=8).contains(&(started % 16))
        },
    );
    first.kill();
    let _second = Host::start(&redis, &name, "second", 2, &lease);
    let results = run.join().unwrap().unwrap();
    assert_eq!(results, (0..128).collect::<Vec<u32>>());
    let stats = pool.stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.completed, 128, "each task answered once");
    let r = runs(&dir, 128);
    assert!(r.iter().all(|n| *n >= 1), "every task ran: {r:?}");
    assert!(
        r.iter().any(|n| *n >= 2),
        "the killed host's chunk ran again: {r:?}"
    );
    let s = shoal_cluster::status(&redis.url(), &name).unwrap();
    assert_eq!((s.pending, s.in_flight, s.dead_lettered), (0, 0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}
