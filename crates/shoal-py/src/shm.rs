//! `Segment`: a shoal shared-memory segment, mapped again by Python's `mmap` (so that
//! `memoryview`s of it keep their mapping alive, and `close` refuses while they exist).

use std::os::fd::{AsFd, AsRawFd};

use pyo3::exceptions::{PyFileExistsError, PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shoal::shm::ShmError;
use shoal::SharedMemory;

use crate::handoff::{rebuild, Exported};

/// A segment: anonymous (a memfd, freed with its last user) or named
/// (`/dev/shm/NAME`, with shoal's header: owner pid, layout version).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct Segment {
    shm: SharedMemory,
    exported: Exported,
}

fn shm_error(e: ShmError, name: Option<&str>) -> PyErr {
    let msg = e.to_string();
    match e {
        ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err((
                2,
                format!("no shared memory segment named {:?}", name.unwrap_or("")),
            ))
        }
        ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            PyFileExistsError::new_err((
                17,
                format!(
                    "a shared memory segment named {:?} exists",
                    name.unwrap_or("")
                ),
            ))
        }
        ShmError::InvalidName { .. } => PyValueError::new_err(msg),
        _ => PyOSError::new_err(msg),
    }
}

#[pymethods]
impl Segment {
    /// A new segment of `size` payload bytes: named `name` when given, a fresh
    /// `shoal-<pid>-<n>` name when `named`, else anonymous.
    #[new]
    #[pyo3(signature = (size, name = None, named = false))]
    fn new(size: usize, name: Option<&str>, named: bool) -> PyResult<Segment> {
        let shm = match name {
            Some(n) => SharedMemory::create_named(n, size),
            None if named => SharedMemory::create(size),
            None => SharedMemory::new(size),
        }
        .map_err(|e| shm_error(e, name))?;
        Ok(Segment {
            shm,
            exported: Exported::default(),
        })
    }

    /// Opens the named segment `name` (refused when it is not a shoal segment of this
    /// layout version).
    #[staticmethod]
    fn open(name: &str) -> PyResult<Segment> {
        Ok(Segment {
            shm: SharedMemory::open(name).map_err(|e| shm_error(e, Some(name)))?,
            exported: Exported::default(),
        })
    }

    /// The descriptor to map (valid while this object lives).
    fn fileno(&self) -> i32 {
        self.shm.as_fd().as_raw_fd()
    }

    /// Where the payload starts in the mapping.
    #[staticmethod]
    fn payload_offset() -> usize {
        SharedMemory::payload_offset()
    }

    /// Payload bytes (at least those asked for).
    #[getter]
    fn size(&self) -> usize {
        self.shm.size()
    }

    /// The name under `/dev/shm`, for named segments.
    #[getter]
    fn name(&self) -> Option<String> {
        self.shm.name().map(str::to_owned)
    }

    /// Removes the name (the memory lives on while mapped).
    fn unlink(&self) -> PyResult<()> {
        let name = self.shm.name().map(str::to_owned);
        self.shm.unlink().map_err(|e| shm_error(e, name.as_deref()))
    }

    /// `(bytes, [fd, …])` for pickling.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        self.exported.parts(py, &self.shm)
    }

    /// The segment again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], fds: Vec<i32>) -> PyResult<Segment> {
        Ok(Segment {
            shm: rebuild(data, fds)?,
            exported: Exported::default(),
        })
    }
}

/// Removes the named segments whose owner process is gone (`shoal gc`); returns their
/// names.
#[pyfunction]
pub(crate) fn collect_dead() -> PyResult<Vec<String>> {
    shoal::shm::collect_dead()
        .map_err(|e| PyOSError::new_err(format!("could not collect dead segments: {e}")))
}
