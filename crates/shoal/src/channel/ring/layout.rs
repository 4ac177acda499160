//! The bytes of a ring segment: control block, claim slots, cells.
//!
//! Everything here is `#[repr(C)]` with asserted offsets, because other processes (and a
//! Python reader, see `docs/ring-format.md`) map the same bytes. The payload of the
//! segment is laid out as:
//!
//! ```text
//! offset 0                      Control      (8 cache lines)
//! offset 512                    Slot[SLOTS]  (one cache line each)
//! offset 512 + 64 * SLOTS       Cell[cell_count] (cell_size bytes each)
//! ```
//!
//! # The sequence word of a cell
//!
//! | `seq` value (cell at ring position `p`) | meaning |
//! |---|---|
//! | `p` | free for position `p`, or claimed by a producer that has not committed |
//! | `p + 1` | committed: readable (a message cell, a continuation, or a tombstone) |
//! | `p + cell_count` | consumed and released: free for position `p + cell_count` |
//!
//! A release-store of `seq` is the commit; everything written to the cell before it is
//! visible to whoever acquires that value.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};

/// `"SHOALRNG"` as a little-endian `u64`.
pub(crate) const RING_MAGIC: u64 = u64::from_le_bytes(*b"SHOALRNG");
/// Layout version of everything in this file.
pub(crate) const RING_VERSION: u32 = 1;
/// Number of claim slots (threads that may use one ring at the same time).
pub(crate) const SLOTS: usize = 128;
/// Bytes at the start of each cell before its data.
pub(crate) const CELL_HEADER: usize = 16;
/// A slot position meaning "no claim".
pub(crate) const IDLE: u64 = u64::MAX;

/// Cell flag: the first cell of a message; `len` is the message length in bytes.
pub(crate) const F_FIRST: u32 = 1;
/// Cell flag: a continuation cell of a message whose first cell comes before it.
pub(crate) const F_CONT: u32 = 2;
/// Cell flag: a tombstone left where a dead producer had claimed a cell; skipped.
pub(crate) const F_TOMB: u32 = 4;
/// Cell flag (with `F_FIRST`): the first part of a message streamed in parts; its
/// first 8 data bytes hold the whole message's length.
pub(crate) const F_PART_BEGIN: u32 = 8;
/// Cell flag (with `F_FIRST`): a middle part of a streamed message.
pub(crate) const F_PART_MID: u32 = 16;
/// Cell flag (with `F_FIRST`): the last part of a streamed message.
pub(crate) const F_PART_END: u32 = 32;

/// Record flag (single-producer rings only): padding up to the end of the ring, `len`
/// bytes long; the next record starts at offset 0.
pub(crate) const F_PAD: u32 = 64;

/// One cache line holding one value, so that producers' and consumers' hot words never
/// share a line.
#[repr(C, align(64))]
pub(crate) struct Line<T>(pub(crate) T);

/// Geometry and state shared by every process using the ring.
#[repr(C)]
pub(crate) struct Control {
    /// Written once by the creator before the segment is shared.
    pub(crate) geometry: Line<Geometry>,
    /// Next position a producer claims (monotonic, never wraps in practice).
    pub(crate) tail: Line<End>,
    /// Next position a consumer claims.
    pub(crate) head: Line<End>,
    /// Consumers waiting for data: epoch bumped on commit, count of sleepers.
    pub(crate) data: Line<Waiters>,
    /// Producers waiting for space.
    pub(crate) space: Line<Waiters>,
    /// Queues: messages in the ring, kept only when `max_messages` is set. Pipes: the
    /// receiver's own line (its read position and its word).
    pub(crate) count: Line<Count>,
    /// Tokens of the producer and consumer of a message streamed in parts (0: none).
    pub(crate) stream: Line<Stream>,
    /// `JoinableQueue`: unfinished tasks and the waiters of `join`.
    pub(crate) tasks: Line<Tasks>,
}

/// One end of the ring: its position, and (single-producer rings only) who is using it.
#[repr(C)]
pub(crate) struct End {
    /// Multi-producer rings: the next position claimed. Single-producer rings: the byte
    /// position up to which records are committed (`tail`) or released (`head`).
    pub(crate) pos: AtomicU64,
    /// Single-producer rings, `tail` only: the token (`pid << 32 | thread`) of the sender
    /// inside an operation, 0 between operations (the receiver's is `Count::reader`).
    /// Unused (0) in multi-producer rings and on the `head` line.
    pub(crate) owner: AtomicU64,
    /// The CPU (plus one; 0: unknown) on which a producer (`tail`) or a consumer of a
    /// queue (`head`) last claimed; a pipe's receiver keeps its own in `Count::cpu`.
    pub(crate) cpu: AtomicU32,
}

/// The `count` line.
#[repr(C)]
pub(crate) struct Count {
    /// Queues: messages in the ring (when `max_messages` is set). Pipes: the receiver's
    /// read position (as a `u64`), which it publishes to the sender in `head.pos` only
    /// now and then.
    pub(crate) n: AtomicI64,
    /// Pipes: the token of the receiver inside an operation, 0 between. Here, not on
    /// the `head` line, because the sender polls `head.pos` while it waits for room:
    /// the receiver's per-message writes stay on a line nobody else reads.
    pub(crate) reader: AtomicU64,
    /// Pipes: the CPU (plus one) on which the receiver last took a record.
    pub(crate) cpu: AtomicU32,
}

/// Fixed parameters of a ring.
#[repr(C)]
pub(crate) struct Geometry {
    pub(crate) magic: u64,
    pub(crate) version: u32,
    /// Bytes per cell (a power of two, at least 64).
    pub(crate) cell_size: u32,
    /// Number of cells (a power of two).
    pub(crate) cell_count: u64,
    /// Bound on messages (Python's `maxsize`), 0 for none.
    pub(crate) max_messages: u64,
    /// Number of slots after the control block.
    pub(crate) slots: u32,
    /// Set to 1 by `close`.
    pub(crate) closed: AtomicU32,
    /// Which channel lives here (`TAG_*` of the segment header), repeated for readers that
    /// only see the payload.
    pub(crate) tag: u32,
    /// Codec of typed messages: 1 bincode, 2 JSON, 3 MessagePack, 0 raw bytes.
    pub(crate) codec: u32,
}

/// A futex epoch and the number of sleepers on it.
#[repr(C)]
pub(crate) struct Waiters {
    /// Bumped (then woken) by whoever makes the awaited condition true.
    pub(crate) epoch: AtomicU32,
    /// Threads inside the sleep phase; 0 lets the fast path skip the wake syscall.
    pub(crate) sleepers: AtomicU32,
    /// Handles that asked for eventfd signals (readiness descriptor users).
    pub(crate) watchers: AtomicU32,
}

/// Ownership of the message being streamed in parts.
#[repr(C)]
pub(crate) struct Stream {
    /// Token of the producer streaming a message (other producers wait).
    pub(crate) writer: AtomicU64,
    /// Token of the consumer reading a streamed message (other consumers wait).
    pub(crate) reader: AtomicU64,
    /// Pipes: pid of the process that last sent on this ring (0: none yet), so that a
    /// receiver can report end of stream when it died.
    pub(crate) sender_pid: AtomicU32,
    /// Pipes: pid of the process that last received on this ring (0: none yet).
    pub(crate) receiver_pid: AtomicU32,
    /// Pipes: pids of processes that sent on this ring (0: free); end of stream waits
    /// until every one of them, and `sender_pid`, is dead.
    pub(crate) senders: [AtomicU32; 5],
    /// Pipes: pids of processes that received on this ring; a sender facing a full
    /// ring reports it closed once every one of them, and `receiver_pid`, is dead.
    pub(crate) receivers: [AtomicU32; 5],
}

/// `JoinableQueue` counters.
#[repr(C)]
pub(crate) struct Tasks {
    /// Messages put and not yet marked done.
    pub(crate) unfinished: AtomicI64,
    /// Bumped when `unfinished` reaches 0.
    pub(crate) epoch: AtomicU32,
    /// Threads sleeping in `join`.
    pub(crate) sleepers: AtomicU32,
}

/// One thread's claim record. A producer writes `put_cells` then `put_pos` before it
/// CASes `tail`, and resets `put_pos` to [`IDLE`] after its commit; a consumer does the
/// same with `get_*` around its CAS of `head`. A process that finds a claim stuck reads
/// these to learn whether its owner is dead.
#[repr(C, align(64))]
pub(crate) struct Slot {
    /// `pid << 32 | thread number`, 0 when free.
    pub(crate) owner: AtomicU64,
    pub(crate) put_pos: AtomicU64,
    pub(crate) put_cells: AtomicU64,
    pub(crate) get_pos: AtomicU64,
    pub(crate) get_cells: AtomicU64,
}

/// The header of every cell; `cell_size - CELL_HEADER` data bytes follow.
#[repr(C)]
pub(crate) struct CellHeader {
    pub(crate) seq: AtomicU64,
    /// First cell: the length of the message (or part) in bytes.
    pub(crate) len: AtomicU32,
    pub(crate) flags: AtomicU32,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Geometry>() == 48);
    assert!(offset_of!(Geometry, magic) == 0);
    assert!(offset_of!(Geometry, version) == 8);
    assert!(offset_of!(Geometry, cell_size) == 12);
    assert!(offset_of!(Geometry, cell_count) == 16);
    assert!(offset_of!(Geometry, max_messages) == 24);
    assert!(offset_of!(Geometry, slots) == 32);
    assert!(offset_of!(Geometry, closed) == 36);
    assert!(offset_of!(Geometry, tag) == 40);
    assert!(offset_of!(Geometry, codec) == 44);
    assert!(size_of::<Control>() == 512);
    assert!(offset_of!(Control, geometry) == 0);
    assert!(offset_of!(Control, tail) == 64);
    assert!(offset_of!(Control, head) == 128);
    assert!(offset_of!(Control, data) == 192);
    assert!(offset_of!(Control, space) == 256);
    assert!(offset_of!(Control, count) == 320);
    assert!(offset_of!(Control, stream) == 384);
    assert!(offset_of!(Control, tasks) == 448);
    assert!(offset_of!(End, pos) == 0);
    assert!(offset_of!(End, owner) == 8);
    assert!(offset_of!(Count, n) == 0);
    assert!(offset_of!(Count, reader) == 8);
    assert!(offset_of!(Count, cpu) == 16);
    assert!(offset_of!(End, cpu) == 16);
    assert!(offset_of!(Waiters, epoch) == 0);
    assert!(offset_of!(Waiters, sleepers) == 4);
    assert!(offset_of!(Waiters, watchers) == 8);
    assert!(offset_of!(Stream, writer) == 0);
    assert!(offset_of!(Stream, reader) == 8);
    assert!(offset_of!(Stream, sender_pid) == 16);
    assert!(offset_of!(Stream, receiver_pid) == 20);
    assert!(offset_of!(Stream, senders) == 24);
    assert!(offset_of!(Stream, receivers) == 44);
    assert!(size_of::<Stream>() == 64);
    assert!(offset_of!(Tasks, unfinished) == 0);
    assert!(offset_of!(Tasks, epoch) == 8);
    assert!(offset_of!(Tasks, sleepers) == 12);
    assert!(size_of::<Slot>() == 64);
    assert!(offset_of!(Slot, owner) == 0);
    assert!(offset_of!(Slot, put_pos) == 8);
    assert!(offset_of!(Slot, put_cells) == 16);
    assert!(offset_of!(Slot, get_pos) == 24);
    assert!(offset_of!(Slot, get_cells) == 32);
    assert!(size_of::<CellHeader>() == CELL_HEADER);
    assert!(offset_of!(CellHeader, seq) == 0);
    assert!(offset_of!(CellHeader, len) == 8);
    assert!(offset_of!(CellHeader, flags) == 12);
};

/// Offset of the first slot in the payload.
pub(crate) const SLOTS_OFFSET: usize = std::mem::size_of::<Control>();
/// Offset of the first cell in the payload.
pub(crate) const CELLS_OFFSET: usize = SLOTS_OFFSET + SLOTS * std::mem::size_of::<Slot>();
