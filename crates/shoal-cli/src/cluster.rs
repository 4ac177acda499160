//! `shoal cluster status`: the worker hosts, tasks in flight, pending and dead-lettered
//! of a cluster pool.

use std::io::{self, Write};

use anyhow::Context;

use crate::output::{Align, Table};

/// Arguments of `shoal cluster`.
#[derive(clap::Args, Debug)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ClusterCommand {
    /// Show a cluster pool: its worker hosts, and its tasks in flight, pending and
    /// dead-lettered.
    Status(StatusArgs),
}

/// Arguments of `shoal cluster status`.
#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// The Redis URL (`redis://`, `rediss://`; user and password in it).
    #[arg(long)]
    redis: String,
    /// The pool's name.
    #[arg(long)]
    pool: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs `shoal cluster …`.
pub(crate) fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    match &args.command {
        ClusterCommand::Status(a) => status(a),
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let s = shoal_cluster::status(&args.redis, &args.pool)
        .with_context(|| format!("could not read the status of pool {}", args.pool))?;
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &s).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "pool {}: {} worker hosts, {} in flight, {} pending (high {}, normal {}, low {}), {} dead-lettered",
        s.pool,
        s.hosts.len(),
        s.in_flight,
        s.pending,
        s.pending_by_priority[0],
        s.pending_by_priority[1],
        s.pending_by_priority[2],
        s.dead_lettered
    )?;
    if s.hosts.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let mut t = Table::new(&[
        ("HOST", Align::Left),
        ("MACHINE", Align::Left),
        ("PID", Align::Right),
        ("PROCESSES", Align::Right),
        ("HELD", Align::Right),
        ("DONE", Align::Right),
        ("LAST SEEN", Align::Right),
        ("STATE", Align::Left),
    ]);
    for h in &s.hosts {
        let state = if h.stopping {
            "stopping"
        } else if h.alive {
            "alive"
        } else {
            "silent"
        };
        t.row(vec![
            h.id.clone(),
            h.hostname.clone(),
            h.pid.to_string(),
            h.processes.to_string(),
            h.held.to_string(),
            h.done.to_string(),
            format!("{:.1} s ago", h.last_seen_ms as f64 / 1000.0),
            state.to_owned(),
        ]);
    }
    t.write_to(&mut out)?;
    Ok(())
}
