//! Typed values and arrays in shared memory, each with the lock that guards it.
//!
//! [`Value`] and [`Array`] sit above both [`crate::shm`] (their segment) and
//! [`crate::sync`] (their lock), so that neither of those depends on the other's
//! users. A value or array can be created under a name and opened by name from an
//! unrelated process; [`crate::shm`] describes the checks made on opening and what a
//! truncated named segment does.
//!
//! # Examples
//! ```
//! use shoal::shared::Value;
//!
//! let balance = Value::new(100i64)?;
//! *balance.lock().unwrap() += 5; // panics on a dead holder, as `Mutex::lock().unwrap()`
//! assert_eq!(balance.load(), 105);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod array;
mod typed_wire;
mod value;

pub use array::{Array, ArrayGuard};
pub use value::{Value, ValueGuard};
