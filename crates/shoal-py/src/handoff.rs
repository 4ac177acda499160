//! Rust objects as `(bytes, descriptors)` for pickling: the Python layer sends the
//! descriptors with the standard library's `reduction.DupFd` (inherited under `spawn`,
//! sent over the forkserver's socket, or shared by `resource_sharer`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The encoded form of one object, made once and kept while the object lives, so that
/// the descriptors stay open until the child has them.
#[derive(Default)]
pub(crate) struct Exported(Mutex<Option<shoal::handoff::Encoded>>);

impl Exported {
    /// `(bytes, [fd, …])` for `value`; the descriptors belong to `self`.
    pub(crate) fn parts<'py, T: Serialize>(
        &self,
        py: Python<'py>,
        value: &T,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let enc = shoal::handoff::encode(value)
                .map_err(|e| PyValueError::new_err(format!("could not export the object: {e}")))?;
            *slot = Some(enc);
        }
        let enc = slot.as_ref().expect("set above");
        Ok((
            PyBytes::new(py, &enc.bytes),
            enc.fds.iter().map(|f| f.as_raw_fd()).collect(),
        ))
    }
}

/// Rebuilds an object from [`Exported::parts`], taking ownership of `fds`.
pub(crate) fn rebuild<T: DeserializeOwned>(bytes: &[u8], fds: Vec<i32>) -> PyResult<T> {
    let owned: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| {
            if fd < 0 {
                return Err(PyValueError::new_err(format!("invalid descriptor {fd}")));
            }
            // SAFETY: the caller hands over descriptors it owns (from `DupFd.detach()`),
            // each exactly once; nothing else closes them after this.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect::<PyResult<_>>()?;
    shoal::handoff::decode(bytes, owned)
        .map_err(|e| PyValueError::new_err(format!("could not attach the shared object: {e}")))
}
