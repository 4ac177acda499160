//! Where the two processes of a case run: on two CPUs, on one, or wherever the
//! scheduler puts them.
//!
//! Placement decides round-trip figures more than any transport does: on the 2-vCPU
//! machines shoal is measured on, waking a process on the other CPU costs ~50 µs and on
//! the same CPU ~3 µs, and an unpinned pair flips between the two from one spawn to the
//! next. Each process pins itself with [`shoal::process::set_cpu_affinity`]: the parent
//! here, before it measures; the peer first thing when it starts (given its CPU on its
//! command line or in its arguments). Where pinning is refused, the benchmark runs
//! unpinned and says so.

use clap::ValueEnum;
use shoal::process::{available_cpus, set_cpu_affinity};

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
    /// The CPU this process is pinned to (where producer processes of the 2→2 cases
    /// go), `None` when unpinned.
    pub(crate) parent_cpu: Option<usize>,
    /// The CPU the peer is started on, `None` when unpinned.
    pub(crate) peer_cpu: Option<usize>,
    /// What the report says about placement.
    pub(crate) description: String,
    /// The CPUs this process had before pinning, to restore.
    restore: Option<Vec<usize>>,
}

impl Placement {
    /// Pins this process as `self` asks and says where the peer goes.
    pub(crate) fn apply(self) -> Pinned {
        let unpinned = |why: &str| Pinned {
            parent_cpu: None,
            peer_cpu: None,
            description: format!("unpinned ({why})"),
            restore: None,
        };
        if self == Placement::Any {
            return unpinned("--placement any");
        }
        let cpus = match available_cpus() {
            Ok(cpus) => cpus,
            Err(_) => return unpinned("the allowed CPUs are unknown"),
        };
        let (parent, peer) = match (self, cpus.as_slice()) {
            (Placement::Split, [a, b, ..]) => (*a, *b),
            (Placement::Split, _) => return unpinned("only one CPU to run on"),
            (_, [a, ..]) => (*a, *a),
            (_, []) => return unpinned("no CPU in the allowed list"),
        };
        if let Err(e) = set_cpu_affinity(&[parent]) {
            return unpinned(&format!("pinning was refused: {e}"));
        }
        Pinned {
            parent_cpu: Some(parent),
            peer_cpu: Some(peer),
            description: if parent == peer {
                format!("both processes on CPU {parent}")
            } else {
                format!("parent on CPU {parent}, peer on CPU {peer}")
            },
            restore: Some(cpus),
        }
    }
}

/// Pins the calling (peer) process to `cpu`, if it is given.
pub(crate) fn pin_peer(cpu: Option<usize>) -> anyhow::Result<()> {
    if let Some(cpu) = cpu {
        set_cpu_affinity(&[cpu])
            .map_err(|e| anyhow::anyhow!("the benchmark peer could not pin itself: {e}"))?;
    }
    Ok(())
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(cpus) = self.restore.take() {
            // Best effort: the process is about to exit anyway.
            let _ = set_cpu_affinity(&cpus);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_placement_pins_this_process_and_restores_it() {
        let before = available_cpus().unwrap();
        {
            let pinned = Placement::Same.apply();
            assert_eq!(pinned.peer_cpu, Some(before[0]));
            assert_eq!(available_cpus().unwrap(), [before[0]]);
        }
        assert_eq!(available_cpus().unwrap(), before);
    }

    #[test]
    fn any_placement_pins_nothing() {
        let pinned = Placement::Any.apply();
        assert_eq!(pinned.peer_cpu, None);
        assert!(pinned.description.starts_with("unpinned"));
    }
}
