//! Where the two processes of a case run: on two CPUs, on one, or wherever the
//! scheduler puts them.
//!
//! Placement decides round-trip figures more than any transport does: on the 2-vCPU
//! machines shoal is measured on, waking a process on the other CPU costs ~50 µs and on
//! the same CPU ~3 µs, and an unpinned pair flips between the two from one spawn to the
//! next. Pinning goes through the `taskset` program (util-linux) so that this binary
//! stays free of unsafe code; where `taskset` is missing or refuses, the benchmark runs
//! unpinned and says so.

use std::process::{Command, Stdio};

use clap::ValueEnum;

/// Where the parent and the peer of every case run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Placement {
    /// Parent on one CPU, peer on another: the wake-up crosses CPUs.
    Split,
    /// Both on one CPU: every hop is a context switch.
    Same,
    /// Wherever the scheduler puts them (and moves them).
    Any,
}

/// The placement in force, with the peer's CPU; restores this process's CPUs on drop.
#[derive(Debug)]
pub(crate) struct Pinned {
    /// The CPU the peer is started on, `None` when unpinned.
    pub(crate) peer_cpu: Option<usize>,
    /// What the report says about placement.
    pub(crate) description: String,
    /// The CPU list this process had before pinning, to restore.
    restore: Option<String>,
}

impl Placement {
    /// Pins this process as `self` asks and says where the peer goes.
    pub(crate) fn apply(self) -> Pinned {
        let unpinned = |why: &str| Pinned {
            peer_cpu: None,
            description: format!("unpinned ({why})"),
            restore: None,
        };
        if self == Placement::Any {
            return unpinned("--placement any");
        }
        let Some(allowed) = allowed_cpus() else {
            return unpinned("the allowed CPUs are unknown");
        };
        let cpus = parse_cpu_list(&allowed);
        let (parent, peer) = match (self, cpus.as_slice()) {
            (Placement::Split, [a, b, ..]) => (*a, *b),
            (Placement::Split, _) => return unpinned("only one CPU to run on"),
            (_, [a, ..]) => (*a, *a),
            (_, []) => return unpinned("no CPU in the allowed list"),
        };
        if !taskset(&[
            "-a",
            "-p",
            "-c",
            &parent.to_string(),
            &std::process::id().to_string(),
        ]) {
            return unpinned("taskset is not available");
        }
        Pinned {
            peer_cpu: Some(peer),
            description: if parent == peer {
                format!("both processes on CPU {parent}")
            } else {
                format!("parent on CPU {parent}, peer on CPU {peer}")
            },
            restore: Some(allowed),
        }
    }
}

impl Pinned {
    /// The peer's command line: `exe ARGS`, under `taskset -c CPU` when pinned.
    pub(crate) fn command(&self, exe: &std::path::Path) -> Command {
        match self.peer_cpu {
            Some(cpu) => {
                // taskset execs the program: the child's pid is the peer's own.
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(cpu.to_string()).arg(exe);
                cmd
            }
            None => Command::new(exe),
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(list) = self.restore.take() {
            // Best effort: the process is about to exit anyway.
            taskset(&["-a", "-p", "-c", &list, &std::process::id().to_string()]);
        }
    }
}

/// Runs `taskset ARGS` quietly; whether it succeeded.
fn taskset(args: &[&str]) -> bool {
    Command::new("taskset")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// This process's allowed CPUs as the kernel lists them (`0-3,8`).
fn allowed_cpus() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
}

/// The CPUs of a kernel CPU list (`0-3,8` is 0, 1, 2, 3, 8); malformed parts are skipped.
fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_read_like_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-1"), [0, 1]);
        assert_eq!(parse_cpu_list("0-2,8, 10-11"), [0, 1, 2, 8, 10, 11]);
        assert_eq!(parse_cpu_list("3"), [3]);
        assert_eq!(parse_cpu_list("x,2"), [2]);
        assert!(parse_cpu_list("").is_empty());
    }

    #[test]
    fn this_process_has_allowed_cpus() {
        let list = allowed_cpus().unwrap();
        assert!(!parse_cpu_list(&list).is_empty(), "{list}");
    }

    #[test]
    fn any_placement_pins_nothing() {
        let pinned = Placement::Any.apply();
        assert_eq!(pinned.peer_cpu, None);
        assert!(pinned.description.starts_with("unpinned"));
    }
}
