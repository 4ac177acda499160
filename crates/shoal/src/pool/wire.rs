//! The messages between a pool and its workers, little-endian, no codec.
//!
//! To a worker (its own task queue), one message per chunk:
//! `chunk id u64 | task index u32 | count u32 | count × (len u32 | argument)`. The task
//! index's top bit ([`WITH_FDS`]) says that the chunk's one item refers to descriptors,
//! which come on the worker's descriptor socket (one byte carrying them, sent before
//! the chunk).
//!
//! To the pool (the shared result queue), the first byte says what follows:
//! * [`RESULTS`]: `slot u32 | generation u32`, then segments in the order the worker ran
//!   the tasks: `chunk u64 | first offset u32 | n u32 | status u8 | n × len u32 | bytes`
//!   — `n` consecutive items of one chunk with the same status (a failure is a segment
//!   of one, its bytes the message);
//! * [`EXITED`]: `slot u32 | generation u32 | exit code i32` — put by the pool's own
//!   watcher thread when a worker process ends;
//! * [`WAKE`]: new work was submitted;
//! * [`INIT_FAILED`]: `slot u32 | generation u32 | message` — the initializer failed.

/// Kind byte of a batch of results.
pub(crate) const RESULTS: u8 = 1;
/// Kind byte of a worker's exit.
pub(crate) const EXITED: u8 = 2;
/// Kind byte of a wake-up.
pub(crate) const WAKE: u8 = 3;
/// Kind byte of an initializer failure.
pub(crate) const INIT_FAILED: u8 = 4;

/// Status of a task that returned.
pub(crate) const OK: u8 = 0;
/// Status of a task that panicked (bytes: the message).
pub(crate) const PANICKED: u8 = 1;
/// Status of a task whose argument or result serde refused (bytes: the message).
pub(crate) const CODEC_FAILED: u8 = 2;

/// Exit code recorded when the exit code could not be learned.
pub(crate) const UNKNOWN_EXIT: i32 = i32::MIN;

/// Bytes of a chunk header.
pub(crate) const CHUNK_HEADER: usize = 16;

/// Flag in a chunk's task index: its item's descriptors come on the side socket.
pub(crate) const WITH_FDS: u32 = 1 << 31;

/// Marks the chunk message `msg` as [`WITH_FDS`].
pub(crate) fn mark_with_fds(msg: &mut [u8]) {
    let task = u32::from_le_bytes(msg[8..12].try_into().expect("a chunk header"));
    msg[8..12].copy_from_slice(&(task | WITH_FDS).to_le_bytes());
}

/// Appends a chunk header (the count is patched by [`set_count`]).
pub(crate) fn chunk_header(out: &mut Vec<u8>, chunk: u64, task: u32) {
    out.extend_from_slice(&chunk.to_le_bytes());
    out.extend_from_slice(&task.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// Sets the item count of the chunk message `msg`.
pub(crate) fn set_count(msg: &mut [u8], count: u32) {
    msg[12..16].copy_from_slice(&count.to_le_bytes());
}

/// Appends an item whose encoding `encode` appends.
#[inline]
pub(crate) fn push_item<E>(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    match encode(out) {
        Ok(()) => {
            let len = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(at);
            Err(e)
        }
    }
}

/// A bounds-checked cursor over a message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.u32().map(|v| v as i32)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A `len u32 | bytes` field.
    pub(crate) fn item(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }

    /// A `len u32 | bytes` field, as the rest of the message from its bytes on and its
    /// length (a decoder reads fastest when it may look past the field's end).
    #[inline]
    pub(crate) fn item_in_place(&mut self) -> Option<(&'a [u8], usize)> {
        let (n, from) = self.buf.split_first_chunk::<4>()?;
        let n = u32::from_le_bytes(*n) as usize;
        self.buf = from.get(n..)?;
        Some((from, n))
    }
}

/// A parsed chunk message.
pub(crate) struct ChunkView<'a> {
    pub(crate) chunk: u64,
    pub(crate) task: u32,
    /// Its item's descriptors come on the side socket ([`WITH_FDS`]).
    pub(crate) with_fds: bool,
    pub(crate) count: u32,
    pub(crate) items: Reader<'a>,
}

/// Parses a chunk message.
pub(crate) fn parse_chunk(msg: &[u8]) -> Option<ChunkView<'_>> {
    let mut r = Reader::new(msg);
    let chunk = r.u64()?;
    let task = r.u32()?;
    Some(ChunkView {
        chunk,
        task: task & !WITH_FDS,
        with_fds: task & WITH_FDS != 0,
        count: r.u32()?,
        items: r,
    })
}

/// The items of a chunk message, as slices.
pub(crate) fn chunk_items(msg: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    if let Some(mut v) = parse_chunk(msg) {
        while let Some(item) = v.items.item() {
            out.push(item);
        }
    }
    out
}

/// Builds a chunk message from already encoded items.
pub(crate) fn chunk_from_items(chunk: u64, task: u32, items: &[&[u8]]) -> Vec<u8> {
    let len = CHUNK_HEADER + items.iter().map(|i| 4 + i.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    chunk_header(&mut out, chunk, task);
    for i in items {
        out.extend_from_slice(&(i.len() as u32).to_le_bytes());
        out.extend_from_slice(i);
    }
    set_count(&mut out, items.len() as u32);
    out
}

/// Starts a message of `kind` from worker `slot` of generation `generation`.
pub(crate) fn header(out: &mut Vec<u8>, kind: u8, slot: u32, generation: u32) {
    out.push(kind);
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip() {
        let msg = chunk_from_items(7, 3, &[b"ab", b"", b"xyz"]);
        let v = parse_chunk(&msg).unwrap();
        assert_eq!((v.chunk, v.task, v.count), (7, 3, 3));
        assert_eq!(chunk_items(&msg), vec![&b"ab"[..], b"", b"xyz"]);
        let mut items = parse_chunk(&msg).unwrap().items;
        assert_eq!(
            items.item_in_place(),
            Some((&b"ab\0\0\0\0\x03\0\0\0xyz"[..], 2))
        );
        assert_eq!(items.item_in_place(), Some((&b"\x03\0\0\0xyz"[..], 0)));
        assert_eq!(items.item_in_place(), Some((&b"xyz"[..], 3)));
        assert_eq!(items.item_in_place(), None);
        let mut m = Vec::new();
        chunk_header(&mut m, 1, 2);
        push_item(&mut m, |o| {
            o.push(9);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(push_item(&mut m, |o| {
            o.push(1);
            Err(())
        })
        .is_err());
        set_count(&mut m, 1);
        assert_eq!(chunk_items(&m), vec![&[9u8][..]]);
        assert!(parse_chunk(&m[..5]).is_none());
    }
}
