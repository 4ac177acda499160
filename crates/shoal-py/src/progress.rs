//! `Progress`: the pool's progress bar, drawn by indicatif on standard error when it is
//! a terminal (and not at all otherwise), as the Rust pool's is.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pyo3::prelude::*;

/// A progress bar over `total` items (a spinner when the total is unknown).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct Progress {
    bar: ProgressBar,
}

#[pymethods]
impl Progress {
    #[new]
    #[pyo3(signature = (total = None))]
    fn new(total: Option<u64>) -> Progress {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = if total.is_some() {
            "{wide_bar} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}]"
        } else {
            "{spinner} {pos} [{elapsed_precise}, {per_sec}]"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Progress { bar }
    }

    /// Counts `n` more items done.
    #[pyo3(signature = (n = 1))]
    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Items counted so far.
    #[getter]
    fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Draws the bar one last time, complete.
    fn finish(&self) {
        self.bar.finish();
    }
}
