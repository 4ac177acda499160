//! Passing shoal objects to another process as descriptors.
//!
//! Segments, locks, values and channels implement `Serialize` by handing their
//! descriptor to the *handoff* in progress on this thread and writing only its index;
//! `Deserialize` takes the descriptor back by index. The process module runs
//! [`encode`] when it starts a child and ships the descriptors beside the bytes
//! (inherited across `exec`, or as `SCM_RIGHTS`); the child runs [`decode`]. Outside a
//! handoff, serializing such an object is an error: a bare number in a file or on a
//! socket could never become the object again.
//!
//! [`encode`] and [`decode`] are public for programs that carry the descriptors
//! themselves (the Python package pickles shoal objects this way, with the standard
//! library's descriptor passing).
//!
//! # Examples
//! ```
//! use shoal::{handoff, Queue};
//!
//! let q: Queue<u32> = Queue::new()?;
//! let parts = handoff::encode(&q)?;
//! // `parts.fds` would travel by SCM_RIGHTS or inheritance; here they stay in-process.
//! let same: Queue<u32> = handoff::decode(&parts.bytes, parts.fds)?;
//! same.put(7)?;
//! assert_eq!(q.get()?, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::{Cell, RefCell};
use std::os::fd::{BorrowedFd, OwnedFd};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, CodecError};

mod fd;
pub use fd::Fd;

enum Handoff {
    Export(Vec<OwnedFd>),
    Import(Vec<Option<OwnedFd>>),
}

thread_local! {
    static CURRENT: RefCell<Option<Handoff>> = const { RefCell::new(None) };
    /// Whether an export handoff collected descriptors not taken yet: a plain flag, for
    /// [`take_captured`]'s test on every value.
    static EXPORTED: Cell<bool> = const { Cell::new(false) };
}

/// What shoal objects travel through, for the error outside a handoff.
const WHERE_OBJECTS_TRAVEL: &str = "it travels to another process only inside the \
    arguments of a `Process`, of a pool task or of a pool's initializer, to a program \
    started with `shoal::process::Command::pass`, or through `shoal::handoff` with \
    descriptors the program passes itself; messages of a `Queue`, `SimpleQueue`, \
    `JoinableQueue`, pipe `Connection` or `net::Connection` carry bytes only";

/// Bytes plus the descriptors they refer to by index.
#[derive(Debug)]
pub struct Encoded {
    /// The serialized object; shoal objects inside it appear as descriptor indices.
    pub bytes: Vec<u8>,
    /// The descriptors, in index order (duplicates owned by this value).
    pub fds: Vec<OwnedFd>,
}

/// Restores the previous (empty) handoff even if serde panics.
struct Reset;
impl Drop for Reset {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
        EXPORTED.set(false);
    }
}

/// Serializes `value` (bincode), collecting the descriptors of the shoal objects inside
/// it.
///
/// # Errors
/// When `value` cannot be encoded, or a descriptor cannot be duplicated.
///
/// # Examples
/// ```
/// let lock = shoal::Lock::new()?;
/// let parts = shoal::handoff::encode(&lock)?;
/// assert_eq!(parts.fds.len(), 1); // the lock's segment
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Encoded, CodecError> {
    CURRENT.with(|c| *c.borrow_mut() = Some(Handoff::Export(Vec::new())));
    let _reset = Reset;
    let bytes = codec::encode(value)?;
    let fds = match CURRENT.with(|c| c.borrow_mut().take()) {
        Some(Handoff::Export(fds)) => fds,
        _ => Vec::new(),
    };
    Ok(Encoded { bytes, fds })
}

/// Deserializes `bytes`, giving the shoal objects inside it the descriptors `fds`.
/// Descriptors no object claimed are closed.
///
/// # Errors
/// When the bytes do not decode as a `T`, a descriptor is missing, or a descriptor is
/// not the segment the object expects (another kind, another layout version).
///
/// # Examples
/// ```
/// let ev = shoal::Event::new()?;
/// let parts = shoal::handoff::encode(&ev)?;
/// let same: shoal::Event = shoal::handoff::decode(&parts.bytes, parts.fds)?;
/// same.set();
/// assert!(ev.is_set());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, CodecError> {
    CURRENT.with(|c| *c.borrow_mut() = Some(Handoff::Import(fds.into_iter().map(Some).collect())));
    let _reset = Reset;
    codec::decode(bytes)
}

/// Runs `f` (which serializes, many values one after the other) as one handoff: the
/// descriptors of the shoal objects and [`Fd`]s it meets gather until
/// [`take_captured`] takes them, value by value.
pub(crate) fn capturing<R>(f: impl FnOnce() -> R) -> R {
    CURRENT.with(|c| *c.borrow_mut() = Some(Handoff::Export(Vec::new())));
    let _reset = Reset;
    f()
}

/// Inside [`capturing`]: the descriptors met since the last call (none allocates
/// nothing).
#[inline]
pub(crate) fn take_captured() -> Vec<OwnedFd> {
    // Tested inline on every value: most carry no descriptor.
    if !EXPORTED.get() {
        return Vec::new();
    }
    take_exported()
}

/// The slow path of [`take_captured`]: some value exported descriptors.
fn take_exported() -> Vec<OwnedFd> {
    EXPORTED.set(false);
    CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(Handoff::Export(fds)) if !fds.is_empty() => std::mem::take(fds),
        _ => Vec::new(),
    })
}

/// Runs `f` (which deserializes) with `fds` as the descriptors its shoal objects and
/// [`Fd`]s refer to by index.
pub(crate) fn importing<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    CURRENT.with(|c| *c.borrow_mut() = Some(Handoff::Import(fds.into_iter().map(Some).collect())));
    let _reset = Reset;
    f()
}

/// Called by `Serialize` impls: registers a duplicate of `fd` and returns its index.
/// `what` names the object for the error outside a handoff.
pub(crate) fn export_fd(fd: BorrowedFd<'_>, what: &str) -> Result<u32, String> {
    CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(Handoff::Export(fds)) => {
            let dup = fd
                .try_clone_to_owned()
                .map_err(|e| format!("could not duplicate the descriptor of a {what}: {e}"))?;
            fds.push(dup);
            EXPORTED.set(true);
            Ok((fds.len() - 1) as u32)
        }
        _ => {
            let refusal =
                format!("a shoal {what} cannot be sent as a message: {WHERE_OBJECTS_TRAVEL}");
            codec::record_refusal(refusal.clone());
            Err(refusal)
        }
    })
}

/// Called by `Deserialize` impls: takes the descriptor with this index.
pub(crate) fn import_fd(index: u32) -> Result<OwnedFd, String> {
    CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(Handoff::Import(fds)) => fds
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or_else(|| {
                format!("descriptor #{index} was not sent with the message, or was used twice")
            }),
        _ => Err(format!(
            "a shoal object cannot be received from a message: {WHERE_OBJECTS_TRAVEL}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SharedMemory;

    #[test]
    fn objects_travel_as_descriptors() {
        let a = SharedMemory::new(16).unwrap();
        a.write(0, b"abc").unwrap();
        let enc = encode(&(5u32, a.clone(), "x".to_owned())).unwrap();
        assert_eq!(enc.fds.len(), 1);
        let (n, b, s): (u32, SharedMemory, String) = decode(&enc.bytes, enc.fds).unwrap();
        assert_eq!((n, s.as_str()), (5, "x"));
        let mut buf = [0u8; 3];
        b.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"abc");
        b.write(0, b"z").unwrap();
        a.read(0, &mut buf[..1]).unwrap();
        assert_eq!(buf[0], b'z');
    }

    #[test]
    fn missing_descriptor_is_an_error() {
        let a = SharedMemory::new(16).unwrap();
        let enc = encode(&a).unwrap();
        let err = decode::<SharedMemory>(&enc.bytes, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("descriptor #0"), "{err}");
    }
}
