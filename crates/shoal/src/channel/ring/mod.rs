//! The shared-memory rings under every channel, one flavour per room (crossbeam's
//! `flavors/` habit):
//!
//! * [`mpmc`] — the multi-producer multi-consumer ring of queues: a bounded queue of
//!   byte messages with per-cell sequence numbers (Vyukov's bounded MPMC, extended to
//!   messages that span several consecutive cells claimed in one CAS), with claims
//!   recorded in slots so that a dead process's claims are repaired;
//! * [`spsc`] — the single-producer single-consumer byte ring under each direction of a
//!   `Pipe`: records read in place, no per-message read-modify-write on shared lines.
//!
//! Both live in the same segment layout ([`layout`]), mapped and checked by
//! [`segment`]; both wait through the same spin-then-sleep loop ([`wait`]). The
//! channel endpoint picks the flavour from the segment's tag, through a private enum.
//!
//! This is the raw in-segment state machine of the channel module, and the only part of
//! it allowed `unsafe`: it turns the segment's payload pointer into references to the
//! `#[repr(C)]` structures of [`layout`] and copies bytes in and out of the ring. The
//! byte format is documented in `docs/ring-format.md`.
#![allow(unsafe_code)]

mod bytes;
pub(crate) mod claim;
pub(crate) mod layout;
pub(crate) mod mpmc;
mod segment;
pub(crate) mod spsc;
mod wait;

pub(crate) use bytes::Bytes;
pub(crate) use mpmc::Reservation;
pub(crate) use segment::{Mapped, RingConfig};

/// Why a non-blocking put did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PutFail {
    /// No room; `blocked` is the ring position (of the previous lap) not yet free.
    Full { blocked: u64 },
    /// The ring was closed.
    Closed,
    /// A message streamed in parts holds the ring.
    Streaming,
}

/// Why a non-blocking get found nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GetFail {
    /// Nothing committed at `pos` (a claim may be in progress there).
    Empty { pos: u64 },
    /// Closed and drained.
    Closed,
}

/// A blocking operation's failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WaitFail {
    /// The deadline passed first.
    Timeout,
    /// The ring is closed (and, for gets, drained), or its peer is gone.
    Closed,
}

/// The signed distance from `b` to `a` of two ring positions (monotonic counters
/// compared with wrapping arithmetic).
fn signed(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}
