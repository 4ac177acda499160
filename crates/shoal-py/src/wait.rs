//! `wait`: `multiprocessing.connection.wait` over shoal queues and pipe ends together
//! with any descriptor (sockets, process sentinels).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

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
    let mut waitables: Vec<&(dyn Waitable + Sync)> =
        queue_refs.iter().map(|q| q.waitable()).collect();
    let mut index: Vec<usize> = queues.iter().map(|(i, _)| *i).collect();
    for (i, p) in &pipes {
        waitables.push(&p.conn);
        index.push(*i);
    }
    let deadline = deadline(timeout)?;
    let got = wait_for(py, deadline, |slice| {
        let objects: Vec<&dyn Waitable> = waitables.iter().map(|w| *w as &dyn Waitable).collect();
        let (objs, mut ready_fds) = wait_with_fds(&objects, &borrowed, Some(slice))
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        if objs.is_empty() && ready_fds.is_empty() {
            return Ok(None);
        }
        if ready_fds.is_empty() {
            // Every ready descriptor is reported, not only the ready objects.
            ready_fds = readable_now(&borrowed).map_err(|e| PyOSError::new_err(e.to_string()))?;
        }
        let mut out: Vec<usize> = objs.iter().map(|&k| index[k]).collect();
        out.extend(ready_fds.iter().map(|&k| fd_index[k]));
        out.sort_unstable();
        out.dedup();
        Ok(Some(out))
    })?;
    Ok(got.unwrap_or_default())
}

/// The indices of the descriptors of `fds` that are readable (or closed) now.
fn readable_now(fds: &[BorrowedFd<'_>]) -> io::Result<Vec<usize>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `polled` is a valid array of `polled.len()` pollfd records, and the
        // descriptors are open (borrowed for this call); a zero timeout never blocks.
        let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, 0) };
        if n >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(polled
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect())
}
