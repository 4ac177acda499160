//! `--python`: Python's `multiprocessing` (and faster-fifo, when installed) measured in
//! the same run, by `python/bench_peer.py` (shipped inside the binary and written to a
//! temporary file for the run).
//!
//! Each case runs the script once: `bench_peer.py run --impl … --pattern … --size …
//! --time-ms … --cpus A,B`, which prints one JSON object with the same figures as the
//! Rust cases. A missing `python3`, faster-fifo or package `shoal` is reported in the
//! run's notes and its cases are left out; it is not an error.
//!
//! The interpreter is, first found: `--python-exe`, `SHOAL_PYTHON`, the active virtual
//! environment's (`$VIRTUAL_ENV/bin/python`), `python3` on the `PATH`. The package's own
//! cases (`py-shoal-*`) need one where `import shoal` works: the environment it was
//! installed into (`pip install .` at the repository root).

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::bench::case::{Case, Pattern};
use crate::bench::measure::Measure;
use crate::bench::peer::PeerProcess;
use crate::bench::transport::Transport;
use crate::bench::Conditions;

/// The script, as shipped in the repository.
const SCRIPT: &str = include_str!("../../python/bench_peer.py");

/// The interpreter: `exe` (`--python-exe`), else `SHOAL_PYTHON`, else the active
/// virtual environment's `python`, else `python3` on the `PATH`.
fn interpreter(exe: Option<&Path>) -> OsString {
    if let Some(exe) = exe {
        return exe.into();
    }
    if let Some(python) = std::env::var_os("SHOAL_PYTHON").filter(|p| !p.is_empty()) {
        return python;
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|p| !p.is_empty()) {
        let python = Path::new(&venv).join("bin").join("python");
        if python.is_file() {
            return python.into();
        }
    }
    "python3".into()
}

/// The script written out for one run; removed on drop.
#[derive(Debug)]
pub(crate) struct Script {
    path: PathBuf,
    /// The interpreter that runs it.
    python: OsString,
    /// What `check` said: the Python version.
    pub(crate) version: String,
    /// Whether faster-fifo can be imported.
    pub(crate) faster_fifo: bool,
    /// Why the package `shoal` cannot be imported (`None`: it can).
    pub(crate) shoal_missing: Option<String>,
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[derive(Deserialize)]
struct Check {
    python: String,
    faster_fifo: bool,
    #[serde(default)]
    shoal: bool,
    #[serde(default)]
    shoal_error: Option<String>,
}

/// What the script prints for one case.
#[derive(Deserialize)]
struct Figures {
    error: Option<String>,
    p50_ns: Option<f64>,
    p99_ns: Option<f64>,
    round_trips: Option<u64>,
    messages: Option<u64>,
    seconds: Option<f64>,
}

impl Script {
    /// Writes the script and asks the interpreter (see [`interpreter`]; `exe` from
    /// `--python-exe`) what it has; `Err` with a sentence for the report when Python
    /// cannot run it.
    pub(crate) fn prepare(exe: Option<&Path>) -> Result<Script, String> {
        let path = std::env::temp_dir().join(format!(
            "shoal-bench-peer-{}-{}.py",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        fs::write(&path, SCRIPT)
            .map_err(|e| format!("could not write the Python script to {path:?}: {e}"))?;
        let mut script = Script {
            path,
            python: interpreter(exe),
            version: String::new(),
            faster_fifo: false,
            shoal_missing: None,
        };
        let python = script.python_name();
        let out = Command::new(&script.python)
            .arg(&script.path)
            .arg("check")
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("{python} could not be run ({e}): Python cases skipped"))?;
        let check: Check = serde_json::from_slice(&out.stdout)
            .ok()
            .filter(|_| out.status.success())
            .ok_or_else(|| {
                format!(
                    "{python} could not run the benchmark script ({}): Python cases skipped",
                    out.status
                )
            })?;
        script.version = check.python;
        script.faster_fifo = check.faster_fifo;
        if !check.shoal {
            script.shoal_missing = Some(
                check
                    .shoal_error
                    .unwrap_or_else(|| "the script cannot tell".to_owned()),
            );
        }
        Ok(script)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// The interpreter as the report names it.
    pub(crate) fn python_name(&self) -> String {
        self.python.to_string_lossy().into_owned()
    }
}

/// The script's name for a transport.
fn implementation(transport: Transport) -> anyhow::Result<&'static str> {
    Ok(match transport {
        Transport::PyMpQueue => "mp-queue",
        Transport::PyMpSimpleQueue => "mp-simplequeue",
        Transport::PyMpPipe => "mp-pipe",
        Transport::PyFasterFifo => "faster-fifo",
        Transport::PyShoalQueue => "shoal-queue",
        Transport::PyShoalSimpleQueue => "shoal-simplequeue",
        Transport::PyShoalPipe => "shoal-pipe",
        Transport::PyMpPool => "mp-pool",
        Transport::PyProcessPoolExecutor => "process-pool-executor",
        Transport::PyShoalPool => "shoal-pool",
        Transport::PyShoalExecutor => "shoal-executor",
        other => bail!("{} is not measured by the Python script", other.name()),
    })
}

/// Runs the script for one case.
pub(crate) fn measure(case: &Case, how: &Conditions) -> anyhow::Result<Measure> {
    let script = how.python.as_ref().context("Python cases need --python")?;
    let pattern = match case.pattern {
        Pattern::PingPong => "ping-pong",
        Pattern::Throughput => "throughput",
        Pattern::PingPongObject => "ping-pong-object",
        Pattern::ThroughputObject => "throughput-object",
        Pattern::PoolTask => "pool-task",
        Pattern::PoolMap => "pool-map",
        Pattern::PoolSubmit => "pool-submit",
        other => bail!("the Python script does not run {}", other.name()),
    };
    let mut cmd = Command::new(&script.python);
    cmd.arg(script.path())
        .args(["run", "--impl", implementation(case.transport)?])
        .args(["--pattern", pattern])
        .args(["--size", &case.size.to_string()])
        .args(["--time-ms", &how.budget.as_millis().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // A pool's workers go where the scheduler puts them, as shoal's do.
    if let (Some(a), Some(b), false) = (
        how.pinned.parent_cpu,
        how.pinned.peer_cpu,
        matches!(
            case.pattern,
            Pattern::PoolTask | Pattern::PoolMap | Pattern::PoolSubmit
        ),
    ) {
        cmd.args(["--cpus", &format!("{a},{b}")]);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start Python for {}", case.name()))?;
    let mut stdout = child.stdout.take().context("Python has no stdout")?;
    // The watchdog kills a Python that hangs; its stdout then ends.
    let watched = PeerProcess::watch(child, how.budget);
    let mut out = String::new();
    let read = stdout.read_to_string(&mut out);
    let figures: Option<Figures> = serde_json::from_str(out.trim()).ok();
    if let Some(Figures {
        error: Some(error), ..
    }) = &figures
    {
        bail!("Python failed {}: {error}", case.name());
    }
    watched
        .finish()
        .with_context(|| format!("Python failed {}", case.name()))?;
    read.context("could not read Python's answer")?;
    let f = figures.with_context(|| format!("Python printed no figures for {}", case.name()))?;
    match (f.p50_ns, f.p99_ns, f.round_trips, f.messages, f.seconds) {
        (Some(p50_ns), Some(p99_ns), Some(round_trips), _, _) => Ok(Measure::Latency {
            p50_ns,
            p99_ns,
            round_trips,
        }),
        (_, _, _, Some(messages), Some(seconds)) => Ok(Measure::Throughput { messages, seconds }),
        _ => bail!("Python printed incomplete figures for {}", case.name()),
    }
}
