//! What every channel handle shares: a ring of one of the two flavours, a codec, and
//! the typed and raw put/get operations built on them; plus the handoff of a ring to
//! another process.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::ring::{mpmc, spsc, Bytes, Mapped, RingConfig, WaitFail};
use crate::channel::{CreateError, GetError, PutError, ReadSlot, WriteSlot, TAG_PIPE};
use crate::codec::Codec;
use crate::handoff;
use crate::shm::{Segment, SegmentKind};
use crate::sys::Deadline;

/// How long an operation may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Do not wait: `Full` / `Empty` when it cannot happen now.
    No,
    /// Wait until the deadline: `Timeout` after it.
    Until(Deadline),
}

impl Wait {
    pub(crate) fn forever() -> Wait {
        Wait::Until(Deadline::NEVER)
    }

    pub(crate) fn timeout(t: Duration) -> Wait {
        Wait::Until(Deadline::after(t))
    }

    fn deadline(self) -> Deadline {
        match self {
            Wait::No => Deadline::after(Duration::ZERO),
            Wait::Until(d) => d,
        }
    }

    fn put_error<T>(self, e: WaitFail, msg: T) -> PutError<T> {
        match (e, self) {
            (WaitFail::Closed, _) => PutError::Closed(msg),
            (WaitFail::Timeout, Wait::No) => PutError::Full(msg),
            (WaitFail::Timeout, Wait::Until(_)) => PutError::Timeout(msg),
        }
    }

    fn get_error(self, e: WaitFail) -> GetError {
        match (e, self) {
            (WaitFail::Closed, _) => GetError::Closed,
            (WaitFail::Timeout, Wait::No) => GetError::Empty,
            (WaitFail::Timeout, Wait::Until(_)) => GetError::Timeout,
        }
    }
}

thread_local! {
    /// Encoding buffer reused by typed puts, so that a put allocates nothing.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch buffers above this size are freed after use instead of kept.
const SCRATCH_KEEP: usize = 1 << 20;

/// A ring and the codec of its typed messages.
#[derive(Debug)]
pub(crate) struct Endpoint {
    ring: Flavour,
    pub(crate) codec: Codec,
}

/// The flavour of ring under a channel, fixed by the segment's tag: the multi-producer
/// ring of queues, or the single-producer ring of each direction of a pipe.
#[derive(Debug)]
enum Flavour {
    /// `Queue`, `JoinableQueue`, `SimpleQueue`.
    Mpmc(mpmc::Ring),
    /// One direction of a `Pipe`.
    Spsc(spsc::Ring),
}

/// Runs `$body` with `$r` bound to the ring of whichever flavour `$flavour` holds (the
/// two rings offer the same operations under the same names).
macro_rules! each {
    ($flavour:expr, $r:ident => $body:expr) => {
        match $flavour {
            Flavour::Mpmc($r) => $body,
            Flavour::Spsc($r) => $body,
        }
    };
}

impl Flavour {
    /// Creates a ring of the flavour that channel type `cfg.tag` uses.
    fn create(cfg: RingConfig) -> Result<Flavour, crate::shm::ShmError> {
        if cfg.tag == TAG_PIPE {
            spsc::Ring::create(cfg).map(Flavour::Spsc)
        } else {
            mpmc::Ring::create(cfg).map(Flavour::Mpmc)
        }
    }

    /// Maps a ring received from another process, of the flavour its tag says.
    fn from_parts(
        seg: Arc<Segment>,
        event: std::os::fd::OwnedFd,
        tag: u32,
    ) -> Result<Flavour, crate::shm::ShmError> {
        if tag == TAG_PIPE {
            spsc::Ring::from_parts(seg, event, tag).map(Flavour::Spsc)
        } else {
            mpmc::Ring::from_parts(seg, event, tag).map(Flavour::Mpmc)
        }
    }
}

impl Endpoint {
    pub(crate) fn create(cfg: RingConfig, codec: Codec) -> Result<Arc<Endpoint>, CreateError> {
        let ring = Flavour::create(RingConfig {
            codec: codec.id(),
            ..cfg
        })?;
        Ok(Arc::new(Endpoint { ring, codec }))
    }

    /// The mapped segment: what every flavour shares (closing, readiness, counters).
    pub(crate) fn ring(&self) -> &Mapped {
        each!(&self.ring, r => r.mapped())
    }

    /// Largest message carried in one piece; longer ones are streamed in parts.
    pub(crate) fn max_inline(&self) -> usize {
        each!(&self.ring, r => r.max_inline())
    }

    /// Payload bytes the ring holds when full of large messages.
    pub(crate) fn capacity_bytes(&self) -> usize {
        each!(&self.ring, r => r.capacity_bytes())
    }

    /// Messages in the ring, a snapshot.
    pub(crate) fn len(&self) -> usize {
        each!(&self.ring, r => r.len())
    }

    /// Cells in use (claimed and not yet released).
    pub(crate) fn used_cells(&self) -> u64 {
        each!(&self.ring, r => r.used_cells())
    }

    /// Whether a get would find something now (or the ring is closed and drained).
    pub(crate) fn readable(&self) -> bool {
        each!(&self.ring, r => r.readable())
    }

    /// Waits until [`readable`](Self::readable) or the deadline; `give_up` is asked now
    /// and then while nothing comes.
    pub(crate) fn wait_readable(&self, deadline: Deadline, give_up: impl Fn() -> bool) -> bool {
        each!(&self.ring, r => r.wait_readable(deadline, give_up))
    }

    /// Records the calling process as a sender (`true`) or receiver (pipes; queues do
    /// not track their ends).
    pub(crate) fn note_end(&self, sender: bool) {
        if let Flavour::Spsc(r) = &self.ring {
            r.note_end(sender);
        }
    }

    /// Whether every process recorded at that end is dead (pipes; always `false` for
    /// queues, whose ends are not tracked).
    pub(crate) fn end_dead(&self, sender: bool) -> bool {
        match &self.ring {
            Flavour::Spsc(r) => r.end_dead(sender),
            Flavour::Mpmc(_) => false,
        }
    }

    /// Whether the death of every process at the other end counts as end of stream
    /// through this handle (pipes).
    pub(crate) fn set_death_ends(&self, on: bool) {
        if let Flavour::Spsc(r) = &self.ring {
            r.set_death_ends(on);
        }
    }

    /// Encodes and puts `msg`.
    pub(crate) fn put_value<T: Serialize>(&self, msg: T, wait: Wait) -> Result<(), PutError<T>> {
        SCRATCH.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            if let Err(e) = self.codec.encode_into(&msg, &mut buf) {
                return Err(PutError::Encode(msg, e));
            }
            let r = self.put_raw(&buf, wait.deadline());
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            r.map_err(|e| wait.put_error(e, msg))
        })
    }

    /// Encodes `msgs` and puts them, as few claims as possible. On failure the messages
    /// not put come back, in order.
    pub(crate) fn put_values<T: Serialize>(
        &self,
        msgs: Vec<T>,
        wait: Wait,
    ) -> Result<(), PutError<Vec<T>>> {
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            if let Err(e) = self.codec.encode_into(m, &mut bytes) {
                let _ = i;
                return Err(PutError::Encode(msgs, e));
            }
            ends.push(bytes.len());
        }
        let mut start = 0;
        let slices: Vec<&[u8]> = ends
            .iter()
            .map(|&end| {
                let s = &bytes[start..end];
                start = end;
                s
            })
            .collect();
        match each!(&self.ring, r => r.put_batch(&slices, wait.deadline())) {
            Ok(()) => Ok(()),
            Err((done, e)) => {
                let mut msgs = msgs;
                let rest = msgs.split_off(done);
                Err(wait.put_error(e, rest))
            }
        }
    }

    /// Reserves room for a `len`-byte message written in place.
    pub(crate) fn reserve(&self, len: usize, wait: Wait) -> Result<WriteSlot<'_>, PutError<()>> {
        let Flavour::Mpmc(ring) = &self.ring else {
            // Only queues reserve in place (a pipe's `Connection` has no such call).
            return Err(PutError::TooLarge(()));
        };
        if len > ring.max_inline() {
            return Err(PutError::TooLarge(()));
        }
        ring.reserve(len, wait.deadline())
            .map(WriteSlot::new)
            .map_err(|e| wait.put_error(e, ()))
    }

    /// Puts raw bytes, copied straight into the ring's cells.
    pub(crate) fn put_bytes(&self, data: &[u8], wait: Wait) -> Result<(), PutError<()>> {
        self.put_raw(data, wait.deadline())
            .map_err(|e| wait.put_error(e, ()))
    }

    /// Takes and decodes one message (in place when it sits in one cell).
    pub(crate) fn get_value<T: DeserializeOwned>(&self, wait: Wait) -> Result<T, GetError> {
        let codec = self.codec;
        let decode = |b: Bytes<'_>| -> Result<T, GetError> {
            let fail = |error, bytes| GetError::Decode { error, bytes };
            match b.as_slice() {
                Some(s) => codec.decode(s).map_err(|e| fail(e, s.to_vec())),
                None => {
                    let v = b.to_vec();
                    codec.decode(&v).map_err(|e| fail(e, v))
                }
            }
        };
        match each!(&self.ring, r => r.get(wait.deadline(), decode)) {
            Ok(r) => r,
            Err(e) => Err(wait.get_error(e)),
        }
    }

    /// Takes one message into `out` (cleared first); returns its length.
    pub(crate) fn get_bytes_into(&self, out: &mut Vec<u8>, wait: Wait) -> Result<usize, GetError> {
        out.clear();
        let take = |b: Bytes<'_>| {
            b.append_to(out);
            b.len()
        };
        each!(&self.ring, r => r.get(wait.deadline(), take)).map_err(|e| wait.get_error(e))
    }

    /// Takes one message into `out`, which must be large enough; returns its length, or
    /// `Err(Ok(len))`... see `Connection::recv_bytes_into`.
    pub(crate) fn get_bytes_into_slice(
        &self,
        out: &mut [u8],
        wait: Wait,
    ) -> Result<Result<usize, Vec<u8>>, GetError> {
        let take = |b: Bytes<'_>| {
            if b.len() <= out.len() {
                b.copy_to(out);
                Ok(b.len())
            } else {
                Err(b.to_vec())
            }
        };
        each!(&self.ring, r => r.get(wait.deadline(), take)).map_err(|e| wait.get_error(e))
    }

    /// Takes up to `max` messages: waits for the first, then takes those already there,
    /// claiming consecutive messages together.
    pub(crate) fn get_values<T: DeserializeOwned>(
        &self,
        max: usize,
        wait: Wait,
    ) -> Result<Vec<T>, GetError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let mut failed = None;
        let codec = self.codec;
        self.get_batch(max, wait.deadline(), |b| {
            decode_into(codec, b, &mut out, &mut failed)
        })
        .map_err(|e| wait.get_error(e))?;
        while out.len() < max && failed.is_none() {
            let want = max - out.len();
            let r = self.get_batch(want, Wait::No.deadline(), |b| {
                decode_into(codec, b, &mut out, &mut failed)
            });
            if r.is_err() {
                break;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Takes up to `max` raw messages, as [`get_values`](Self::get_values).
    pub(crate) fn get_bytes_many(&self, max: usize, wait: Wait) -> Result<Vec<Vec<u8>>, GetError> {
        let mut out = Vec::new();
        self.take_batches(max, wait, |b| out.push(b.to_vec()))?;
        Ok(out)
    }

    /// Takes up to `max` messages (waiting for the first, then taking those already
    /// there, in as few claims as possible), handing each to `each`; returns how many.
    fn take_batches(
        &self,
        max: usize,
        wait: Wait,
        mut each: impl FnMut(Bytes<'_>),
    ) -> Result<usize, GetError> {
        if max == 0 {
            return Ok(0);
        }
        let mut n = self
            .get_batch(max, wait.deadline(), &mut each)
            .map_err(|e| wait.get_error(e))?;
        while n < max {
            match self.get_batch(max - n, Wait::No.deadline(), &mut each) {
                Ok(k) => n += k,
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// Takes up to `max` raw messages, handing each to `f` as one slice (gathered into
    /// a reused buffer when it spans several cells).
    pub(crate) fn get_bytes_with(
        &self,
        max: usize,
        wait: Wait,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, GetError> {
        let mut scratch = Vec::new();
        self.take_batches(max, wait, |b| match b.as_slice() {
            Some(s) => f(s),
            None => {
                scratch.clear();
                b.append_to(&mut scratch);
                f(&scratch)
            }
        })
    }

    /// Takes one message and hands it to `f` where it lies in the ring.
    pub(crate) fn get_in_place<R>(
        &self,
        wait: Wait,
        f: impl FnOnce(ReadSlot<'_>) -> R,
    ) -> Result<R, GetError> {
        let take = |b: Bytes<'_>| f(ReadSlot::new(b));
        each!(&self.ring, r => r.get(wait.deadline(), take)).map_err(|e| wait.get_error(e))
    }

    /// Takes up to `max` messages, handing each to `f` where it lies in the ring.
    pub(crate) fn get_many_in_place(
        &self,
        max: usize,
        wait: Wait,
        mut f: impl FnMut(ReadSlot<'_>),
    ) -> Result<usize, GetError> {
        self.take_batches(max, wait, |b| f(ReadSlot::new(b)))
    }

    /// Puts raw messages, claiming space for many at once.
    pub(crate) fn put_bytes_many(&self, msgs: &[&[u8]], wait: Wait) -> Result<(), PutError<usize>> {
        each!(&self.ring, r => r.put_batch(msgs, wait.deadline()))
            .map_err(|(done, e)| wait.put_error(e, done))
    }

    /// Puts one message of raw bytes, waiting for room until `deadline`: the flavour
    /// chosen here, in one function that is not generic, so that the typed puts (whose
    /// code is generated in the crate that names their type) only call it.
    fn put_raw(&self, data: &[u8], deadline: Deadline) -> Result<(), WaitFail> {
        each!(&self.ring, r => r.put(data, deadline))
    }

    /// Takes up to `max` messages (at least one, waiting until `deadline` for it) with
    /// as few claims as possible, handing each to `f` in order; returns how many. A
    /// pipe takes one record at a time.
    fn get_batch(
        &self,
        max: usize,
        deadline: Deadline,
        f: impl FnMut(Bytes<'_>),
    ) -> Result<usize, WaitFail> {
        match &self.ring {
            Flavour::Mpmc(r) => r.get_batch(max, deadline, f),
            Flavour::Spsc(r) => r.get_batch(deadline, f),
        }
    }
}

/// Decodes one message of a batch into `out`, or records the first failure.
fn decode_into<T: DeserializeOwned>(
    codec: Codec,
    b: Bytes<'_>,
    out: &mut Vec<T>,
    failed: &mut Option<GetError>,
) {
    if failed.is_some() {
        return;
    }
    let r = match b.as_slice() {
        Some(s) => codec.decode(s).map_err(|e| (e, s.to_vec())),
        None => {
            let v = b.to_vec();
            codec.decode(&v).map_err(|e| (e, v))
        }
    };
    match r {
        Ok(v) => out.push(v),
        Err((error, bytes)) => *failed = Some(GetError::Decode { error, bytes }),
    }
}

/// How a channel travels to another process: descriptor indices of its segment and
/// eventfd, plus what the receiving side needs to rebuild the handle.
#[derive(Serialize, Deserialize)]
struct Wire {
    segment: u32,
    event: u32,
    tag: u32,
    codec: u32,
}

/// Serializes `core` for a handoff (`what` names the type in the error outside one).
pub(crate) fn serialize_endpoint<S: Serializer>(
    core: &Endpoint,
    tag: u32,
    what: &str,
    s: S,
) -> Result<S::Ok, S::Error> {
    let (seg, event) = core.ring().parts();
    let segment = handoff::export_fd(seg.fd(), what).map_err(serde::ser::Error::custom)?;
    let event = handoff::export_fd(std::os::fd::AsFd::as_fd(event), what)
        .map_err(serde::ser::Error::custom)?;
    Wire {
        segment,
        event,
        tag,
        codec: core.codec.id(),
    }
    .serialize(s)
}

/// Rebuilds a handle serialized by [`serialize_endpoint`], checking that it holds `tag`.
pub(crate) fn deserialize_endpoint<'de, D: Deserializer<'de>>(
    d: D,
    tag: u32,
) -> Result<Arc<Endpoint>, D::Error> {
    use serde::de::Error;
    let wire = Wire::deserialize(d)?;
    if wire.tag != tag {
        return Err(D::Error::custom(format!(
            "expected a channel of type {tag:#x}, received one of type {:#x}",
            wire.tag
        )));
    }
    let codec = Codec::from_id(wire.codec)
        .ok_or_else(|| D::Error::custom(format!("unknown codec number {}", wire.codec)))?;
    let seg_fd = handoff::import_fd(wire.segment).map_err(D::Error::custom)?;
    let event = handoff::import_fd(wire.event).map_err(D::Error::custom)?;
    let seg = Segment::import(seg_fd, None, SegmentKind::Channel).map_err(D::Error::custom)?;
    let ring = Flavour::from_parts(seg, event, tag).map_err(D::Error::custom)?;
    Ok(Arc::new(Endpoint { ring, codec }))
}
