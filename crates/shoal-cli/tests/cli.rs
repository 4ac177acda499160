//! The `shoal` binary run as a separate program: segments made here are inspected,
//! listed and collected there; foreign files are refused; `bench` measures and reports.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use shoal::SharedMemory;

/// Longest any run of the binary may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A pid above the largest possible `pid_max` (2^22): no process can own it.
const DEAD_PID: u32 = 4_194_311;

/// What a run of `shoal` did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `shoal ARGS`, failing the test if it takes longer than [`TIMEOUT`].
fn shoal(args: &[&str]) -> Run {
    shoal_with(args, &[])
}

/// [`shoal`] with more environment variables.
fn shoal_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("could not start shoal");
    // Readers on their own threads, so that a full pipe cannot stall the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`shoal {}` did not finish within {TIMEOUT:?}",
                args.join(" ")
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

/// A name no other test (in this process or another) uses.
fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A file under /dev/shm, removed when the test ends, passed or failed.
struct ShmFile {
    name: String,
}

impl ShmFile {
    fn new(name: String, contents: &[u8]) -> ShmFile {
        std::fs::write(Self::path_of(&name), contents).unwrap();
        ShmFile { name }
    }

    fn path_of(name: &str) -> PathBuf {
        PathBuf::from("/dev/shm").join(name)
    }

    fn exists(&self) -> bool {
        Self::path_of(&self.name).exists()
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Self::path_of(&self.name));
    }
}

#[test]
fn inspect_reads_the_header_of_a_segment_made_by_another_process() {
    let shm = SharedMemory::create(1000).unwrap();
    let name = shm.name().unwrap();
    let run = shoal(&["inspect", name]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("kind:          raw"), "{run:?}");
    let size = format!("({} bytes)", shm.size());
    assert!(run.stdout.contains(&size), "{run:?}");
    let owner = format!("pid {} (running)", std::process::id());
    assert!(run.stdout.contains(&owner), "{run:?}");
    assert!(run.stdout.contains("created:"), "{run:?}");
}

#[test]
fn inspect_refuses_a_foreign_file_with_a_clear_error() {
    let file = ShmFile::new(
        format!("shoal-{}-{}", std::process::id(), unique("foreign")),
        &[0x5a; 4096],
    );
    let run = shoal(&["inspect", &file.name]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    assert!(run.stderr.contains("not a shoal segment"), "{run:?}");
    assert!(run.stderr.contains(&file.name), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
}

#[test]
fn inspect_of_a_missing_name_says_so() {
    let name = format!("shoal-{}-{}", std::process::id(), unique("missing"));
    let run = shoal(&["inspect", &name]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("there is no segment named"), "{run:?}");
}

#[test]
fn ls_shows_live_and_foreign_segments() {
    let shm = SharedMemory::create(100).unwrap();
    let name = shm.name().unwrap();
    let run = shoal(&["ls", name]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let line = run.stdout.lines().find(|l| l.starts_with(name)).unwrap();
    assert!(line.contains(&std::process::id().to_string()), "{line}");
    assert!(
        line.contains("yes") && line.trim_end().ends_with("raw"),
        "{line}"
    );

    let foreign = ShmFile::new(
        format!("shoal-{}-{}", std::process::id(), unique("foreign-ls")),
        b"garbage",
    );
    let run = shoal(&["ls", "--json", &foreign.name]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["name"], foreign.name.as_str());
    assert_eq!(row["kind"], serde_json::Value::Null);
    assert!(row["header_error"]
        .as_str()
        .unwrap()
        .contains("not a shoal segment"));
    assert_eq!(row["owner_pid"], std::process::id());
    assert_eq!(row["owner_alive"], true);
}

#[test]
fn gc_removes_the_segments_of_dead_owners_and_only_those() {
    let live = SharedMemory::create(100).unwrap();
    let live_name = live.name().unwrap();
    // Another process's `collect_dead` may remove our dead file between two steps of
    // this test: start again with a fresh file when it did.
    for _attempt in 0..5 {
        let dead = ShmFile::new(format!("shoal-{DEAD_PID}-{}", unique("cli-dead")), b"");
        let ls = shoal(&["ls", &dead.name]);
        assert_eq!(ls.code, Some(0), "{ls:?}");
        if !dead.exists() {
            continue;
        }
        let line = ls.stdout.lines().find(|l| l.starts_with(&dead.name));
        let line = line.unwrap_or_else(|| panic!("{ls:?}"));
        assert!(
            line.contains(&DEAD_PID.to_string()) && line.contains(" no "),
            "{line}"
        );

        let gc = shoal(&["gc", &dead.name]);
        assert_eq!(gc.code, Some(0), "{gc:?}");
        assert!(!dead.exists(), "{gc:?}");
        if !gc.stdout.contains(&format!("removed {}", dead.name)) {
            // Someone else removed it first.
            continue;
        }

        let gc = shoal(&["gc", live_name]);
        assert_eq!(gc.code, Some(0), "{gc:?}");
        assert!(gc.stdout.contains("no segment of a dead owner"), "{gc:?}");
        assert!(SharedMemory::open(live_name).is_ok());
        return;
    }
    panic!("the dead-owner file kept vanishing before `shoal gc` could remove it");
}

#[test]
fn bench_measures_every_selected_case_against_its_baseline() {
    let run = shoal(&["bench", "--json", "--time-ms", "20", "8B"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for want in [
        "ping-pong/8B/os-pipe",
        "ping-pong/8B/unix-socket",
        "throughput/8B/os-pipe",
        "throughput/8B/unix-socket",
        "ping-pong/8B/tcp-loopback",
        "throughput/8B/tcp-loopback",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for r in results {
        let ratio = r["ratio"].as_f64().unwrap();
        assert!(ratio > 0.0, "{r}");
        if r["transport"] == "os-pipe" {
            assert_eq!(ratio, 1.0, "{r}");
        }
        match r["pattern"].as_str().unwrap() {
            "ping-pong" => {
                assert!(r["p50_ns"].as_f64().unwrap() > 0.0, "{r}");
                assert!(r["p99_ns"].as_f64().unwrap() >= r["p50_ns"].as_f64().unwrap());
                assert!(r["round_trips"].as_u64().unwrap() > 0, "{r}");
            }
            "throughput" | "throughput-2x2" => {
                assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
                assert!(r["messages_per_s"].as_f64().unwrap() > 0.0, "{r}");
            }
            other => panic!("unknown pattern {other}"),
        }
    }
    assert_eq!(report["settings"]["time_per_case_ms"], 20);
    // Not a terminal: no progress line.
    assert!(run.stderr.is_empty(), "{run:?}");
}

#[test]
fn bench_measures_shoal_against_its_baselines() {
    // Quick: the pool maps over 1 M items instead of 10 M.
    let run = shoal(&["bench", "--json", "--quick", "--time-ms", "20", "shoal-"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let find = |name: &str| {
        results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {report}"))
    };
    for (name, baseline) in [
        ("ping-pong/8B/shoal-event", "ping-pong/8B/os-pipe"),
        ("lock-uncontended/shoal-lock", "lock-uncontended/std-mutex"),
        ("holder-death/shoal-lock", "holder-death/pidfd-exit"),
        (
            "process-start/shoal-forkserver",
            "process-start/command-bin-true",
        ),
        (
            "process-start/shoal-spawn",
            "process-start/command-bin-true",
        ),
        ("process-start/shoal-fork", "process-start/command-bin-true"),
    ] {
        let r = find(name);
        assert_eq!(r["baseline"], baseline, "{r}");
        assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["p50_ns"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(find(baseline)["ratio"], 1.0);
    }
    // A holder death is measured a few times, never fewer than three.
    assert!(
        find("holder-death/shoal-lock")["round_trips"]
            .as_u64()
            .unwrap()
            >= 3
    );

    let run = shoal(&["bench", "--time-ms", "20", "shm-spin"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("shm-spin"), "{run:?}");
    assert!(run.stdout.contains("os-pipe"), "{run:?}");
}

#[test]
fn bench_measures_shoal_channels_in_every_pattern() {
    let run = shoal(&["bench", "--json", "--quick", "--time-ms", "20", "64B"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let find = |name: &str| {
        results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {report}"))
    };
    for name in [
        "ping-pong/64B/shoal-queue",
        "ping-pong/64B/shoal-pipe",
        "ping-pong/64B/shm-spin",
        "throughput/64B/shoal-queue",
        "throughput/64B/shoal-queue-batch",
        "throughput/64B/shoal-pipe",
        "throughput/64B/shm-spin",
        "throughput-2x2/64B/os-pipe",
        "throughput-2x2/64B/unix-socket",
        "throughput-2x2/64B/shoal-queue",
        "throughput-2x2/64B/shoal-queue-batch",
        "throughput-2x2/64B/shoal-pipe",
    ] {
        let r = find(name);
        assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            r["messages"]
                .as_u64()
                .or(r["round_trips"].as_u64())
                .unwrap()
                > 0,
            "{r}"
        );
    }
    assert_eq!(
        find("throughput-2x2/64B/shoal-queue")["baseline"],
        "throughput-2x2/64B/os-pipe"
    );
    // Python's cases only with --python.
    assert!(results
        .iter()
        .all(|r| !r["transport"].as_str().unwrap().starts_with("py-")));

    // Large messages: copying, batched and written in place.
    let run = shoal(&[
        "bench",
        "--json",
        "--time-ms",
        "20",
        "throughput/1MiB/shoal-queue",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "throughput/1MiB/os-pipe",
            "throughput/1MiB/shoal-queue",
            "throughput/1MiB/shoal-queue-batch",
            "throughput/1MiB/shoal-queue-zero-copy"
        ]
    );
}

#[test]
fn bench_measures_the_pool_against_a_hand_rolled_worker() {
    let run = shoal(&["bench", "--json", "--quick", "--time-ms", "20", "pool"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    // Python's pools only with --python.
    assert_eq!(
        names,
        [
            "pool-task/os-pipe",
            "pool-task/shoal-pool",
            "pool-map/os-pipe",
            "pool-map/shoal-pool"
        ]
    );
    for r in results {
        assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
        assert!(r["messages_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r.get("bytes_per_s").is_none(), "tasks have no size: {r}");
    }
    // --quick maps over a million items, all of them.
    assert_eq!(results[3]["messages"], 1_000_000, "{report}");

    let run = shoal(&["bench", "--quick", "--time-ms", "20", "pool-task"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("µS/TASK"), "{run:?}");
}

#[test]
fn bench_measures_python_pools_or_says_why_not() {
    let run = shoal(&[
        "bench",
        "--json",
        "--python",
        "--time-ms",
        "50",
        "pool-task",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let find = |name: &str| results.iter().find(|r| r["name"] == name);
    let shoal_pool = find("pool-task/shoal-pool").expect("shoal's pool measured");
    if find("pool-task/py-mp-pool").is_none() {
        let notes = report["settings"]["notes"].as_array().unwrap();
        assert!(
            notes
                .iter()
                .any(|n| n.as_str().unwrap().contains("Python cases skipped")),
            "{report}"
        );
        return;
    }
    for py in ["py-mp-pool", "py-process-pool-executor"] {
        let r = find(&format!("pool-task/{py}")).unwrap_or_else(|| panic!("{py}: {report}"));
        assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
        assert!(shoal_pool["versus"][py].as_f64().unwrap() > 0.0, "{report}");
    }
}

#[test]
fn bench_measures_net_connections_against_raw_sockets() {
    let run = shoal(&["bench", "--json", "--quick", "--time-ms", "20", "net"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let find = |name: &str| {
        results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {report}"))
    };
    for pattern in ["ping-pong", "throughput"] {
        for size in ["8B", "64B", "1MiB"] {
            for (ours, raw) in [
                ("shoal-net-unix", "unix-socket"),
                ("shoal-net-tcp", "tcp-loopback"),
            ] {
                let r = find(&format!("{pattern}/{size}/{ours}"));
                assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
                assert!(r["versus"][raw].as_f64().unwrap() > 0.0, "{r}");
                assert!(
                    r["messages"]
                        .as_u64()
                        .or(r["round_trips"].as_u64())
                        .unwrap()
                        > 0,
                    "{r}"
                );
                // The raw socket it is compared with ran too.
                find(&format!("{pattern}/{size}/{raw}"));
            }
        }
    }

    let run = shoal(&[
        "bench",
        "--quick",
        "--time-ms",
        "20",
        "throughput/8B/shoal-net",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("VS RAW SOCKET"), "{run:?}");
}

#[test]
fn bench_draws_an_svg_chart() {
    let path = std::env::temp_dir().join(format!("{}.svg", unique("chart")));
    let run = shoal(&[
        "bench",
        "--time-ms",
        "10",
        "64B/shm-spin",
        "--svg",
        path.to_str().unwrap(),
    ]);
    let svg = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(run.code, Some(0), "{run:?}");
    let svg = svg.expect("the chart was written");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    assert!(svg.contains("shm-spin") && svg.contains("os-pipe"), "{svg}");
    assert!(svg.contains("polyline"), "one line per transport: {svg}");

    let run = shoal(&[
        "bench",
        "--time-ms",
        "10",
        "ping-pong/8B/shm",
        "--svg",
        "/nonexistent-dir/chart.svg",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("could not draw the chart"), "{run:?}");
}

#[test]
fn bench_measures_python_or_says_why_not() {
    let run = shoal(&[
        "bench",
        "--json",
        "--python",
        "--time-ms",
        "50",
        "throughput/64B/",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let notes = report["settings"]["notes"].as_array().unwrap();
    let python: Vec<&serde_json::Value> = results
        .iter()
        .filter(|r| r["transport"].as_str().unwrap().starts_with("py-"))
        .collect();
    if python.is_empty() {
        // No usable python3 here: said so, and shoal's cases ran anyway.
        assert!(
            notes
                .iter()
                .any(|n| n.as_str().unwrap().contains("Python cases skipped")),
            "{report}"
        );
    } else {
        for name in ["py-mp-queue", "py-mp-simplequeue", "py-mp-pipe"] {
            let r = python
                .iter()
                .find(|r| r["transport"] == name)
                .unwrap_or_else(|| panic!("{name} missing: {report}"));
            assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
            assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        }
        let has_ff = python.iter().any(|r| r["transport"] == "py-faster-fifo");
        let said = notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("faster-fifo"));
        assert!(
            has_ff != said,
            "faster-fifo measured or reported missing: {report}"
        );
        let queue = results
            .iter()
            .find(|r| r["name"] == "throughput/64B/shoal-queue")
            .unwrap();
        assert!(
            queue["versus"]["py-mp-queue"].as_f64().unwrap() > 0.0,
            "{queue}"
        );
    }
    assert!(results
        .iter()
        .any(|r| r["name"] == "throughput/64B/shoal-queue"));

    // The package's own cases, or a note saying why not.
    let run = shoal(&[
        "bench",
        "--json",
        "--python",
        "--time-ms",
        "50",
        "throughput-object/",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let notes = report["settings"]["notes"].as_array().unwrap();
    let said = |what: &str| notes.iter().any(|n| n.as_str().unwrap().contains(what));
    if !said("Python cases skipped") {
        let mp = results
            .iter()
            .find(|r| r["name"] == "throughput-object/py-mp-queue")
            .unwrap_or_else(|| panic!("mp.Queue of objects missing: {report}"));
        assert!(mp["messages"].as_u64().unwrap() > 0, "{mp}");
        let ours = results
            .iter()
            .find(|r| r["name"] == "throughput-object/py-shoal-queue");
        match ours {
            Some(r) => {
                assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
                assert!(r["versus"]["py-mp-queue"].as_f64().unwrap() > 0.0, "{r}");
            }
            None => assert!(said("cannot import shoal"), "{report}"),
        }
    }

    // A missing interpreter is a note, not an error.
    let run = shoal(&[
        "bench",
        "--python-exe",
        "/nonexistent/python3",
        "--time-ms",
        "10",
        "ping-pong/8B/shm",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("note: /nonexistent/python3 could not be run"),
        "{run:?}"
    );
    let run = shoal_with(
        &["bench", "--python", "--time-ms", "10", "ping-pong/8B/shm"],
        &[("SHOAL_PYTHON", "/nonexistent/python3")],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("note: /nonexistent/python3 could not be run"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("py-"), "{run:?}");
}

#[test]
fn bench_prints_an_aligned_table_by_default() {
    let run = shoal(&["bench", "--time-ms", "10", "ping-pong/64KiB/unix"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let header = run
        .stdout
        .lines()
        .find(|l| l.contains("TRANSPORT"))
        .unwrap();
    let row = run
        .stdout
        .lines()
        .find(|l| l.contains("unix-socket"))
        .unwrap();
    assert_eq!(header.find("TRANSPORT"), row.find("unix-socket"), "{run:?}");
    assert!(
        run.stdout.contains("os-pipe"),
        "the baseline runs too: {run:?}"
    );
}

#[test]
fn bench_refuses_a_filter_that_matches_nothing() {
    let run = shoal(&["bench", "no-such-case"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.starts_with("error: no benchmark case matches"),
        "{run:?}"
    );
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["bench", "--list"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once: the listing meets a closed pipe.
    drop(child.stdout.take());
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "shoal did not finish");
        thread::sleep(Duration::from_millis(5));
    };
    // A few bytes at most: they fit in the pipe, so reading after the exit is safe.
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn usage_errors_exit_with_2() {
    let run = shoal(&["no-such-command"]);
    assert_eq!(run.code, Some(2), "{run:?}");
}

#[test]
fn the_bench_peer_is_hidden_from_help() {
    let run = shoal(&["--help"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for command in ["bench", "ls", "gc", "inspect"] {
        assert!(run.stdout.contains(command), "{command} missing: {run:?}");
    }
    assert!(!run.stdout.contains("__bench-peer"), "{run:?}");
}

/// Runs a pipe peer with `input` on its stdin; returns its exit code, stdout, stderr.
fn pipe_peer(pattern: &str, size: &str, input: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "__bench-peer",
            "--transport",
            "os-pipe",
            "--pattern",
            pattern,
        ])
        .args(["--size", size])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread and closed: the peer then sees end-of-file.
    let writer = thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let mut out = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).map(|_| v)
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the bench peer did not finish");
        }
        thread::sleep(Duration::from_millis(5));
    };
    writer.join().unwrap().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), reader.join().unwrap().unwrap(), err)
}

#[test]
fn the_ping_pong_peer_echoes_whole_messages() {
    let (code, out, err) = pipe_peer("ping-pong", "4", b"abcdefgh");
    assert_eq!(code, Some(0), "{err}");
    // One ready byte, then every message back.
    assert_eq!(out, b"\x01abcdefgh");

    let (code, _, err) = pipe_peer("ping-pong", "4", b"abcdef");
    assert_eq!(code, Some(2));
    assert!(err.contains("middle of a message"), "{err}");
}

#[test]
fn the_throughput_peer_counts_what_it_read() {
    let (code, out, err) = pipe_peer("throughput", "3", &[7; 30]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out[0], 1);
    assert_eq!(u64::from_le_bytes(out[1..9].try_into().unwrap()), 10);
}

#[test]
fn bench_places_the_processes_as_asked() {
    for (placement, says) in [
        ("same", "CPU"),
        ("split", "CPU"),
        ("any", "unpinned (--placement any)"),
    ] {
        let run = shoal(&[
            "bench",
            "--json",
            "--time-ms",
            "10",
            "--placement",
            placement,
            "ping-pong/8B/os-pipe",
        ]);
        assert_eq!(run.code, Some(0), "{run:?}");
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let described = report["settings"]["placement"].as_str().unwrap();
        // Where pinning is refused (or with one CPU) the benchmark runs unpinned and says so.
        assert!(
            described.contains(says) || described.starts_with("unpinned"),
            "{placement}: {described}"
        );
        assert_eq!(report["results"].as_array().unwrap().len(), 1);
    }
}

/// Makes the dict `name`, then waits to be killed.
fn make_dict_and_wait(name: String) {
    let dict: shoal::SharedDict<String, u32> = shoal::SharedDict::create_named(&name).unwrap();
    dict.insert("k", &1).unwrap();
    thread::sleep(TIMEOUT);
}
shoal::entry!(make_dict_and_wait);

#[test]
fn ls_shows_a_shared_dicts_segments_and_gc_removes_them_once_its_creator_died() {
    let name = format!("shoal-{}-{}", std::process::id(), unique("dict"));
    let child = shoal::Process::new(make_dict_and_wait, name.clone())
        .start_method(shoal::process::StartMethod::Fork)
        .start()
        .unwrap();
    let start = Instant::now();
    while shoal::SharedDict::<String, u32>::open(&name).is_err() {
        assert!(start.elapsed() < TIMEOUT, "the child never made its dict");
        thread::sleep(Duration::from_millis(5));
    }
    let ls = shoal(&["ls", &name]);
    assert_eq!(ls.code, Some(0), "{ls:?}");
    let kind_of = |suffix: &str| {
        let full = format!("{name}{suffix} ");
        let line = ls.stdout.lines().find(|l| l.starts_with(&full));
        let line = line.unwrap_or_else(|| panic!("no {full} in {ls:?}"));
        assert!(
            line.contains(&child.pid().to_string()) && line.contains("yes"),
            "{line}"
        );
        line.trim_end().to_owned()
    };
    assert!(kind_of("").ends_with("dict"));
    assert!(kind_of(".g0").ends_with("collection data"));
    assert!(kind_of(".lock").ends_with("sync"));

    child.kill().unwrap();
    assert!(child.join_timeout(TIMEOUT).unwrap().is_some());
    let gc = shoal(&["gc", &name]);
    assert_eq!(gc.code, Some(0), "{gc:?}");
    for suffix in ["", ".g0", ".lock"] {
        let path = ShmFile::path_of(&format!("{name}{suffix}"));
        assert!(!path.exists(), "{} left: {gc:?}", path.display());
    }
}
