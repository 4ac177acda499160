//! [`Chunk`]: a run of consecutive items of one job, as the supervisor holds it while a
//! worker runs it.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::pool::job::{Job, Piece};
use crate::pool::TaskError;

/// Cell size of the workers' task rings (a chunk's cost is counted in cells).
pub(crate) const TASK_CELL: usize = 128;

/// A run of consecutive items of one job, as sent to a worker.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) id: u64,
    pub(crate) job: Arc<Job>,
    /// Index of the first item in the job.
    pub(crate) first: u64,
    pub(crate) count: u32,
    /// How many times these items were already started by a worker that died.
    pub(crate) attempt: u32,
    /// The chunk message (see `wire.rs`).
    pub(crate) msg: Vec<u8>,
    /// The descriptors its one item refers to (sockets, files, shoal objects in a task
    /// argument), sent to the worker beside the message; empty for most chunks.
    pub(crate) fds: Arc<Vec<OwnedFd>>,
}

impl Chunk {
    /// Ring bytes its message takes: whole cells, with the ring's 16-byte header.
    pub(crate) fn cost(&self) -> usize {
        (self.msg.len() + 16).div_ceil(TASK_CELL) * TASK_CELL
    }

    /// Fails every item of `[from, to)` with `err`.
    pub(crate) fn fail(&self, from: u32, to: u32, err: &TaskError) {
        self.job.deliver((from..to).map(|i| {
            let index = self.first + u64::from(i);
            Piece::failed(index, err.clone().at(index))
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_chunk_fails_each_item_at_its_index() {
        let job = Arc::new(Job::default());
        let c = Chunk {
            id: 1,
            job: Arc::clone(&job),
            first: 10,
            count: 3,
            attempt: 0,
            msg: vec![0; 100],
            fds: Arc::default(),
        };
        assert_eq!(c.cost(), TASK_CELL);
        c.fail(1, 3, &TaskError::Terminated { task: 0 });
        let st = job.lock();
        let tasks: Vec<_> = st.arrived.iter().map(|p| p.first).collect();
        assert_eq!(tasks, vec![11, 12]);
        assert_eq!(
            st.arrived[1].outcome(0),
            Err(TaskError::Terminated { task: 12 })
        );
    }
}
