//! `recv_answer`: how a thread waiting for a pool task's result takes the worker's
//! answer itself, instead of waiting for the pool's supervisor thread to hand it over
//! (each hand-over between threads costs a wake-up and the GIL).
//!
//! It waits as a pipe's receive does: on the ring first (a short spin, then a futex),
//! which an answer that comes within microseconds meets without a sleep; the
//! `poll` + `recv` pair would sleep on the ring's eventfd every time.

use pyo3::prelude::*;

use crate::pickle::Received;
use crate::pipe::{receive, PipeEnd};

/// The next object on `end`, waiting up to `timeout` seconds; `None` after the
/// timeout; `EOFError` at end of stream (the worker is gone).
#[pyfunction]
pub(crate) fn recv_answer<'py>(
    py: Python<'py>,
    end: &Bound<'py, PipeEnd>,
    timeout: f64,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let inner = end.get().inner()?;
    let got = receive(py, &inner, Some(timeout), |py, slot| {
        Received::read(py, &slot)
    })?;
    got.map(|r| r.load(py)).transpose()
}
