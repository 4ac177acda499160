//! What `shoal bench` prints: a table per pattern, or JSON.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::bench::case::{Case, Pattern};
use crate::bench::measure::Measure;
use crate::bench::transport::Transport;
use crate::bench::{Outcome, Settings};
use crate::output::{self, Align, Table};

/// `--list`: the selected case names, one a line.
pub(crate) fn list(cases: &[Case]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    for case in cases {
        writeln!(out, "{}", case.name())?;
    }
    Ok(())
}

/// The tables, one per pattern.
pub(crate) fn table(
    settings: &Settings,
    outcomes: &[Outcome],
    markdown: bool,
) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let runs = match settings.runs {
        1 => "1 run".to_owned(),
        n => format!("medians of {n} runs"),
    };
    writeln!(
        out,
        "shoal bench: {} CPUs ({}), {} ms per case, {runs}; each case against a baseline in the same run (ratio above 1: faster than the baseline)",
        settings.cpus, settings.placement, settings.time_per_case_ms,
    )?;
    for note in &settings.notes {
        writeln!(out, "note: {note}")?;
    }
    for &pattern in Pattern::ALL {
        let rows: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.case.pattern == pattern)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let (title, columns) = heading(pattern);
        writeln!(out, "\n{title}")?;
        let sized = pattern.sizes() != [0];
        let ratio_title = format!("VS {}", pattern.baseline().name().to_uppercase());
        let mut header = Vec::new();
        if sized {
            header.push(("SIZE", Align::Right));
        }
        header.extend([
            (if sized { "TRANSPORT" } else { "MECHANISM" }, Align::Left),
            (columns[0], Align::Right),
            (columns[1], Align::Right),
            (columns[2], Align::Right),
            (ratio_title.as_str(), Align::Right),
        ]);
        let mut t = Table::new(&header);
        for o in rows {
            let figures = match o.measure {
                Measure::Latency {
                    p50_ns,
                    p99_ns,
                    round_trips,
                } => [
                    output::nanos(p50_ns),
                    output::nanos(p99_ns),
                    output::count(round_trips),
                ],
                Measure::Throughput { messages, seconds } => {
                    let rate = messages as f64 / seconds;
                    let second = if sized {
                        output::rate(rate * o.case.size as f64 / 1e6)
                    } else {
                        // Work items without a size: the time per item.
                        format!("{:.3}", 1e6 / rate)
                    };
                    [output::rate(rate), second, output::count(messages)]
                }
            };
            let mut cells = Vec::new();
            if sized {
                cells.push(output::bytes(o.case.size as u64));
            }
            cells.push(o.case.transport.name().to_owned());
            cells.extend(figures);
            cells.push(
                o.ratio
                    .map_or_else(|| "?".to_owned(), |r| format!("{r:.2}×")),
            );
            t.row(cells);
        }
        if markdown {
            writeln!(out)?;
            t.write_markdown(&mut out)?;
        } else {
            t.write_to(&mut out)?;
        }
    }
    versus_table(&mut out, outcomes, markdown)?;
    Ok(())
}

/// shoal against what it replaces, measured in the same run: its queues against
/// Python's, its connections against the raw socket of the same kind, its pool against
/// Python's pools.
fn versus_table(out: &mut impl Write, outcomes: &[Outcome], markdown: bool) -> io::Result<()> {
    let groups: [(&str, &[Transport], &[Transport]); 4] = [
        (
            "shoal's queues against Python's, same run (rates, or medians of round trips; above 1: shoal is faster)",
            &[
                Transport::ShoalQueue,
                Transport::ShoalQueueBatch,
                Transport::ShoalQueueZeroCopy,
            ],
            &[Transport::PyMpQueue, Transport::PyFasterFifo],
        ),
        (
            "the package shoal from Python against Python's queues and pipes, same run (rates, or medians of round trips; above 1: shoal is faster; targets: shoal.Queue of objects 5× py-mp-queue and 2× py-faster-fifo, of bytes 10× py-mp-queue, 1 MiB 5× py-mp-queue; shoal.Pipe 3× py-mp-pipe)",
            &[
                Transport::PyShoalQueue,
                Transport::PyShoalSimpleQueue,
                Transport::PyShoalPipe,
            ],
            crate::bench::VERSUS_PYTHON,
        ),
        (
            "shoal::net connections against the raw socket of the same kind, same run (rates, or medians of round trips; target at 64 KiB throughput: 0.8 or more)",
            &[Transport::ShoalNetUnix, Transport::ShoalNetTcp],
            &[Transport::UnixSocket, Transport::TcpLoopback],
        ),
        (
            "shoal's pools (Rust, and the package from Python) against Python's, same run (tasks per second; above 1: shoal is faster; targets for py-shoal-pool: chunksize 1 20× py-mp-pool and 50× py-process-pool-executor, chunked automatically 3× py-mp-pool)",
            &[Transport::ShoalPool, Transport::PyShoalPool],
            &[Transport::PyMpPool, Transport::PyProcessPoolExecutor],
        ),
    ];
    for (title, ours, theirs) in groups {
        let rows: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| ours.contains(&o.case.transport) && !o.versus.is_empty())
            .collect();
        if rows.is_empty() {
            continue;
        }
        writeln!(out, "\n{title}")?;
        // A connection has one raw socket to compare with: one column says it.
        let single = ours.contains(&Transport::ShoalNetUnix);
        let names: Vec<String> = if single {
            vec!["VS RAW SOCKET".to_owned()]
        } else {
            theirs
                .iter()
                .map(|t| format!("VS {}", t.name().to_uppercase()))
                .collect()
        };
        let mut header = vec![
            ("PATTERN", Align::Left),
            ("SIZE", Align::Right),
            ("TRANSPORT", Align::Left),
        ];
        header.extend(names.iter().map(|n| (n.as_str(), Align::Right)));
        let mut t = Table::new(&header);
        for o in rows {
            let cell = |other: Transport| {
                o.versus
                    .iter()
                    .find(|(t, _)| *t == other)
                    .map_or_else(|| "-".to_owned(), |(_, r)| format!("{r:.2}×"))
            };
            let mut cells = vec![
                o.case.pattern.name().to_owned(),
                if o.case.pattern.sizes() == [0] {
                    "-".to_owned()
                } else {
                    output::bytes(o.case.size as u64)
                },
                o.case.transport.name().to_owned(),
            ];
            if single {
                cells.push(
                    o.versus
                        .first()
                        .map_or_else(|| "-".to_owned(), |(_, r)| format!("{r:.2}×")),
                );
            } else {
                cells.extend(theirs.iter().map(|&p| cell(p)));
            }
            t.row(cells);
        }
        if markdown {
            writeln!(out)?;
            t.write_markdown(out)?;
        } else {
            t.write_to(out)?;
        }
    }
    Ok(())
}

/// The title of a pattern's table and the names of its three figures.
fn heading(pattern: Pattern) -> (&'static str, [&'static str; 3]) {
    match pattern {
        Pattern::PingPong => (
            "ping-pong round trip between two processes; the ratio compares medians",
            ["P50", "P99", "ROUND TRIPS"],
        ),
        Pattern::Throughput => (
            "throughput from one producer process to one consumer process, one write per message (-batch: put_bytes_many / get_bytes_with; -zero-copy: reserve, write in place, commit / get_many_in_place, read in place; py-*: bytes objects from Python, put / get or send_bytes / recv_bytes, py-faster-fifo put_many / get_many); the ratio compares rates",
            ["MSG/S", "MB/S", "MESSAGES"],
        ),
        Pattern::Throughput2x2 => (
            "throughput from two producer processes to two consumer processes around one queue (byte streams and shoal-pipe: two independent pairs; a byte stream's producers are two threads of the parent); the ratio compares rates",
            ["MSG/S", "MB/S", "MESSAGES"],
        ),
        Pattern::PingPongObject => (
            "ping-pong of a small Python object (a dict of five fields) between two Python processes, put / get or send / recv; the ratio compares medians",
            ["P50", "P99", "ROUND TRIPS"],
        ),
        Pattern::ThroughputObject => (
            "throughput of small Python objects (a dict of five fields) from one Python process to another, one put / get or send / recv per object (faster-fifo too); the ratio compares rates",
            ["MSG/S", "µS/MSG", "MESSAGES"],
        ),
        Pattern::LockUncontended => (
            "uncontended acquire + release in one process, time per pair (batches of 1000); the ratio compares medians",
            ["P50", "P99", "PAIRS"],
        ),
        Pattern::HolderDeath => (
            "SIGKILL of a lock holder until another process learns of the death; the ratio compares medians",
            ["MEDIAN", "MAX", "TRIES"],
        ),
        Pattern::ProcessStart => (
            "process start until the first instruction of the child (command-bin-true: spawn + exit + wait); the ratio compares medians",
            ["P50", "P99", "STARTS"],
        ),
        Pattern::PoolTask => (
            "per-task overhead of a pool of two workers, trivial task, chunksize 1 (os-pipe: one worker process answering one 8-byte request per task over a pipe); the ratio compares rates (target: 1 µs/task or less)",
            ["TASKS/S", "µS/TASK", "TASKS"],
        ),
        Pattern::PoolMap => (
            "map of a trivial task over many items by a pool of two workers, chunked automatically (os-pipe: the items and results through a pipe to a worker process and back, 64 KiB per round trip); the ratio compares rates (target: 20 M items/s or more)",
            ["ITEMS/S", "µS/ITEM", "ITEMS"],
        ),
        Pattern::PoolSubmit => (
            "one call through an executor of two workers, submit(f, x).result(), one at a time, from Python (py-process-pool-executor: the standard library's); the ratio compares medians (target for py-shoal-executor: 20× or more)",
            ["P50", "P99", "CALLS"],
        ),
    }
}

/// One result in `--json`.
#[derive(Serialize, Debug)]
struct JsonResult {
    name: String,
    transport: Transport,
    pattern: Pattern,
    size: usize,
    baseline: String,
    /// `score / baseline score`; above 1 is faster than the baseline (`null` when the
    /// baseline could not be measured).
    ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    round_trips: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_per_s: Option<f64>,
    /// shoal's queues: `score / score` of each Python queue of the same pattern and
    /// size (above 1: shoal is faster).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    versus: BTreeMap<&'static str, f64>,
}

#[derive(Serialize, Debug)]
struct JsonReport<'a> {
    settings: &'a Settings,
    results: Vec<JsonResult>,
}

/// `--json`: the settings and one object per case.
pub(crate) fn json(settings: &Settings, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let results = outcomes
        .iter()
        .map(|o| {
            let mut r = JsonResult {
                name: o.case.name(),
                transport: o.case.transport,
                pattern: o.case.pattern,
                size: o.case.size,
                baseline: o.case.baseline().name(),
                ratio: o.ratio,
                p50_ns: None,
                p99_ns: None,
                round_trips: None,
                messages: None,
                seconds: None,
                messages_per_s: None,
                bytes_per_s: None,
                versus: o.versus.iter().map(|(t, r)| (t.name(), *r)).collect(),
            };
            match o.measure {
                Measure::Latency {
                    p50_ns,
                    p99_ns,
                    round_trips,
                } => {
                    r.p50_ns = Some(p50_ns);
                    r.p99_ns = Some(p99_ns);
                    r.round_trips = Some(round_trips);
                }
                Measure::Throughput { messages, seconds } => {
                    let rate = messages as f64 / seconds;
                    r.messages = Some(messages);
                    r.seconds = Some(seconds);
                    r.messages_per_s = Some(rate);
                    // Work items (pool cases) have no size: no bytes per second.
                    r.bytes_per_s = (o.case.size > 0).then_some(rate * o.case.size as f64);
                }
            }
            r
        })
        .collect();
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &JsonReport { settings, results })
        .map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}
