//! Waiting without the GIL, in slices, so that signals (Ctrl-C) are seen.

use std::time::{Duration, Instant};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

/// The longest wait between two signal checks.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// A Python timeout (`None`: none; negative counts as zero) as a deadline.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("a timeout cannot be NaN")),
        Some(t) => {
            let t = Duration::try_from_secs_f64(t.max(0.0))
                .map_err(|_| PyValueError::new_err(format!("timeout {t} is too large")))?;
            Ok(Some(Instant::now() + t))
        }
    }
}

/// Calls `attempt(slice)` without the GIL until it gives a result or the deadline
/// passes (then `None`); between slices, runs Python's signal handlers (a
/// `KeyboardInterrupt` ends the wait).
pub(crate) fn wait_for<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Duration) -> PyResult<Option<T>> + Send,
) -> PyResult<Option<T>> {
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
        };
        if let Some(v) = py.detach(|| attempt(slice))? {
            return Ok(Some(v));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// A failure to create a shared object, as `OSError`.
pub(crate) fn create_failed(e: &dyn std::fmt::Display) -> PyErr {
    PyOSError::new_err(e.to_string())
}
