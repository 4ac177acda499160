//! Errors of the signalling primitives: [`Semaphore`](crate::sync::Semaphore),
//! [`BoundedSemaphore`](crate::sync::BoundedSemaphore), [`Event`](crate::sync::Event)
//! and [`Barrier`](crate::sync::Barrier).
#![deny(unsafe_code)]

use std::fmt;

use crate::shm::ShmError;

/// A signalling primitive could not be created, or a descriptor received from another
/// process could not become one.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrimitiveError {
    /// The shared-memory segment could not be created, mapped or validated.
    Shm {
        /// The primitive being created or received ("semaphore", "barrier"...).
        primitive: &'static str,
        /// The underlying error.
        source: ShmError,
    },
    /// The segment received holds another primitive than the one asked for.
    WrongPrimitive {
        /// The primitive asked for.
        expected: &'static str,
        /// What the segment's tag says it holds.
        found: String,
    },
    /// The segment received is too small for the primitive asked for.
    TooSmall {
        /// The primitive asked for.
        primitive: &'static str,
        /// Payload bytes in the segment.
        len: usize,
        /// Payload bytes the primitive needs.
        needed: usize,
    },
    /// A semaphore's initial value above the largest count a semaphore holds.
    ValueTooLarge {
        /// The value asked for.
        value: u32,
        /// The largest value allowed.
        max: u32,
    },
    /// A barrier for zero parties, or for more than a barrier can count.
    InvalidParties {
        /// The number of parties asked for.
        parties: usize,
    },
}

/// `name` with its indefinite article: "a barrier", "an event".
pub(crate) fn a(name: &str) -> String {
    let vowel = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

impl fmt::Display for PrimitiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrimitiveError::Shm { primitive, source } => {
                write!(
                    f,
                    "could not set up the shared memory of {}: {source}",
                    a(primitive)
                )
            }
            PrimitiveError::WrongPrimitive { expected, found } => write!(
                f,
                "the shared segment received holds {found}, not {}",
                a(expected)
            ),
            PrimitiveError::TooSmall {
                primitive,
                len,
                needed,
            } => write!(
                f,
                "the shared segment received has {len} payload bytes, but {} needs {needed}",
                a(primitive)
            ),
            PrimitiveError::ValueTooLarge { value, max } => write!(
                f,
                "a semaphore cannot start at {value}: its count is limited to {max}"
            ),
            PrimitiveError::InvalidParties { parties } => write!(
                f,
                "a barrier cannot be made for {parties} parties: it needs 1 to {} parties",
                u32::MAX
            ),
        }
    }
}

impl std::error::Error for PrimitiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PrimitiveError::Shm { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A semaphore release was refused; the count is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A [`BoundedSemaphore`](crate::sync::BoundedSemaphore) would have gone above its
    /// initial value (Python raises `ValueError` here).
    OverReleased {
        /// The initial value, which the count may not exceed.
        limit: u32,
    },
    /// A [`Semaphore`](crate::sync::Semaphore) already holds the most permits it can count.
    Overflow {
        /// The largest count.
        max: u32,
    },
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseError::OverReleased { limit } => write!(
                f,
                "the bounded semaphore was released too many times: its value may not exceed {limit}"
            ),
            ReleaseError::Overflow { max } => write!(
                f,
                "the semaphore cannot be released: it already holds the largest count, {max}"
            ),
        }
    }
}

impl std::error::Error for ReleaseError {}

/// Why [`Barrier::wait`](crate::sync::Barrier::wait) did not let the caller through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: it was aborted, reset while this caller waited, or another
    /// waiter timed out. Every later wait fails the same way until
    /// [`reset`](crate::sync::Barrier::reset).
    Broken,
    /// This caller's timeout expired; the barrier is now broken for everyone else.
    Timeout,
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BarrierError::Broken => "the barrier is broken: it was aborted or a waiter timed out",
            BarrierError::Timeout => {
                "timed out waiting at the barrier, which is now broken for every party"
            }
        })
    }
}

impl std::error::Error for BarrierError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lower_case_sentences() {
        let msgs = [
            PrimitiveError::WrongPrimitive {
                expected: "barrier",
                found: "an event".to_owned(),
            }
            .to_string(),
            PrimitiveError::InvalidParties { parties: 0 }.to_string(),
            ReleaseError::OverReleased { limit: 2 }.to_string(),
            BarrierError::Broken.to_string(),
            BarrierError::Timeout.to_string(),
        ];
        for m in msgs {
            assert!(m.chars().next().unwrap().is_lowercase(), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
        assert_eq!(
            BarrierError::Broken.to_string(),
            "the barrier is broken: it was aborted or a waiter timed out"
        );
    }
}
