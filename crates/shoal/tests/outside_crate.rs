//! shoal as a dependency of a crate outside this workspace, as a new user adds it: a
//! crate generated in a temporary directory depends on `crates/shoal` by path, and its
//! binary runs a `Process`, a `Queue` and a `Pool`, with its output checked. A second
//! binary of the crate is the README's Rust example, word for word; its output is
//! checked against the `// ...` comments of its `println!` lines.
//!
//! The generated crate uses the workspace's `Cargo.lock` (so it builds offline with the
//! versions the workspace tests) and its own target directory under `~/.cache`, one per
//! checkout of shoal, so that a rerun only relinks. The build and the run each have a
//! deadline: a hang fails the test.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the first (cold) build of shoal and its dependencies may take on a loaded
/// machine; reruns take seconds.
const BUILD_LIMIT: Duration = Duration::from_secs(900);
/// How long the generated program may run.
const RUN_LIMIT: Duration = Duration::from_secs(120);

const MANIFEST: &str = r#"[package]
name = "shoal-outside-user"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
shoal = { path = "SHOAL_PATH" }

# A workspace of its own: the crate belongs to no enclosing workspace.
[workspace]
"#;

/// The program a new user writes from the README: a child process, a queue between
/// them, a pool. `deny(unsafe_code)` checks that shoal's registration macros compile in
/// a crate that forbids unsafe code of its own.
const MAIN: &str = r#"#![deny(unsafe_code)]

use shoal::{Pool, Process, Queue};

fn greet((queue, name): (Queue<String>, String)) {
    queue.put(format!("hello, {name}")).expect("the queue takes the greeting");
}
shoal::entry!(greet);

fn square(x: u64) -> u64 {
    x * x
}
shoal::task!(square);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queue: Queue<String> = Queue::new()?;
    let child = Process::new(greet, (queue.clone(), "outside".to_owned())).start()?;
    println!("{}", queue.get_timeout(std::time::Duration::from_secs(60))?);
    println!("child exit code {}", child.join()?);

    let pool = Pool::new(2)?;
    println!("squares {:?}", pool.map(square, 1..=5u64)?);
    Ok(())
}
"#;

const EXPECTED: &str = "hello, outside\nchild exit code 0\nsquares [1, 4, 9, 16, 25]\n";

/// The first ```rust block of the README, and the output its `println!` lines announce
/// in their trailing `// ...` comments.
fn readme_example(readme: &str) -> (String, String) {
    let start = readme
        .find("\n```rust\n")
        .expect("the README has a ```rust block")
        + "\n```rust\n".len();
    let len = readme[start..]
        .find("\n```")
        .expect("the README's ```rust block ends");
    let code = &readme[start..start + len + 1];
    let expected: String = code
        .lines()
        .filter(|l| l.contains("println!"))
        .map(|l| {
            let (_, comment) = l
                .rsplit_once("// ")
                .unwrap_or_else(|| panic!("README line without its output comment: {l}"));
            format!("{comment}\n")
        })
        .collect();
    assert!(
        !expected.is_empty(),
        "the README's example prints nothing to check"
    );
    (code.to_owned(), expected)
}

/// A directory removed when the test ends, however it ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Waits for `child` until `limit`, killing it after; returns its exit status and what
/// it wrote to standard output and standard error.
fn wait_with_limit(mut child: Child, limit: Duration, what: &str) -> (bool, String, String) {
    // Drain the pipes on threads so that a chatty child never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {limit:?}; standard error so far:\n{}",
                err.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// The target directory of the generated crate: one per checkout of shoal (so that two
/// checkouts never rebuild each other's), under `~/.cache`.
fn target_dir(shoal: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    shoal.hash(&mut hasher);
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache")
        .join(format!("shoal-outside-crate-{:016x}", hasher.finish()))
}

#[test]
fn a_crate_outside_the_workspace_runs_a_process_a_queue_and_a_pool() {
    let shoal = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = shoal
        .join("../..")
        .canonicalize()
        .expect("the workspace root");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        TempDir(std::env::temp_dir().join(format!("shoal-outside-{}-{nanos}", std::process::id())));
    fs::create_dir_all(dir.0.join("src")).unwrap();
    let shoal_path = shoal.to_str().expect("a UTF-8 path to crates/shoal");
    fs::write(
        dir.0.join("Cargo.toml"),
        MANIFEST.replace("SHOAL_PATH", shoal_path),
    )
    .unwrap();
    fs::write(dir.0.join("src/main.rs"), MAIN).unwrap();
    let readme = fs::read_to_string(workspace.join("README.md")).expect("the README");
    let (readme_code, readme_expected) = readme_example(&readme);
    fs::create_dir_all(dir.0.join("src/bin")).unwrap();
    fs::write(dir.0.join("src/bin/readme.rs"), readme_code).unwrap();
    fs::copy(workspace.join("Cargo.lock"), dir.0.join("Cargo.lock")).unwrap();

    let target = target_dir(shoal);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = Command::new(&cargo)
        .args(["build", "--offline", "--quiet", "--bins"])
        .current_dir(&dir.0)
        .env("CARGO_TARGET_DIR", &target)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo starts");
    let (built, _, errors) = wait_with_limit(build, BUILD_LIMIT, "cargo build");
    assert!(
        built,
        "the outside crate did not build against shoal:\n{errors}"
    );

    for (binary, expected) in [
        ("shoal-outside-user", EXPECTED),
        ("readme", readme_expected.as_str()),
    ] {
        let program = target.join("debug").join(binary);
        let run = Command::new(&program)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
        let (ran, output, errors) = wait_with_limit(run, RUN_LIMIT, binary);
        assert!(ran, "{binary} failed:\n{errors}");
        assert_eq!(output, expected, "{binary}'s standard error:\n{errors}");
    }
}
