//! The native pieces of `shoal.Pool`:
//!
//! * `recv_answer`: how a thread waiting for a pool task's result takes the worker's
//!   answer itself, instead of waiting for the pool's supervisor thread to hand it over
//!   (each hand-over between threads costs a wake-up and the GIL). It waits as a pipe's
//!   receive does: on the ring first (a short spin, then a futex), which an answer that
//!   comes within microseconds meets without a sleep; the `poll` + `recv` pair would
//!   sleep on the ring's eventfd every time.
//! * `map_encoded`: a worker's run of one chunk of a `map`, each result pickled as soon
//!   as it is made.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

use crate::pickle::{EncodedList, ListWriter, Received};
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

/// `[func(x) for x in unit]` (with `star`, `[func(*x) for x in unit]`), the results
/// pickled one by one as they come and dropped at once: an `EncodedList`, which is sent
/// as the list it stands for. Against a list of results pickled after the chunk, that
/// saves building, walking and freeing the list, and the results are freed while their
/// memory is still in cache. A result that is not plain data (see `pickle`) makes the
/// rest of the chunk a plain list of objects. An exception raised by `func` is raised
/// here.
#[pyfunction]
pub(crate) fn map_encoded<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    unit: &Bound<'py, PyAny>,
    star: bool,
) -> PyResult<Bound<'py, PyAny>> {
    // The interpreter's own `map` (or `itertools.starmap`) makes the calls: it passes
    // the argument on the interpreter's stack, with no tuple made for it.
    let mapper = if star {
        STARMAP.import(py, "itertools", "starmap")?
    } else {
        MAP.import(py, "builtins", "map")?
    };
    let mut results = mapper.call1((func, unit))?.try_iter()?;
    let mut writer = ListWriter::new();
    while let Some(result) = results.next() {
        let result = result?;
        if !writer.push(&result) {
            let list: Bound<'py, PyList> = EncodedList::new(writer).load(py)?;
            list.append(result)?;
            for result in results {
                list.append(result?)?;
            }
            return Ok(list.into_any());
        }
    }
    Ok(Bound::new(py, EncodedList::new(writer))?.into_any())
}

static MAP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static STARMAP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
