//! `ClusterPool` and `ClusterHost`: the two sides of a cluster pool (`shoal-cluster`,
//! on Redis Streams) for the Python layer's `shoal.cluster` and `shoal.worker`.
//!
//! Both speak bytes: the Python layer pickles calls and results. Signatures are
//! checked on the Rust side, before any byte reaches Python, so a mis-signed task is
//! dead-lettered and never unpickled.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyConnectionError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shoal_cluster::{
    ClusterError, ClusterKey, EncodedOutcome, HandedHost, Pool, Priority, ServeOptions, TaskError,
};

use crate::blocking::{deadline, wait_for};

/// A cluster error as the exception Python users catch: `ConnectionError` for Redis,
/// `ValueError` for a bad key, name or option.
fn cluster_error(e: ClusterError) -> PyErr {
    match e {
        ClusterError::Connect(_) | ClusterError::Redis { .. } => {
            PyConnectionError::new_err(e.to_string())
        }
        ClusterError::Key(_) | ClusterError::Config(_) => PyValueError::new_err(e.to_string()),
        e => PyRuntimeError::new_err(e.to_string()),
    }
}

fn cluster_key(key: Option<Vec<u8>>) -> PyResult<Option<ClusterKey>> {
    key.map(ClusterKey::new).transpose().map_err(cluster_error)
}

/// What kind of failure a task error is, for the Python layer to pick its exception.
fn kind(e: &TaskError) -> &'static str {
    match e {
        TaskError::Panicked { .. } => "panicked",
        TaskError::Timeout { .. } => "timeout",
        TaskError::WorkerDied { .. } => "worker_died",
        TaskError::NotRegistered { .. } => "not_registered",
        TaskError::Codec { .. } => "codec",
        TaskError::DeadLettered { .. } => "dead_lettered",
        TaskError::WaitTimeout { .. } => "wait_timeout",
        TaskError::Cancelled { .. } => "cancelled",
        _ => "other",
    }
}

/// The submitter side: tasks by name with pickled arguments, outcomes collected in
/// batches.
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct ClusterPool {
    pool: Pool,
    tx: Sender<EncodedOutcome>,
    rx: Mutex<Receiver<EncodedOutcome>>,
}

#[pymethods]
impl ClusterPool {
    // Python's keyword arguments, one per option.
    #[allow(clippy::too_many_arguments)]
    #[new]
    #[pyo3(signature = (url, name, key = None, max_in_flight = None, task_timeout = None,
                        max_deliveries = None, priority = "normal"))]
    fn new(
        py: Python<'_>,
        url: &str,
        name: &str,
        key: Option<Vec<u8>>,
        max_in_flight: Option<usize>,
        task_timeout: Option<f64>,
        max_deliveries: Option<u32>,
        priority: &str,
    ) -> PyResult<ClusterPool> {
        let mut b = Pool::builder(url, name);
        if let Some(k) = cluster_key(key)? {
            b = b.key(k);
        }
        if let Some(n) = max_in_flight {
            b = b.max_in_flight(n);
        }
        if let Some(t) = task_timeout {
            let t = Duration::try_from_secs_f64(t)
                .map_err(|_| PyValueError::new_err(format!("task_timeout {t} is not valid")))?;
            b = b.task_timeout(t);
        }
        if let Some(n) = max_deliveries {
            b = b.max_deliveries(n);
        }
        b = b.priority(match priority {
            "high" => Priority::High,
            "normal" => Priority::Normal,
            "low" => Priority::Low,
            p => {
                return Err(PyValueError::new_err(format!(
                    "unknown priority {p:?}: use 'high', 'normal' or 'low'"
                )))
            }
        });
        let pool = py.detach(|| b.connect()).map_err(cluster_error)?;
        let (tx, rx) = mpsc::channel();
        Ok(ClusterPool {
            pool,
            tx,
            rx: Mutex::new(rx),
        })
    }

    /// The pool's name.
    #[getter]
    fn name(&self) -> String {
        self.pool.name().to_owned()
    }

    /// Tasks submitted and not yet answered.
    #[getter]
    fn in_flight(&self) -> usize {
        self.pool.in_flight()
    }

    /// The submitter's counters: submitted, completed, duplicates, refused.
    fn stats(&self) -> (u64, u64, u64, u64) {
        let s = self.pool.stats();
        (s.submitted, s.completed, s.duplicates, s.refused)
    }

    /// Submits task `name` once per argument; returns the tasks' ids. Waits (without
    /// the GIL) while the pool's in-flight bound is reached.
    fn submit(&self, py: Python<'_>, name: &str, args: Vec<Vec<u8>>) -> PyResult<Vec<u64>> {
        py.detach(|| self.pool.submit_encoded(name, args, &self.tx))
            .map_err(cluster_error)
    }

    /// Waits up to `timeout` seconds (`None`: for ever) for outcomes and returns up to
    /// `max` of them, each `(id, result, None, None)` or `(id, None, kind, message)`;
    /// an empty list when none came in time.
    #[allow(clippy::type_complexity)]
    #[pyo3(signature = (max, timeout = None))]
    fn collect<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<
        Vec<(
            u64,
            Option<Bound<'py, PyBytes>>,
            Option<&'static str>,
            Option<String>,
        )>,
    > {
        let until = deadline(timeout)?;
        let got = wait_for(py, until, |slice| {
            let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
            let first = match rx.recv_timeout(slice) {
                Ok(o) => o,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Ok(Some(Vec::new())),
            };
            let mut v = vec![first];
            while v.len() < max.max(1) {
                match rx.try_recv() {
                    Ok(o) => v.push(o),
                    Err(_) => break,
                }
            }
            Ok(Some(v))
        })?
        .unwrap_or_default();
        Ok(got
            .into_iter()
            .map(|(id, outcome)| match outcome {
                Ok(bytes) => (id, Some(PyBytes::new(py, &bytes)), None, None),
                Err(e) => (id, None, Some(kind(&e)), Some(e.to_string())),
            })
            .collect())
    }

    /// Withdraws tasks: those no host took yet never run, the others' outcomes are
    /// dropped.
    fn withdraw(&self, py: Python<'_>, ids: Vec<u64>) {
        py.detach(|| self.pool.withdraw(&ids));
    }
}

/// The worker-host side: checked tasks taken in batches, outcomes reported by token.
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct ClusterHost {
    host: HandedHost,
}

#[pymethods]
impl ClusterHost {
    // Python's keyword arguments, one per option.
    #[allow(clippy::too_many_arguments)]
    #[new]
    #[pyo3(signature = (url, pool, key = None, processes = 1, prefetch = None,
                        lease = None, grace = None))]
    fn new(
        py: Python<'_>,
        url: &str,
        pool: &str,
        key: Option<Vec<u8>>,
        processes: usize,
        prefetch: Option<usize>,
        lease: Option<f64>,
        grace: Option<f64>,
    ) -> PyResult<ClusterHost> {
        let mut opts = ServeOptions::new(url, pool).processes(processes);
        if let Some(k) = cluster_key(key)? {
            opts = opts.key(k);
        }
        if let Some(n) = prefetch {
            opts.prefetch = n.max(1);
        }
        let secs = |what: &str, t: f64| {
            Duration::try_from_secs_f64(t)
                .map_err(|_| PyValueError::new_err(format!("{what} {t} is not valid")))
        };
        if let Some(t) = lease {
            opts.lease = secs("lease", t)?.max(Duration::from_millis(100));
        }
        if let Some(t) = grace {
            opts.grace = secs("grace", t)?;
        }
        let host = py
            .detach(|| HandedHost::start(opts))
            .map_err(cluster_error)?;
        Ok(ClusterHost { host })
    }

    /// The host's id.
    #[getter]
    fn id(&self) -> String {
        self.host.id().to_owned()
    }

    /// Up to `max` checked tasks `(token, name, arg)`, waiting up to `timeout`
    /// seconds; `None` once the host stopped.
    #[allow(clippy::type_complexity)]
    fn take<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: f64,
    ) -> PyResult<Option<Vec<(u64, String, Bound<'py, PyBytes>)>>> {
        let until = deadline(Some(timeout))?;
        let got = wait_for(py, until, |slice| {
            Ok(match self.host.take(max, slice) {
                Some(v) if v.is_empty() => None,
                other => Some(other),
            })
        })?;
        Ok(match got {
            None => Some(Vec::new()),
            Some(None) => None,
            Some(Some(v)) => Some(
                v.into_iter()
                    .map(|t| (t.token, t.task, PyBytes::new(py, &t.arg)))
                    .collect(),
            ),
        })
    }

    /// Reports outcomes: `(token, result)` pairs.
    fn finish(&self, py: Python<'_>, outcomes: Vec<(u64, Vec<u8>)>) {
        py.detach(|| {
            for (token, bytes) in outcomes {
                self.host.finish(token, Ok(bytes));
            }
        });
    }

    /// Reports tasks that gave no result: `(token, why)` pairs (their submitters get
    /// a failure carrying `why`).
    fn fail(&self, py: Python<'_>, outcomes: Vec<(u64, String)>) {
        py.detach(|| {
            for (token, why) in outcomes {
                self.host.finish(token, Err(why));
            }
        });
    }

    /// Begins the graceful stop (returns at once; `take` returns `None` once it ended).
    fn stop(&self) {
        self.host.stop();
    }

    /// Waits up to `timeout` seconds for the stop to end; true when it did.
    fn join(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let until = deadline(Some(timeout))?;
        Ok(wait_for(py, until, |slice| Ok(self.host.join(slice).then_some(())))?.is_some())
    }
}
