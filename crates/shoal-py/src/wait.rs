//! `wait`: `multiprocessing.connection.wait` over shoal queues and pipe ends together
//! with any descriptor (sockets, process sentinels).

use std::os::fd::{AsFd, BorrowedFd};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use shoal::channel::{wait_with_fds, Waitable};

use crate::blocking::{deadline, wait_for};
use crate::pipe::PipeEnd;
use crate::queue::RawQueue;

/// Returns the indices of the ready items of `objects` (`RawQueue`, `PipeEnd` or a
/// descriptor number), waiting up to `timeout` seconds (`None`: no limit).
#[pyfunction]
#[pyo3(signature = (objects, timeout = None))]
pub(crate) fn wait(
    py: Python<'_>,
    objects: Vec<Bound<'_, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Vec<usize>> {
    let mut queues = Vec::new();
    let mut pipes = Vec::new();
    let mut fds: Vec<(usize, i32)> = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if let Ok(q) = o.cast::<RawQueue>() {
            queues.push((i, q.clone().unbind()));
        } else if let Ok(p) = o.cast::<PipeEnd>() {
            pipes.push((i, p.get().inner()?));
        } else {
            fds.push((i, o.extract::<i32>()?));
        }
    }
    let queue_refs: Vec<&RawQueue> = queues.iter().map(|(_, q)| q.get()).collect();
    let mut waitables: Vec<&(dyn Waitable + Sync)> =
        queue_refs.iter().map(|q| q.waitable()).collect();
    let mut index: Vec<usize> = queues.iter().map(|(i, _)| *i).collect();
    for (i, p) in &pipes {
        waitables.push(&p.conn);
        index.push(*i);
    }
    // SAFETY: the descriptors are the caller's, open for the duration of this call
    // (Python keeps the objects they came from alive in `objects`).
    let mut borrowed: Vec<BorrowedFd<'_>> = fds
        .iter()
        .map(|(_, fd)| unsafe { BorrowedFd::borrow_raw(*fd) })
        .collect();
    let mut fd_index: Vec<usize> = fds.iter().map(|(i, _)| *i).collect();
    // A pipe end is also ready at end of stream: its liveness socket becomes readable.
    for (i, p) in &pipes {
        borrowed.push(p.token.as_fd());
        fd_index.push(*i);
    }
    let deadline = deadline(timeout)?;
    let got = wait_for(py, deadline, |slice| {
        let objects: Vec<&dyn Waitable> = waitables.iter().map(|w| *w as &dyn Waitable).collect();
        let (objs, ready_fds) = wait_with_fds(&objects, &borrowed, Some(slice))
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        if objs.is_empty() && ready_fds.is_empty() {
            return Ok(None);
        }
        let mut out: Vec<usize> = objs.iter().map(|&k| index[k]).collect();
        out.extend(ready_fds.iter().map(|&k| fd_index[k]));
        out.sort_unstable();
        out.dedup();
        Ok(Some(out))
    })?;
    Ok(got.unwrap_or_default())
}
