//! `shoal bench`: every transport side by side, each case compared with a baseline
//! measured in the same run.
//!
//! The cases live in [`case`] (a table of transport × pattern × size), the transports in
//! [`transport`] (byte streams in [`stream`], shoal's own in [`channel`], [`event`],
//! [`spin`], [`lock`], [`start`], [`net`] and [`pool`], Python's in [`python`]), the
//! second process in [`peer`](mod@peer) (its CPU in [`placement`]), the figures in
//! [`measure`], the output in [`report`], [`svg`] and [`progress`].

mod case;
mod channel;
mod event;
mod lock;
mod measure;
mod net;
mod peer;
mod placement;
mod pool;
mod progress;
mod python;
mod report;
mod spin;
mod start;
mod stream;
mod svg;
mod transport;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use case::{Case, Pattern};
use measure::Measure;
use placement::{Pinned, Placement};
use progress::Progress;
use transport::Transport;

/// Arguments of `shoal bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// Only the cases whose name contains this text (`ping-pong`, `64KiB`, `unix`…);
    /// the baselines they are compared with run too.
    filter: Option<String>,
    /// A short run (under 15 s in all) for a first look: messages of 8 B, 64 B and
    /// 1 MiB only, and less time per case.
    #[arg(long)]
    quick: bool,
    /// Also measure Python's multiprocessing Queue, SimpleQueue, Pipe and Pool,
    /// concurrent.futures' ProcessPoolExecutor, faster-fifo when it is installed, and
    /// the package shoal's own Queue, SimpleQueue and Pipe when the interpreter can
    /// import it (bytes and small objects; needs Python; what is missing is reported,
    /// not an error).
    #[arg(long)]
    python: bool,
    /// The Python interpreter of the --python cases (implies --python). Without it:
    /// $SHOAL_PYTHON, else the active virtual environment's ($VIRTUAL_ENV/bin/python),
    /// else python3 on the PATH. shoal's own cases need an interpreter where `import
    /// shoal` works (the environment the package was installed into).
    #[arg(long, value_name = "PATH")]
    python_exe: Option<PathBuf>,
    /// Also draw throughput and latency per transport and size in an SVG chart.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print Markdown tables (for BENCHMARKS.md) instead of aligned text.
    #[arg(long)]
    markdown: bool,
    /// Measure every case this many times and report the medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    runs: u32,
    /// Milliseconds spent measuring each case in each run [default: 1000 (150 with
    /// --quick), less when there are so many cases that the whole would exceed 40 s
    /// (6 s with --quick)].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    time_ms: Option<u64>,
    /// Where the two processes of each case run: on two CPUs (split), on one (same), or
    /// where the scheduler puts them (any).
    #[arg(long, value_enum, default_value_t = Placement::Split)]
    placement: Placement,
    /// List the cases the filter selects, without measuring.
    #[arg(long)]
    list: bool,
}

/// Arguments of the hidden `shoal __bench-peer`.
#[derive(clap::Args, Debug)]
pub(crate) struct PeerArgs {
    #[arg(long)]
    transport: transport::Transport,
    #[arg(long)]
    pattern: Pattern,
    #[arg(long)]
    size: usize,
    /// The CPU to pin this process to.
    #[arg(long)]
    cpu: Option<usize>,
}

/// The settings one benchmark run used, reported with its results.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Settings {
    /// The version of the `shoal` binary that measured.
    version: &'static str,
    /// When the run started, seconds since the Unix epoch.
    started_unix_s: u64,
    filter: Option<String>,
    quick: bool,
    runs: u32,
    time_per_case_ms: u64,
    cpus: usize,
    /// Where the processes ran.
    placement: String,
    /// What the run could not measure, and why (Python or faster-fifo missing).
    notes: Vec<String>,
}

/// How every case of a run is measured.
#[derive(Debug)]
pub(crate) struct Conditions {
    /// Time spent measuring each case.
    pub(crate) budget: Duration,
    /// Where the peer runs (this process is already placed).
    pub(crate) pinned: Pinned,
    /// The Python script, with `--python` when Python can run it.
    pub(crate) python: Option<python::Script>,
    /// `--quick`: cases with a fixed amount of work do less of it.
    pub(crate) quick: bool,
}

/// One case's result: the medians over the runs, and the ratio to its baseline.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    case: Case,
    measure: Measure,
    /// `score / baseline score`: above 1 is faster than the baseline.
    ratio: Option<f64>,
    /// `score / score` against what shoal replaces, measured in the run: for shoal's
    /// queues the Python queues of the same pattern and size (`py-mp-queue`,
    /// `py-faster-fifo`); for `shoal::net` the raw socket of the same kind; for the pool
    /// Python's pools.
    versus: Vec<(Transport, f64)>,
}

/// The Python transports shoal's queues are compared with directly.
const VERSUS: &[Transport] = &[Transport::PyMpQueue, Transport::PyFasterFifo];

/// What the package `shoal`'s objects are compared with, from Python.
pub(crate) const VERSUS_PYTHON: &[Transport] = &[
    Transport::PyMpQueue,
    Transport::PyMpSimpleQueue,
    Transport::PyMpPipe,
    Transport::PyFasterFifo,
];

/// `shoal bench`.
pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let mut notes = Vec::new();
    let python = args.python || args.python_exe.is_some();
    let script = if python && !args.list {
        match python::Script::prepare(args.python_exe.as_deref()) {
            Ok(s) => {
                if !s.faster_fifo {
                    notes.push(format!("faster-fifo is not installed for Python {} (pip install faster-fifo): its cases are skipped", s.version));
                }
                if let Some(why) = &s.shoal_missing {
                    notes.push(format!(
                        "{} (Python {}) cannot import shoal ({why}): the py-shoal-* cases are skipped; install the package there (pip install . at the repository root) or name an interpreter that has it with --python-exe or SHOAL_PYTHON",
                        s.python_name(),
                        s.version
                    ));
                }
                Some(s)
            }
            Err(why) => {
                notes.push(why);
                None
            }
        }
    } else {
        None
    };
    // Python's cases only with --python, and only those its interpreter can run.
    let measurable = |t: Transport| {
        if !t.is_python() {
            return true;
        }
        let runs = |s: &python::Script| {
            (t != Transport::PyFasterFifo || s.faster_fifo)
                && (!t.is_python_package() || s.shoal_missing.is_none())
        };
        python && (args.list || script.as_ref().is_some_and(runs))
    };
    let keep = |c: &Case| (!args.quick || c.in_quick_run()) && measurable(c.transport);
    let cases = Case::selected(args.filter.as_deref(), keep);
    for note in &notes {
        eprintln!("note: {note}");
    }
    if cases.is_empty() {
        bail!(
            "no benchmark case matches {:?} (`shoal bench --list` shows them all)",
            args.filter.as_deref().unwrap_or_default()
        );
    }
    if args.list {
        return report::list(&cases);
    }
    let steps = cases.len() * args.runs as usize;
    let time_ms = args
        .time_ms
        .unwrap_or_else(|| default_time_ms(steps, args.quick));
    // Counted before pinning narrows what this process may use.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Pinned before anything is measured; the drop of `conditions` unpins.
    let conditions = Conditions {
        budget: Duration::from_millis(time_ms),
        pinned: args.placement.apply(),
        python: script,
        quick: args.quick,
    };
    let settings = Settings {
        version: env!("CARGO_PKG_VERSION"),
        started_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        filter: args.filter.clone(),
        quick: args.quick,
        runs: args.runs,
        time_per_case_ms: time_ms,
        cpus,
        placement: conditions.pinned.description.clone(),
        notes,
    };

    // Every case once per run, run after run, so that a slow moment of the machine
    // spreads over all cases instead of skewing one.
    let mut progress = Progress::new(steps, conditions.budget);
    let mut runs: Vec<Vec<Measure>> = vec![Vec::new(); cases.len()];
    for run in 0..args.runs {
        for (i, case) in cases.iter().enumerate() {
            let what = match args.runs {
                1 => case.name(),
                n => format!("run {}/{n}: {}", run + 1, case.name()),
            };
            progress.step(&what);
            runs[i].push(case.transport.measure(case, &conditions)?);
        }
    }
    progress.finish();

    let medians: Vec<Measure> = runs.iter().map(|r| Measure::median(r)).collect();
    let outcomes = cases
        .iter()
        .zip(&medians)
        .map(|(case, measure)| {
            let base = cases
                .iter()
                .position(|c| *c == case.baseline())
                .map(|j| medians[j].score());
            // `score / score` of the same pattern and size over each of `others`.
            let against = |others: &[Transport]| -> Vec<(Transport, f64)> {
                others
                    .iter()
                    .filter_map(|&other| {
                        let j = cases.iter().position(|c| {
                            *c == Case {
                                transport: other,
                                ..*case
                            }
                        })?;
                        Some((other, measure.score() / medians[j].score()))
                    })
                    .filter(|(_, r)| r.is_finite())
                    .collect()
            };
            let versus = match case.transport {
                Transport::ShoalQueue
                | Transport::ShoalQueueBatch
                | Transport::ShoalQueueZeroCopy => against(VERSUS),
                Transport::PyShoalQueue
                | Transport::PyShoalSimpleQueue
                | Transport::PyShoalPipe => against(VERSUS_PYTHON),
                // shoal::net against the raw socket of the same kind.
                Transport::ShoalNetUnix | Transport::ShoalNetTcp => case
                    .raw_socket()
                    .and_then(|raw| {
                        let j = cases.iter().position(|c| *c == raw)?;
                        Some((raw.transport, measure.score() / medians[j].score()))
                    })
                    .filter(|(_, r)| r.is_finite())
                    .into_iter()
                    .collect(),
                // The pool against Python's pools.
                Transport::ShoalPool | Transport::PyShoalPool => {
                    against(&[Transport::PyMpPool, Transport::PyProcessPoolExecutor])
                }
                _ => Vec::new(),
            };
            Outcome {
                case: *case,
                measure: *measure,
                ratio: base.map(|b| measure.score() / b).filter(|r| r.is_finite()),
                versus,
            }
        })
        .collect::<Vec<_>>();
    if let Some(path) = &args.svg {
        svg::chart(path, &settings, &outcomes)?;
    }
    if args.json {
        report::json(&settings, &outcomes)
    } else {
        report::table(&settings, &outcomes, args.markdown)
    }
}

/// Milliseconds per case when `--time-ms` is not given: 1 s (0.15 s quick), shortened so
/// that `steps` cases fit in 40 s (6 s quick) as the case table grows, but never below
/// 100 ms (20 ms quick), under which p99 and rates mean little.
fn default_time_ms(steps: usize, quick: bool) -> u64 {
    let (per_case, total, floor) = if quick {
        (150, 6_000, 20)
    } else {
        (1000, 40_000, 100)
    };
    let steps = steps.max(1) as u64;
    per_case.min(total / steps).max(floor)
}

/// `shoal __bench-peer`: the other process of a two-process case.
pub(crate) fn peer(args: &PeerArgs) -> anyhow::Result<()> {
    placement::pin_peer(args.cpu)?;
    let case = Case {
        transport: args.transport,
        pattern: args.pattern,
        size: args.size,
    };
    if !args.transport.supports(args.pattern, args.size) {
        bail!(
            "{} does not support {}",
            case.transport.name(),
            case.pattern.name()
        );
    }
    args.transport.peer(&case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_time_shrinks_as_cases_are_added() {
        assert_eq!(default_time_ms(16, false), 1000);
        assert_eq!(default_time_ms(16, true), 150);
        assert_eq!(default_time_ms(60, true), 100);
        assert_eq!(default_time_ms(80, false), 500);
        assert_eq!(default_time_ms(10_000, false), 100);
        assert_eq!(default_time_ms(10_000, true), 20);
        assert_eq!(default_time_ms(0, false), 1000);
    }
}
