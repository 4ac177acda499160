//! The `shoal` command: benchmarks of every transport side by side, and the listing,
//! inspection and cleanup of named shared-memory segments.
//!
//! ```text
//! shoal bench [FILTER] [--quick] [--json]   transports side by side, as ratios
//! shoal ls [FILTER] [--json]                named segments in /dev/shm
//! shoal gc [FILTER]                         remove the segments of dead owners
//! shoal inspect NAME                        one segment's header
//! shoal cluster status --redis URL --pool P  a cluster pool's hosts and tasks
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod bench;
mod cluster;
mod output;
mod segments;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Processes, shared memory and transports: benchmarks and segment housekeeping.
#[derive(Parser, Debug)]
#[command(name = "shoal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure every transport side by side, each against a baseline of the same run.
    Bench(bench::BenchArgs),
    /// List shoal's named segments in /dev/shm.
    Ls(segments::LsArgs),
    /// Remove the named segments whose owner process is gone, and print what was removed.
    Gc(segments::GcArgs),
    /// Open one named segment and print its header.
    Inspect(segments::InspectArgs),
    /// Cluster pools on Redis: `shoal cluster status --redis URL --pool NAME`.
    Cluster(cluster::ClusterArgs),
    /// The other side of a two-process benchmark (started by `shoal bench`).
    #[command(name = "__bench-peer", hide = true)]
    BenchPeer(bench::PeerArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Ls(args) => segments::ls(&args),
        Command::Gc(args) => segments::gc(&args),
        Command::Inspect(args) => segments::inspect(&args),
        Command::Cluster(args) => cluster::run(&args),
        Command::BenchPeer(args) => bench::peer(&args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stops early (`shoal ls | head`) is not a failure.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
