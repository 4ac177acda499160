//! `Queue<T>`: a bounded multi-producer multi-consumer queue between processes.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::endpoint::{deserialize_endpoint, serialize_endpoint, Endpoint, Wait};
use crate::channel::ring::RingConfig;
use crate::channel::{CreateError, GetError, PutError, ReadSlot, WriteSlot, TAG_QUEUE};
use crate::codec::Codec;
use crate::sys;

/// Default ring size: 1 MiB of cells.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;
/// Default cell size: a 64-byte message fits in one cell with its 16-byte header.
pub(crate) const DEFAULT_CELL: usize = 128;

/// How to build a [`Queue`]: ring size, message bound, cell size and codec.
///
/// # Examples
/// ```
/// use shoal::channel::Queue;
/// use shoal::codec::Codec;
///
/// let q: Queue<String> = Queue::builder()
///     .maxsize(2)
///     .capacity_bytes(64 * 1024)
///     .codec(Codec::Json)
///     .build()?;
/// q.put("a".to_owned())?;
/// q.put("b".to_owned())?;
/// assert!(q.try_put("c".to_owned()).unwrap_err().is_full());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct QueueBuilder {
    maxsize: usize,
    capacity: usize,
    cell_size: usize,
    codec: Codec,
}

impl Default for QueueBuilder {
    fn default() -> QueueBuilder {
        QueueBuilder {
            maxsize: 0,
            capacity: DEFAULT_CAPACITY,
            cell_size: DEFAULT_CELL,
            codec: Codec::default(),
        }
    }
}

impl QueueBuilder {
    /// Bound on the number of messages (Python's `maxsize`); 0 (the default) bounds
    /// only by bytes. Under concurrent producers the bound may be passed by up to one
    /// message per producer racing at the limit.
    ///
    /// # Examples
    /// ```
    /// let q = shoal::Queue::builder().maxsize(1).build::<u8>()?;
    /// assert_eq!(q.maxsize(), 1);
    /// q.put(1)?;
    /// assert!(q.try_put(2).unwrap_err().is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn maxsize(mut self, n: usize) -> QueueBuilder {
        self.maxsize = n;
        self
    }

    /// Bytes of ring (rounded up to a power of two of cells). Messages longer than
    /// half of it are streamed through it in parts. Default 1 MiB.
    ///
    /// # Examples
    /// ```
    /// let q = shoal::Queue::builder().capacity_bytes(4096).build::<()>()?;
    /// assert!(q.capacity_bytes() <= 4096); // cell headers take their share
    /// let q2 = q.clone();
    /// // Longer than the whole ring: streamed through it in parts, received whole.
    /// let producer = std::thread::spawn(move || q2.put_bytes(&[5u8; 10_000]));
    /// assert_eq!(q.get_bytes()?, vec![5u8; 10_000]);
    /// producer.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity_bytes(mut self, n: usize) -> QueueBuilder {
        self.capacity = n;
        self
    }

    /// Bytes per cell (a power of two, 64 to 65536; default 128). Each message takes
    /// whole cells of which 16 bytes are header.
    ///
    /// # Examples
    /// ```
    /// let q = shoal::Queue::builder().cell_size(64).build::<()>()?;
    /// q.put_bytes(&[1u8; 100])?; // 100 bytes do not fit in one 64-byte cell
    /// assert!(q.get_in_place(None, |m| m.chunks().count())? > 1);
    /// assert!(shoal::Queue::builder().cell_size(100).build::<()>().is_err()); // not a power of two
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cell_size(mut self, n: usize) -> QueueBuilder {
        self.cell_size = n;
        self
    }

    /// The codec of typed messages (default bincode).
    ///
    /// # Examples
    /// ```
    /// use shoal::codec::Codec;
    ///
    /// let q = shoal::Queue::builder().codec(Codec::Json).build::<Vec<u8>>()?;
    /// assert_eq!(q.codec(), Codec::Json);
    /// q.put(vec![1, 2])?;
    /// assert_eq!(q.get_bytes()?, b"[1,2]"); // the message as it lies in the ring
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn codec(mut self, codec: Codec) -> QueueBuilder {
        self.codec = codec;
        self
    }

    pub(crate) fn chosen_codec(&self) -> Codec {
        self.codec
    }

    pub(crate) fn ring_config(&self, tag: u32) -> Result<RingConfig, CreateError> {
        let bad = CreateError::invalid;
        if !self.cell_size.is_power_of_two() || !(64..=65536).contains(&self.cell_size) {
            return Err(bad(format!(
                "could not create a channel: a cell size of {} bytes is not a power of two between 64 and 65536",
                self.cell_size
            )));
        }
        let want = self
            .capacity
            .max(self.maxsize.saturating_mul(self.cell_size))
            .max(2 * self.cell_size);
        let cells = (want / self.cell_size)
            .checked_next_power_of_two()
            .filter(|c| c.checked_mul(self.cell_size).is_some_and(|b| b <= 1 << 40))
            .ok_or_else(|| {
                bad(format!(
                    "could not create a channel: {} bytes of ring is too large",
                    self.capacity
                ))
            })?;
        Ok(RingConfig {
            cell_size: self.cell_size,
            cells,
            max_messages: self.maxsize as u64,
            tag,
            codec: 0,
        })
    }

    /// Creates the queue.
    ///
    /// # Errors
    /// When the cell size or capacity is impossible, or the kernel refuses the memory.
    ///
    /// # Examples
    /// ```
    /// let builder = shoal::Queue::builder().maxsize(8);
    /// let numbers = builder.build::<u32>()?; // one builder, several queues
    /// let names = builder.build::<String>()?;
    /// assert_eq!((numbers.maxsize(), names.maxsize()), (8, 8));
    /// numbers.put(1)?;
    /// assert!(names.is_empty()); // each has its own ring
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build<T>(&self) -> Result<Queue<T>, CreateError> {
        Ok(Queue::from_core(Endpoint::create(
            self.ring_config(TAG_QUEUE)?,
            self.codec,
        )?))
    }
}

/// A bounded multi-producer multi-consumer queue between processes (Python's
/// `multiprocessing.Queue`), living in shared memory.
///
/// Messages are typed through a [`Codec`] (bincode by default) or sent as raw bytes
/// ([`put_bytes`](Queue::put_bytes) copies the slice straight into the ring). A message
/// becomes visible only when it is written whole, and a process killed in the middle of
/// a `put` or `get` blocks nobody; a message whose consumer was killed inside its `get`
/// is put again, so every acknowledged put is delivered once (see `docs/ring-format.md`,
/// section 5, for the exact contract). Messages larger than half the ring are streamed
/// through it in parts and arrive whole.
///
/// A `Queue` is a cheap handle: clones share the same ring. It reaches a child process
/// as a `Process` argument (it serializes as descriptors through the process handoff).
///
/// # Examples
/// ```
/// use shoal::channel::Queue;
///
/// let q: Queue<(u32, String)> = Queue::new()?;
/// let q2 = q.clone();
/// std::thread::spawn(move || q2.put((1, "one".to_owned())).unwrap());
/// assert_eq!(q.get()?, (1, "one".to_owned()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    core: Arc<Endpoint>,
    _marker: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Queue<T> {
        Queue {
            core: Arc::clone(&self.core),
            _marker: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity_bytes", &self.capacity_bytes())
            .field("maxsize", &self.maxsize())
            .field("codec", &self.core.codec)
            .finish()
    }
}

impl Queue<()> {
    /// Options for a new queue (`Queue::builder()...build::<T>()`, or let the type of
    /// the binding choose `T`).
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::Queue;
    ///
    /// let q: Queue<u64> = Queue::builder().maxsize(3).build()?; // T from the binding
    /// assert_eq!(q.maxsize(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> QueueBuilder {
        QueueBuilder::default()
    }
}

impl<T> Queue<T> {
    /// A queue with a 1 MiB ring, no message bound and the bincode codec.
    ///
    /// # Errors
    /// When the kernel refuses the memory or an eventfd.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<String> = shoal::Queue::new()?;
    /// assert!(q.is_empty());
    /// assert_eq!(q.maxsize(), 0);
    /// assert_eq!(q.codec(), shoal::codec::Codec::Bincode);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Result<Queue<T>, CreateError> {
        QueueBuilder::default().build()
    }

    /// A queue bounded to `maxsize` messages (Python's `Queue(maxsize)`; 0: unbounded
    /// except by bytes).
    ///
    /// # Errors
    /// As [`new`](Queue::new).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::with_maxsize(2)?;
    /// q.put(1)?;
    /// q.put(2)?;
    /// assert!(q.is_full());
    /// assert!(q.try_put(3).unwrap_err().is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_maxsize(maxsize: usize) -> Result<Queue<T>, CreateError> {
        QueueBuilder::default().maxsize(maxsize).build()
    }

    pub(crate) fn from_core(core: Arc<Endpoint>) -> Queue<T> {
        Queue {
            core,
            _marker: PhantomData,
        }
    }

    pub(crate) fn core(&self) -> &Arc<Endpoint> {
        &self.core
    }

    /// Puts raw bytes (no codec), copied straight into the ring; blocks while full.
    /// A failed put of bytes gives back `()`: the caller still holds the slice.
    ///
    /// # Errors
    /// [`PutError::Closed`] after [`close`](Queue::close).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes(b"raw")?;
    /// assert_eq!(q.get_bytes()?, b"raw");
    /// q.close();
    /// assert!(q.put_bytes(b"late").unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_bytes(&self, data: &[u8]) -> Result<(), PutError<()>> {
        self.core.put_bytes(data, Wait::forever())
    }

    /// [`put_bytes`](Queue::put_bytes), failing with [`PutError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// `Timeout` or `Closed`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// use shoal::channel::{PutError, Queue};
    ///
    /// let q: Queue<()> = Queue::with_maxsize(1)?;
    /// q.put_bytes_timeout(b"a", Duration::from_millis(10))?;
    /// let full = q.put_bytes_timeout(b"b", Duration::from_millis(10));
    /// assert_eq!(full, Err(PutError::Timeout(())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_bytes_timeout(&self, data: &[u8], timeout: Duration) -> Result<(), PutError<()>> {
        self.core.put_bytes(data, Wait::timeout(timeout))
    }

    /// [`put_bytes`](Queue::put_bytes) without waiting.
    ///
    /// # Errors
    /// `Full` or `Closed`.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::with_maxsize(1)?;
    /// q.try_put_bytes(b"a")?;
    /// assert!(q.try_put_bytes(b"b").unwrap_err().is_full());
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_put_bytes(&self, data: &[u8]) -> Result<(), PutError<()>> {
        self.core.put_bytes(data, Wait::No)
    }

    /// Takes the next message as raw bytes; blocks while empty.
    ///
    /// # Errors
    /// [`GetError::Closed`] once closed and drained.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// let q2 = q.clone();
    /// std::thread::spawn(move || q2.put_bytes(b"from a thread").unwrap());
    /// assert_eq!(q.get_bytes()?, b"from a thread"); // blocks until it comes
    /// q.close();
    /// assert!(q.get_bytes().unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_bytes(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.core.get_bytes_into(&mut v, Wait::forever())?;
        Ok(v)
    }

    /// [`get_bytes`](Queue::get_bytes), failing with [`GetError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// `Timeout` or `Closed`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// let err = q.get_bytes_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// q.put_bytes(b"now")?;
    /// assert_eq!(q.get_bytes_timeout(Duration::from_millis(10))?, b"now");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.core.get_bytes_into(&mut v, Wait::timeout(timeout))?;
        Ok(v)
    }

    /// [`get_bytes`](Queue::get_bytes) without waiting.
    ///
    /// # Errors
    /// `Empty` or `Closed`.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// assert!(q.try_get_bytes().unwrap_err().is_empty());
    /// q.put_bytes(b"x")?;
    /// assert_eq!(q.try_get_bytes()?, b"x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_get_bytes(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.core.get_bytes_into(&mut v, Wait::No)?;
        Ok(v)
    }

    /// Takes the next message into `buf` (cleared first, its allocation reused); blocks
    /// while empty; returns the length.
    ///
    /// # Errors
    /// [`GetError::Closed`] once closed and drained.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes(b"first")?;
    /// q.put_bytes(b"2nd")?;
    /// let mut buf = Vec::with_capacity(64);
    /// assert_eq!(q.get_bytes_into(&mut buf)?, 5);
    /// assert_eq!(buf, b"first");
    /// assert_eq!(q.get_bytes_into(&mut buf)?, 3);
    /// assert_eq!(buf, b"2nd"); // cleared first, not appended to
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<usize, GetError> {
        self.core.get_bytes_into(buf, Wait::forever())
    }

    /// Puts every message of `msgs` in order as raw bytes, claiming ring space for many
    /// at once; blocks while full.
    ///
    /// # Errors
    /// `Closed` carrying how many messages were put before the queue closed.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{PutError, Queue};
    ///
    /// let q: Queue<()> = Queue::new()?;
    /// q.put_bytes_many(&[b"a", b"bc", b"def"])?;
    /// assert_eq!(q.len(), 3);
    /// assert_eq!(q.get_bytes()?, b"a"); // in order
    /// q.close();
    /// assert_eq!(q.put_bytes_many(&[b"late"]), Err(PutError::Closed(0)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_bytes_many(&self, msgs: &[&[u8]]) -> Result<(), PutError<usize>> {
        self.core.put_bytes_many(msgs, Wait::forever())
    }

    /// Takes up to `max` raw messages: blocks for the first (at most `timeout`, forever
    /// when `None`), then takes those already there, claiming consecutive messages with
    /// one atomic operation.
    ///
    /// # Errors
    /// As [`get_bytes_timeout`](Queue::get_bytes_timeout) for the first message.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes_many(&[b"a", b"b", b"c"])?;
    /// assert_eq!(q.get_bytes_many(2, None)?, [b"a", b"b"]);
    /// assert_eq!(q.get_bytes_many(10, None)?, [b"c"]); // takes what is there
    /// let err = q.get_bytes_many(10, Some(Duration::from_millis(10))).unwrap_err();
    /// assert!(err.is_timeout());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_bytes_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Vec<u8>>, GetError> {
        let wait = timeout.map_or(Wait::forever(), Wait::timeout);
        self.core.get_bytes_many(max, wait)
    }

    /// Takes up to `max` raw messages like [`get_bytes_many`](Queue::get_bytes_many),
    /// but hands each to `f` where it lies in the ring (a message spanning several
    /// cells is first gathered into a reused buffer): no allocation per message.
    /// Returns how many messages were taken.
    ///
    /// # Errors
    /// As [`get_bytes_timeout`](Queue::get_bytes_timeout) for the first message.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes_many(&[b"a", b"bc"])?;
    /// let mut total = 0;
    /// let n = q.get_bytes_with(10, None, |m| total += m.len())?;
    /// assert_eq!((n, total), (2, 3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_bytes_with(
        &self,
        max: usize,
        timeout: Option<Duration>,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, GetError> {
        let wait = timeout.map_or(Wait::forever(), Wait::timeout);
        self.core.get_bytes_with(max, wait, f)
    }

    /// Takes one raw message and hands it to `f` where it lies in the ring, without a
    /// copy (see [`ReadSlot`]); waits up to `timeout` (`None`: forever). Returns what
    /// `f` returns. The message's cells go back to producers when `f` returns.
    ///
    /// # Errors
    /// As [`get_bytes_timeout`](Queue::get_bytes_timeout).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes(b"in place")?;
    /// let first = q.get_in_place(None, |m| m.chunks().next().map(|c| c[0]))?;
    /// assert_eq!(first, Some(b'i'));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_in_place<R>(
        &self,
        timeout: Option<Duration>,
        f: impl FnOnce(ReadSlot<'_>) -> R,
    ) -> Result<R, GetError> {
        let wait = timeout.map_or(Wait::forever(), Wait::timeout);
        self.core.get_in_place(wait, f)
    }

    /// Takes up to `max` raw messages like [`get_bytes_with`](Queue::get_bytes_with),
    /// handing each to `f` where it lies in the ring even when it spans several cells
    /// (see [`ReadSlot`]): nothing is copied. Returns how many messages were taken.
    ///
    /// # Errors
    /// As [`get_bytes_timeout`](Queue::get_bytes_timeout) for the first message.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// q.put_bytes_many(&[&[1u8; 500], &[2u8; 600]])?;
    /// let mut sum = 0u64;
    /// let n = q.get_many_in_place(10, None, |m| {
    ///     sum += m.chunks().flatten().map(|&b| u64::from(b)).sum::<u64>();
    /// })?;
    /// assert_eq!((n, sum), (2, 1700));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many_in_place(
        &self,
        max: usize,
        timeout: Option<Duration>,
        f: impl FnMut(ReadSlot<'_>),
    ) -> Result<usize, GetError> {
        let wait = timeout.map_or(Wait::forever(), Wait::timeout);
        self.core.get_many_in_place(max, wait, f)
    }

    /// Reserves room for one raw message of exactly `len` bytes, to be written in place
    /// and then committed (see [`WriteSlot`]); blocks while the queue is full.
    ///
    /// # Errors
    /// [`PutError::TooLarge`] when `len` is more than half the ring
    /// ([`max_reserve`](Queue::max_reserve)); `Closed`.
    ///
    /// # Examples
    /// ```
    /// use std::io::Write;
    ///
    /// let q: shoal::Queue<()> = shoal::Queue::new()?;
    /// let mut slot = q.reserve(11)?;
    /// slot.write_all(b"hello")?;
    /// slot.write_all(b" world")?;
    /// slot.commit();
    /// assert_eq!(q.get_bytes()?, b"hello world");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&self, len: usize) -> Result<WriteSlot<'_>, PutError<()>> {
        self.core.reserve(len, Wait::forever())
    }

    /// [`reserve`](Queue::reserve) waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, `TooLarge`, `Closed`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// use shoal::channel::{PutError, Queue};
    ///
    /// let q: Queue<()> = Queue::with_maxsize(1)?;
    /// let slot = q.reserve_timeout(4, Duration::from_millis(10))?;
    /// slot.commit();
    /// let full = q.reserve_timeout(4, Duration::from_millis(10));
    /// assert!(matches!(full, Err(PutError::Timeout(()))));
    /// assert_eq!(q.get_bytes()?, [0u8; 4]); // unwritten bytes are zeroes
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve_timeout(
        &self,
        len: usize,
        timeout: Duration,
    ) -> Result<WriteSlot<'_>, PutError<()>> {
        self.core.reserve(len, Wait::timeout(timeout))
    }

    /// [`reserve`](Queue::reserve) without waiting.
    ///
    /// # Errors
    /// `Full`, `TooLarge`, `Closed`.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{PutError, Queue};
    ///
    /// let q: Queue<()> = Queue::with_maxsize(1)?;
    /// let mut slot = q.try_reserve(3)?;
    /// slot.chunk_mut().copy_from_slice(b"abc");
    /// slot.advance(3);
    /// slot.commit();
    /// assert!(matches!(q.try_reserve(3), Err(PutError::Full(()))));
    /// assert_eq!(q.get_bytes()?, b"abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_reserve(&self, len: usize) -> Result<WriteSlot<'_>, PutError<()>> {
        self.core.reserve(len, Wait::No)
    }

    /// The longest message [`reserve`](Queue::reserve) accepts: half the ring.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{PutError, Queue};
    ///
    /// let q: Queue<()> = Queue::builder().capacity_bytes(64 * 1024).build()?;
    /// assert_eq!(q.max_reserve(), q.capacity_bytes() / 2);
    /// q.try_reserve(q.max_reserve())?.commit();
    /// let too_long = q.try_reserve(q.max_reserve() + 1);
    /// assert!(matches!(too_long, Err(PutError::TooLarge(()))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_reserve(&self) -> usize {
        self.core.max_inline()
    }

    /// Messages in the queue now (Python's `qsize()`; a snapshot, others may change it
    /// at once).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// q.put(1)?;
    /// q.put(2)?;
    /// assert_eq!(q.len(), 2);
    /// q.get()?;
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether the queue holds no message now (Python's `empty()`).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// assert!(q.is_empty());
    /// q.put(1)?;
    /// assert!(!q.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.core.used_cells() == 0
    }

    /// Whether a small message would not fit now (message bound reached, or no free cell).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::with_maxsize(1)?;
    /// assert!(!q.is_full());
    /// q.put(1)?;
    /// assert!(q.is_full());
    /// q.get()?;
    /// assert!(!q.is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        let (core, r) = (&self.core, self.core.ring());
        (r.max_messages() != 0 && core.len() as u64 >= r.max_messages())
            || core.used_cells() >= r.cell_count()
    }

    /// Payload bytes the ring holds (messages longer than half of it are streamed).
    ///
    /// # Examples
    /// ```
    /// let small: shoal::Queue<()> = shoal::Queue::builder().capacity_bytes(8 * 1024).build()?;
    /// let default: shoal::Queue<()> = shoal::Queue::new()?;
    /// assert!(small.capacity_bytes() <= 8 * 1024);
    /// assert!(small.capacity_bytes() < default.capacity_bytes());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity_bytes(&self) -> usize {
        self.core.capacity_bytes()
    }

    /// The message bound (Python's `maxsize`), 0 when bounded only by bytes.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shoal::Queue::<u8>::with_maxsize(5)?.maxsize(), 5);
    /// assert_eq!(shoal::Queue::<u8>::new()?.maxsize(), 0); // bounded by bytes only
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.core.ring().max_messages() as usize
    }

    /// The codec of typed messages.
    ///
    /// # Examples
    /// ```
    /// use shoal::codec::Codec;
    ///
    /// let q: shoal::Queue<u8> = shoal::Queue::builder().codec(Codec::MessagePack).build()?;
    /// assert_eq!(q.codec(), Codec::MessagePack);
    /// assert_eq!(q.clone().codec(), Codec::MessagePack); // shared by every handle
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn codec(&self) -> Codec {
        self.core.codec
    }

    /// Closes the queue for every process: later puts fail with `Closed`; gets take what
    /// is left, then fail with `Closed`; every blocked caller wakes.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// q.put(1)?;
    /// q.close();
    /// assert_eq!(q.put(2).unwrap_err().into_inner(), 2); // later puts fail
    /// assert_eq!(q.get()?, 1); // gets take what is left...
    /// assert!(q.get().unwrap_err().is_closed()); // ...then fail
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.core.ring().close();
    }

    /// Whether the queue was closed (by any process).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// let other = q.clone();
    /// assert!(!q.is_closed());
    /// other.close();
    /// assert!(q.is_closed()); // closing through any handle closes the queue
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.core.ring().is_closed()
    }

    /// A readiness descriptor for `epoll`/tokio: readable after a put, while the
    /// returned guard lives (putters signal it only when someone watches).
    ///
    /// Use it edge-style: call [`Readiness::clear`], then take messages with `try_get`
    /// until `Empty`, then wait for readability again.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::channel::Queue<u8> = shoal::channel::Queue::new()?;
    /// let ready = q.readiness();
    /// assert!(!ready.wait(std::time::Duration::ZERO)?);
    /// q.put(1)?;
    /// assert!(ready.wait(std::time::Duration::from_secs(5))?);
    /// ready.clear();
    /// assert_eq!(q.try_get()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn readiness(&self) -> Readiness {
        Readiness::new(Arc::clone(&self.core))
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Puts `msg`, blocking while the queue is full.
    ///
    /// # Errors
    /// [`PutError::Closed`] (with the message) after [`close`](Queue::close);
    /// [`PutError::Encode`] when the codec cannot encode it.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<Vec<String>> = shoal::Queue::new()?;
    /// q.put(vec!["a".to_owned(), "b".to_owned()])?;
    /// assert_eq!(q.get()?, ["a", "b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put(&self, msg: T) -> Result<(), PutError<T>> {
        self.core.put_value(msg, Wait::forever())
    }

    /// Puts `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`PutError::Timeout`] with the message when the queue stayed full; `Closed`;
    /// `Encode`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// use shoal::channel::{PutError, Queue};
    ///
    /// let q: Queue<u8> = Queue::with_maxsize(1)?;
    /// q.put_timeout(1, Duration::from_millis(10))?;
    /// assert_eq!(q.put_timeout(2, Duration::from_millis(10)), Err(PutError::Timeout(2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_timeout(&self, msg: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.core.put_value(msg, Wait::timeout(timeout))
    }

    /// Puts `msg` if there is room now.
    ///
    /// # Errors
    /// [`PutError::Full`] with the message; `Closed`; `Encode`.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{PutError, Queue};
    ///
    /// let q: Queue<u8> = Queue::with_maxsize(1)?;
    /// q.try_put(1)?;
    /// assert_eq!(q.try_put(2), Err(PutError::Full(2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_put(&self, msg: T) -> Result<(), PutError<T>> {
        self.core.put_value(msg, Wait::No)
    }

    /// Puts every message of `msgs` in order, claiming ring space for many at once;
    /// blocks while full.
    ///
    /// # Errors
    /// `Closed` with the messages not put (in order); `Encode` with all of them (none
    /// was put).
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{PutError, Queue};
    ///
    /// let q: Queue<u32> = Queue::new()?;
    /// q.put_many(vec![1, 2, 3])?;
    /// assert_eq!(q.len(), 3);
    /// assert_eq!(q.get()?, 1);
    /// q.close();
    /// assert_eq!(q.put_many(vec![4, 5]), Err(PutError::Closed(vec![4, 5])));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_many(&self, msgs: Vec<T>) -> Result<(), PutError<Vec<T>>> {
        self.core.put_values(msgs, Wait::forever())
    }

    /// Takes the next message, blocking while the queue is empty.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the queue is closed and drained; [`GetError::Decode`]
    /// when the message is not a valid `T` (it was consumed; its bytes are returned).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<(u8, bool)> = shoal::Queue::new()?;
    /// let q2 = q.clone();
    /// std::thread::spawn(move || q2.put((3, true)).unwrap());
    /// assert_eq!(q.get()?, (3, true)); // blocks until it comes
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self) -> Result<T, GetError> {
        self.core.get_value(Wait::forever())
    }

    /// Takes the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`]; `Closed`; `Decode`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// assert!(q.get_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
    /// q.put(4)?;
    /// assert_eq!(q.get_timeout(Duration::from_millis(10))?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.core.get_value(Wait::timeout(timeout))
    }

    /// Takes the next message if there is one.
    ///
    /// # Errors
    /// [`GetError::Empty`]; `Closed`; `Decode`.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// assert!(q.try_get().unwrap_err().is_empty());
    /// q.put(4)?;
    /// assert_eq!(q.try_get()?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_get(&self) -> Result<T, GetError> {
        self.core.get_value(Wait::No)
    }

    /// Takes up to `max` messages: blocks for the first (at most `timeout`, forever when
    /// `None`), then takes those already there, claiming consecutive messages with one
    /// atomic operation.
    ///
    /// # Errors
    /// As [`get_timeout`](Queue::get_timeout) for the first message. A message that
    /// cannot be decoded fails the whole call with [`GetError::Decode`], and the other
    /// messages taken in the same call are lost with it: use [`get`](Queue::get) where
    /// producers may send undecodable bytes.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::Queue<u32> = shoal::Queue::new()?;
    /// q.put_many((1..=5).collect())?;
    /// assert_eq!(q.get_many(3, None)?, [1, 2, 3]);
    /// assert_eq!(q.get_many(10, Some(Duration::from_millis(10)))?, [4, 5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many(&self, max: usize, timeout: Option<Duration>) -> Result<Vec<T>, GetError> {
        let wait = timeout.map_or(Wait::forever(), Wait::timeout);
        self.core.get_values(max, wait)
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_endpoint(&self.core, TAG_QUEUE, "Queue", s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Queue<T>, D::Error> {
        Ok(Queue::from_core(deserialize_endpoint(d, TAG_QUEUE)?))
    }
}

/// A registration for readiness signals and the descriptor that carries them
/// (see [`Queue::readiness`]). Dropping it stops the signals.
///
/// With tokio, wrap it in `tokio::io::unix::AsyncFd` and loop: `readable().await`,
/// [`clear`](Readiness::clear) (and the guard's `clear_ready`), then `try_get` until
/// `Empty`.
pub struct Readiness {
    core: Arc<Endpoint>,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}

impl Readiness {
    pub(crate) fn new(core: Arc<Endpoint>) -> Readiness {
        core.ring().watch(true);
        Readiness { core }
    }

    /// Resets the descriptor to "not readable" (call before draining with `try_get`).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// let ready = q.readiness();
    /// q.put(1)?;
    /// assert!(ready.wait(Duration::from_millis(10))?);
    /// ready.clear();
    /// assert!(!ready.wait(Duration::ZERO)?); // not readable until the next put
    /// while q.try_get().is_ok() {} // drain after clearing, so no put is missed
    /// q.put(2)?;
    /// assert!(ready.wait(Duration::from_millis(10))?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) {
        let _ = sys::eventfd_drain(self.core.ring().event_fd());
    }

    /// Waits until the descriptor is readable or `timeout` passes; returns whether it
    /// is readable.
    ///
    /// # Errors
    /// When `poll` fails.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// let ready = q.readiness();
    /// assert!(!ready.wait(Duration::from_millis(10))?); // nothing put yet
    /// q.put(1)?;
    /// assert!(ready.wait(Duration::from_millis(10))?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self, timeout: Duration) -> std::io::Result<bool> {
        Ok(sys::poll_readable(&[self.core.ring().event_fd()], Some(timeout))?[0])
    }
}

impl AsFd for Readiness {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.ring().event_fd()
    }
}

/// For event loops that take raw descriptors (tokio's `AsyncFd`, mio's `SourceFd`).
impl std::os::fd::AsRawFd for Readiness {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.core.ring().event_fd().as_raw_fd()
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        self.core.ring().watch(false);
    }
}
