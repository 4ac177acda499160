//! `shoal._shoal`: the Rust half of the Python package `shoal`.
//!
//! Each class wraps one object of the Rust core and speaks raw bytes; the pure-Python
//! layer (`crates/shoal-py/python/shoal`) adds pickling and `multiprocessing`'s names,
//! signatures and exceptions. Blocking calls release the GIL and wait in slices of at
//! most 50 ms, checking for signals between slices, so Ctrl-C interrupts them.
//!
//! Results that `multiprocessing` reports with exceptions of its own modules
//! (`queue.Empty`, `queue.Full`) come back as `None`/`False` here; the Python layer
//! raises them.

mod blocking;
mod cluster;
mod collections;
mod handoff;
mod net;
mod pickle;
mod pipe;
mod pool;
mod progress;
mod queue;
mod shm;
mod sync;
mod wait;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _shoal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<queue::RawQueue>()?;
    m.add_class::<collections::SharedDict>()?;
    m.add_function(wrap_pyfunction!(collections::msgpack_dumps, m)?)?;
    m.add_function(wrap_pyfunction!(collections::msgpack_loads, m)?)?;
    m.add_class::<collections::SharedList>()?;
    m.add_class::<queue::RawReadiness>()?;
    m.add_class::<pipe::PipeEnd>()?;
    m.add_function(wrap_pyfunction!(pipe::pipe, m)?)?;
    m.add_function(wrap_pyfunction!(pool::recv_answer, m)?)?;
    m.add_function(wrap_pyfunction!(pool::map_encoded, m)?)?;
    m.add_class::<pickle::EncodedList>()?;
    m.add_class::<sync::RawLock>()?;
    m.add_class::<sync::RawRLock>()?;
    m.add_class::<sync::RawSemaphore>()?;
    m.add_class::<sync::RawEvent>()?;
    m.add_class::<sync::RawCondition>()?;
    m.add_class::<sync::RawBarrier>()?;
    m.add_class::<shm::Segment>()?;
    m.add_function(wrap_pyfunction!(shm::collect_dead, m)?)?;
    m.add_class::<net::RawListener>()?;
    m.add_class::<net::RawNetConnection>()?;
    m.add_function(wrap_pyfunction!(net::connect, m)?)?;
    m.add_function(wrap_pyfunction!(wait::wait, m)?)?;
    m.add_class::<progress::Progress>()?;
    m.add_class::<cluster::ClusterPool>()?;
    m.add_class::<cluster::ClusterHost>()?;
    m.add("SLICE_SECONDS", blocking::SLICE.as_secs_f64())?;
    Ok(())
}
