//! The robust primitives: `Lock`, `RLock`, `Semaphore`/`BoundedSemaphore`, `Event`,
//! `Condition` and `Barrier`, acquired and released Python style (no guards: a guard
//! is given up with `mem::forget` and the release is explicit).
//!
//! Lock acquisitions return 0 (not acquired), 1 (acquired) or 2 (acquired from a
//! holder that died: what the lock protected may be half-updated); the Python layer
//! turns 2 into `OwnerDiedWarning` or `OwnerDiedError`.

use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shoal::sync::{BarrierError, TryLockError};
use shoal::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};

use crate::blocking::{create_failed, deadline, wait_for};
use crate::handoff::{rebuild, Exported};

const NOT_ACQUIRED: u8 = 0;
const ACQUIRED: u8 = 1;
const OWNER_DIED: u8 = 2;

/// Gives up a guard (the lock stays held) and reports how it was taken.
fn tried<G>(r: Result<G, TryLockError<G>>) -> u8 {
    match r {
        Ok(g) => {
            std::mem::forget(g);
            ACQUIRED
        }
        Err(TryLockError::OwnerDied(died)) => {
            std::mem::forget(died.into_inner());
            OWNER_DIED
        }
        Err(_) => NOT_ACQUIRED,
    }
}

/// Acquires with Python's `(block, timeout)` through `try_once` (no wait) and
/// `timed(slice)`.
fn acquire_with(
    py: Python<'_>,
    block: bool,
    timeout: Option<f64>,
    try_once: impl Fn() -> u8,
    timed: impl Fn(Duration) -> u8 + Send + Sync,
) -> PyResult<u8> {
    let first = try_once();
    if first != NOT_ACQUIRED || !block {
        return Ok(first);
    }
    let deadline = deadline(timeout)?;
    Ok(wait_for(py, deadline, |slice| {
        let r = timed(slice);
        Ok((r != NOT_ACQUIRED).then_some(r))
    })?
    .unwrap_or(NOT_ACQUIRED))
}

/// A robust lock (the core of `shoal.Lock`).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawLock {
    pub(crate) lock: Lock,
    exported: Exported,
}

#[pymethods]
impl RawLock {
    #[new]
    fn new() -> PyResult<RawLock> {
        Ok(RawLock {
            lock: Lock::new().map_err(|e| create_failed(&e))?,
            exported: Exported::default(),
        })
    }

    /// 0, 1 or 2 (see the module doc).
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<u8> {
        let l = &self.lock;
        acquire_with(
            py,
            block,
            timeout,
            || tried(l.try_acquire()),
            |t| tried(l.acquire_timeout(t)),
        )
    }

    /// Releases the lock held by the calling thread.
    fn release(&self) -> PyResult<()> {
        self.lock
            .release()
            .map_err(|_| PyValueError::new_err("semaphore or lock released too many times"))
    }

    /// Whether some live thread holds the lock.
    fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// Whether the calling thread holds the lock.
    fn is_mine(&self) -> bool {
        self.lock.is_held()
    }

    /// `(bytes, [fd, …])` for pickling.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        self.exported.parts(py, &self.lock)
    }

    /// The object again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(Self {
            lock: rebuild::<Lock>(data, fds)?,
            exported: Exported::default(),
        })
    }
}

/// A robust recursive lock (the core of `shoal.RLock`).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawRLock {
    pub(crate) lock: RLock,
    exported: Exported,
}

#[pymethods]
impl RawRLock {
    #[new]
    fn new() -> PyResult<RawRLock> {
        Ok(RawRLock {
            lock: RLock::new().map_err(|e| create_failed(&e))?,
            exported: Exported::default(),
        })
    }

    /// 0, 1 or 2 (see the module doc).
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<u8> {
        let l = &self.lock;
        acquire_with(
            py,
            block,
            timeout,
            || tried(l.try_acquire()),
            |t| tried(l.acquire_timeout(t)),
        )
    }

    /// Releases one level held by the calling thread.
    fn release(&self) -> PyResult<()> {
        self.lock
            .release()
            .map_err(|_| PyRuntimeError::new_err("cannot release un-acquired lock"))
    }

    /// Levels held by the calling thread (0: not held by it).
    fn depth(&self) -> u32 {
        self.lock.depth()
    }

    /// Whether some live thread holds the lock.
    fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// `(bytes, [fd, …])` for pickling.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        self.exported.parts(py, &self.lock)
    }

    /// The object again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(Self {
            lock: rebuild::<RLock>(data, fds)?,
            exported: Exported::default(),
        })
    }
}

enum Sem {
    Plain(Semaphore),
    Bounded(BoundedSemaphore),
}

impl serde::Serialize for Sem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Sem::Plain(p) => (0u8, Some(p), None::<&BoundedSemaphore>).serialize(s),
            Sem::Bounded(b) => (1u8, None::<&Semaphore>, Some(b)).serialize(s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Sem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Sem, D::Error> {
        let (_, p, b): (u8, Option<Semaphore>, Option<BoundedSemaphore>) =
            serde::Deserialize::deserialize(d)?;
        match (p, b) {
            (Some(p), None) => Ok(Sem::Plain(p)),
            (None, Some(b)) => Ok(Sem::Bounded(b)),
            _ => Err(serde::de::Error::custom(
                "a semaphore is either plain or bounded",
            )),
        }
    }
}

/// A semaphore, bounded or not (the core of `shoal.Semaphore` and
/// `shoal.BoundedSemaphore`).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawSemaphore {
    sem: Sem,
    exported: Exported,
}

#[pymethods]
impl RawSemaphore {
    #[new]
    #[pyo3(signature = (value = 1, bounded = false))]
    fn new(value: i64, bounded: bool) -> PyResult<RawSemaphore> {
        let value = u32::try_from(value)
            .map_err(|_| PyValueError::new_err("semaphore initial value must be >= 0"))?;
        let sem = if bounded {
            Sem::Bounded(BoundedSemaphore::new(value).map_err(|e| create_failed(&e))?)
        } else {
            Sem::Plain(Semaphore::new(value).map_err(|e| create_failed(&e))?)
        };
        Ok(RawSemaphore {
            sem,
            exported: Exported::default(),
        })
    }

    /// Whether a unit was taken.
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let took = |g: Option<()>| u8::from(g.is_some());
        let r = match &self.sem {
            Sem::Plain(s) => acquire_with(
                py,
                block,
                timeout,
                || took(s.try_acquire().map(|g| g.forget())),
                |t| took(s.acquire_timeout(t).map(|g| g.forget())),
            )?,
            Sem::Bounded(s) => acquire_with(
                py,
                block,
                timeout,
                || took(s.try_acquire().map(|g| g.forget())),
                |t| took(s.acquire_timeout(t).map(|g| g.forget())),
            )?,
        };
        Ok(r == ACQUIRED)
    }

    /// Gives a unit back; `ValueError` past a bounded semaphore's initial value.
    fn release(&self) -> PyResult<()> {
        let r = match &self.sem {
            Sem::Plain(s) => s.release().map_err(|e| e.to_string()),
            Sem::Bounded(s) => s.release().map_err(|e| e.to_string()),
        };
        r.map_err(|_| PyValueError::new_err("semaphore or lock released too many times"))
    }

    /// The current value.
    fn get_value(&self) -> u32 {
        match &self.sem {
            Sem::Plain(s) => s.value(),
            Sem::Bounded(s) => s.value(),
        }
    }

    /// Whether the semaphore is bounded.
    #[getter]
    fn bounded(&self) -> bool {
        matches!(self.sem, Sem::Bounded(_))
    }

    /// `(bytes, [fd, …])` for pickling.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        self.exported.parts(py, &self.sem)
    }

    /// The object again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(Self {
            sem: rebuild::<Sem>(data, fds)?,
            exported: Exported::default(),
        })
    }
}

/// An event (the core of `shoal.Event`).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawEvent {
    event: Event,
    exported: Exported,
}

#[pymethods]
impl RawEvent {
    #[new]
    fn new() -> PyResult<RawEvent> {
        Ok(RawEvent {
            event: Event::new().map_err(|e| create_failed(&e))?,
            exported: Exported::default(),
        })
    }

    fn set(&self) {
        self.event.set();
    }

    fn clear(&self) {
        self.event.clear();
    }

    fn is_set(&self) -> bool {
        self.event.is_set()
    }

    /// Whether the event was set within `timeout` seconds (`None`: no limit).
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.event.is_set() {
            return Ok(true);
        }
        let e = &self.event;
        let deadline = deadline(timeout)?;
        Ok(wait_for(py, deadline, |slice| {
            Ok(e.wait_timeout(slice).then_some(()))
        })?
        .is_some())
    }

    /// `(bytes, [fd, …])` for pickling.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        self.exported.parts(py, &self.event)
    }

    /// The object again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(Self {
            event: rebuild::<Event>(data, fds)?,
            exported: Exported::default(),
        })
    }
}

/// A condition variable over a robust lock (the core of `shoal.Condition`).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawCondition {
    cond: Condition,
    exported: Exported,
}

#[pymethods]
impl RawCondition {
    /// A condition over `lock` (a `RawLock` or `RawRLock`), or over a new `RLock`.
    #[new]
    #[pyo3(signature = (lock = None))]
    fn new(lock: Option<&Bound<'_, PyAny>>) -> PyResult<RawCondition> {
        let cond = match lock {
            None => Condition::new(),
            Some(l) => {
                if let Ok(l) = l.cast::<RawLock>() {
                    Condition::with_lock(l.get().lock.clone())
                } else if let Ok(r) = l.cast::<RawRLock>() {
                    Condition::with_rlock(r.get().lock.clone())
                } else {
                    return Err(PyValueError::new_err(
                        "a condition's lock must be a shoal Lock or RLock",
                    ));
                }
            }
        }
        .map_err(|e| create_failed(&e))?;
        Ok(RawCondition {
            cond,
            exported: Exported::default(),
        })
    }

    /// 0, 1 or 2 (see the module doc): takes the condition's lock.
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<u8> {
        let c = &self.cond;
        acquire_with(
            py,
            block,
            timeout,
            || tried(c.acquire_timeout(Duration::ZERO)),
            |t| tried(c.acquire_timeout(t)),
        )
    }

    /// Waits for a notification with the lock released; True when notified, False
    /// after `timeout` seconds; the lock is held again either way. A holder that died
    /// meanwhile is reported as 2 in the second item.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(bool, u8)> {
        // One wait for the whole timeout: waiting in slices would lose a notification
        // that lands between a slice's end and its taking the lock back.
        let t = match timeout {
            None => None,
            Some(t) => Some(
                Duration::try_from_secs_f64(t.max(0.0))
                    .map_err(|e| PyValueError::new_err(e.to_string()))?,
            ),
        };
        match py.detach(|| self.cond.wait_held(t)) {
            Ok(notified) => Ok((notified, ACQUIRED)),
            Err(Some(_died)) => Ok((true, OWNER_DIED)),
            Err(None) => Err(PyRuntimeError::new_err("cannot wait on un-acquired lock")),
        }
    }

    /// Wakes up to `n` waiters.
    #[pyo3(signature = (n = 1))]
    fn notify(&self, n: u32) {
        self.cond.notify(n);
    }

    fn notify_all(&self) {
        self.cond.notify_all();
    }

    /// `(bytes, [fd, …])` for pickling.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        self.exported.parts(py, &self.cond)
    }

    /// The object again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(Self {
            cond: rebuild::<Condition>(data, fds)?,
            exported: Exported::default(),
        })
    }
}

/// A barrier (the core of `shoal.Barrier`).
#[pyclass(module = "shoal._shoal", frozen)]
pub(crate) struct RawBarrier {
    barrier: Barrier,
    exported: Exported,
}

#[pymethods]
impl RawBarrier {
    #[new]
    fn new(parties: usize) -> PyResult<RawBarrier> {
        if parties == 0 {
            return Err(PyValueError::new_err("parties must be > 0"));
        }
        Ok(RawBarrier {
            barrier: Barrier::new(parties).map_err(|e| create_failed(&e))?,
            exported: Exported::default(),
        })
    }

    /// This caller's place (0 for the first to arrive); raises `RuntimeError("broken")`
    /// (the Python layer turns it into `BrokenBarrierError`).
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(usize, bool)> {
        let b = &self.barrier;
        let t = match timeout {
            None => None,
            Some(t) => Some(
                Duration::try_from_secs_f64(t.max(0.0))
                    .map_err(|e| PyValueError::new_err(e.to_string()))?,
            ),
        };
        let r = py.detach(|| match t {
            None => b.wait(),
            Some(t) => b.wait_timeout(t),
        });
        match r {
            Ok(w) => Ok((w.index(), w.is_leader())),
            Err(BarrierError::Broken) | Err(BarrierError::Timeout) | Err(_) => {
                Err(PyRuntimeError::new_err("broken"))
            }
        }
    }

    fn abort(&self) {
        self.barrier.abort();
    }

    fn reset(&self) {
        self.barrier.reset();
    }

    #[getter]
    fn parties(&self) -> usize {
        self.barrier.parties()
    }

    #[getter]
    fn n_waiting(&self) -> usize {
        self.barrier.n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.barrier.is_broken()
    }

    /// `(bytes, [fd, …])` for pickling.
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        self.exported.parts(py, &self.barrier)
    }

    /// The object again from `_parts()` (taking ownership of `fds`).
    #[staticmethod]
    fn _from_parts(data: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(Self {
            barrier: rebuild::<Barrier>(data, fds)?,
            exported: Exported::default(),
        })
    }
}
