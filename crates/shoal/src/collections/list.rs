//! [`SharedList`]: a vector in shared memory, and [`RawList`], its bytes-level form.
//!
//! A generation's heap holds the items (`[len: u64][bytes]`, 8-byte aligned) and index
//! blocks (`[len: u64][capacity: u64][offset: u64; capacity]`); the header's `used`
//! word names the current block. Appending writes the item, its offset past the
//! block's length, then the length (the publishing store); every other change writes a
//! new block and publishes it by storing its offset in `used`.
#![deny(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::Codec;
use crate::collections::arena::{Arena, Shape, Txn};
use crate::collections::layout::{DataHeader, Generation};
use crate::collections::{CollectionError, Format};

/// Index capacity of a new list.
const FIRST_CAP: u64 = 64;
/// Heap bytes of a new list.
const FIRST_HEAP: usize = 64 * 1024;
const HEAP_START: u64 = DataHeader::SIZE as u64;

fn item_len(len: usize) -> usize {
    (8 + len).next_multiple_of(8)
}

fn block_len(cap: u64) -> usize {
    16 + cap as usize * 8
}

/// Writes the first (empty) index block of a new generation at `at`.
pub(crate) fn init_index(g: &Generation, at: u64) -> Result<(), CollectionError> {
    write_block(g, at, FIRST_CAP, &[])?;
    g.store(
        DataHeader::HEAP_USED as u64,
        at + block_len(FIRST_CAP) as u64,
    )?;
    g.store(DataHeader::USED as u64, at)
}

fn write_block(g: &Generation, at: u64, cap: u64, offsets: &[u64]) -> Result<(), CollectionError> {
    let mut bytes = Vec::with_capacity(16 + offsets.len() * 8);
    bytes.extend_from_slice(&(offsets.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&cap.to_le_bytes());
    for o in offsets {
        bytes.extend_from_slice(&o.to_le_bytes());
    }
    g.write(at, &bytes)
}

struct Block {
    at: u64,
    len: u64,
    cap: u64,
}

fn corrupt(g: &Generation, reason: String) -> CollectionError {
    CollectionError::Corrupt {
        name: g.segment().name().unwrap_or("<anonymous>").to_owned(),
        reason,
    }
}

fn block(g: &Generation) -> Result<Block, CollectionError> {
    let at = g.load(DataHeader::USED as u64)?;
    let len = g.load(at)?;
    let cap = g.load(at + 8)?;
    if len > cap
        || at
            .checked_add(block_len(cap) as u64)
            .is_none_or(|e| e > g.len() as u64)
    {
        return Err(corrupt(
            g,
            format!("its index block at {at} claims {len} of {cap} items"),
        ));
    }
    Ok(Block { at, len, cap })
}

fn offsets(g: &Generation, b: &Block) -> Result<Vec<u64>, CollectionError> {
    (0..b.len).map(|i| g.load(b.at + 16 + i * 8)).collect()
}

fn read_item(g: &Generation, off: u64) -> Result<Vec<u8>, CollectionError> {
    let len = g.load(off)? as usize;
    if len > g.len() {
        return Err(corrupt(g, format!("the item at {off} claims {len} bytes")));
    }
    let mut out = vec![0u8; len];
    g.read(off + 8, &mut out)?;
    Ok(out)
}

fn check_index(index: usize, len: u64) -> Result<u64, CollectionError> {
    if (index as u64) < len {
        Ok(index as u64)
    } else {
        Err(CollectionError::IndexOutOfRange {
            index,
            len: len as usize,
        })
    }
}

/// Moves the items into a new generation with room for `extra` more heap bytes and
/// `cap` index entries.
fn grow(txn: &mut Txn<'_>, extra: usize, cap: u64) -> Result<(), CollectionError> {
    let g = txn.generation();
    let b = block(g)?;
    let offs = offsets(g, &b)?;
    let mut live = 0usize;
    for &o in &offs {
        live += item_len(g.load(o)? as usize);
    }
    let cap = cap.max(b.len * 2).max(FIRST_CAP);
    let heap = (live * 4 + extra * 2 + block_len(cap) * 2).max(FIRST_HEAP);
    let next = txn.build(HEAP_START as usize + heap, 0, HEAP_START, |next| {
        let mut at = HEAP_START + block_len(cap) as u64;
        let mut moved = Vec::with_capacity(offs.len());
        for &o in &offs {
            let item = read_item(g, o)?;
            next.write(at, &(item.len() as u64).to_le_bytes())?;
            next.write(at + 8, &item)?;
            moved.push(at);
            at += item_len(item.len()) as u64;
        }
        write_block(next, HEAP_START, cap, &moved)?;
        next.store(DataHeader::HEAP_USED as u64, at)?;
        next.store(DataHeader::USED as u64, HEAP_START)
    })?;
    txn.publish(next)
}

/// Writes `value` as a new item in the heap (not yet referenced), growing first when
/// it and `reserve` more bytes do not fit; returns its offset.
fn write_item(
    txn: &mut Txn<'_>,
    value: &[u8],
    reserve: usize,
    cap: u64,
) -> Result<u64, CollectionError> {
    let need = item_len(value.len());
    loop {
        let g = txn.generation();
        let used = g.load(DataHeader::HEAP_USED as u64)?;
        if used as usize + need + reserve > g.len() {
            grow(txn, need + reserve, cap)?;
            continue;
        }
        g.write(used, &(value.len() as u64).to_le_bytes())?;
        g.write(used + 8, value)?;
        g.store(DataHeader::HEAP_USED as u64, used + need as u64)?;
        return Ok(used);
    }
}

/// Publishes a new index block holding `offs`.
fn replace_block(txn: &mut Txn<'_>, offs: &[u64]) -> Result<(), CollectionError> {
    let cap = (offs.len() as u64).max(FIRST_CAP).next_power_of_two();
    let need = block_len(cap);
    let g = txn.generation();
    let used = g.load(DataHeader::HEAP_USED as u64)?;
    if used as usize + need > g.len() {
        // The callers reserved the room before reading `offs`.
        return Err(corrupt(
            g,
            "an index block did not fit in the room reserved".to_owned(),
        ));
    }
    write_block(g, used, cap, offs)?;
    g.store(DataHeader::HEAP_USED as u64, used + need as u64)?;
    g.store(DataHeader::USED as u64, used)
}

/// Makes room for a new index block of `cap` entries (growing the generation when the
/// heap is short); after this, [`replace_block`] fits.
fn reserve_block(txn: &mut Txn<'_>, cap: u64) -> Result<(), CollectionError> {
    let need = block_len(cap.max(FIRST_CAP).next_power_of_two());
    let g = txn.generation();
    let used = g.load(DataHeader::HEAP_USED as u64)?;
    if used as usize + need > g.len() {
        grow(txn, need, cap)?;
    }
    Ok(())
}

fn push(txn: &mut Txn<'_>, value: &[u8]) -> Result<(), CollectionError> {
    let b = block(txn.generation())?;
    let reserve = if b.len < b.cap {
        0
    } else {
        block_len((b.cap * 2).max(FIRST_CAP))
    };
    let off = write_item(txn, value, reserve, b.len + 1)?;
    let g = txn.generation();
    let b = block(g)?;
    if b.len < b.cap {
        g.store(b.at + 16 + b.len * 8, off)?;
        // The publishing store.
        return g.store(b.at, b.len + 1);
    }
    let mut offs = offsets(g, &b)?;
    offs.push(off);
    replace_block(txn, &offs)
}

fn no_repair(_: &mut Txn<'_>) -> Result<(), CollectionError> {
    // Every change publishes with its last store: nothing is left to repair.
    Ok(())
}

/// A list in shared memory whose items are bytes, as stored: what [`SharedList`] is
/// built on, and how a program reads a list of another language (Python's
/// `shoal.SharedList` stores pickled items, [`Format::Pickle`], or raw bytes,
/// [`Format::Raw`]).
///
/// # Examples
/// ```
/// use shoal::collections::{Format, RawList};
///
/// let list = RawList::create(None, Format::Raw)?;
/// list.push(b"one")?;
/// list.insert(0, b"zero")?;
/// let other = RawList::open(list.name(), Some(Format::Raw))?; // from any process
/// assert_eq!(other.to_vec()?, vec![b"zero".to_vec(), b"one".to_vec()]);
/// # Ok::<(), shoal::collections::CollectionError>(())
/// ```
#[derive(Clone)]
pub struct RawList {
    arena: Arc<Arena>,
}

impl fmt::Debug for RawList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawList")
            .field("name", &self.name())
            .field("format", &self.format())
            .finish()
    }
}

impl RawList {
    /// Creates an empty list under `name` (a generated `shoal-<pid>-c<id>` when
    /// `None`), as [`RawDict::create`](crate::collections::RawDict::create) does.
    ///
    /// # Errors
    /// [`CollectionError::Shm`] when the name is taken or invalid.
    pub fn create(name: Option<&str>, format: Format) -> Result<RawList, CollectionError> {
        let arena = Arena::create(
            name,
            Shape::List,
            format,
            (HEAP_START as usize + FIRST_HEAP, 0, HEAP_START),
        )?;
        Ok(RawList {
            arena: Arc::new(arena),
        })
    }

    /// Opens the list `name` made by any process (its format checked when given).
    ///
    /// # Errors
    /// As [`RawDict::open`](crate::collections::RawDict::open).
    pub fn open(name: &str, format: Option<Format>) -> Result<RawList, CollectionError> {
        Ok(RawList {
            arena: Arc::new(Arena::open(name, Shape::List, format)?),
        })
    }

    /// The list's name.
    pub fn name(&self) -> &str {
        self.arena.name()
    }

    /// The format its items are stored in.
    pub fn format(&self) -> Format {
        self.arena.format()
    }

    /// How many times this handle (or a clone) took the lock from a holder that died
    /// holding it, and repaired what it left: a count for monitoring.
    pub fn recoveries(&self) -> u64 {
        self.arena.recoveries()
    }

    fn locked<R>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R, CollectionError>,
    ) -> Result<R, CollectionError> {
        self.arena.locked(no_repair, false, f)
    }

    fn writing<R>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R, CollectionError>,
    ) -> Result<R, CollectionError> {
        self.arena.locked(no_repair, true, f)
    }

    /// A counter that changes with every update of the container by any process: even
    /// between updates, odd during one (or after its writer died mid-update, until the
    /// next operation). The same even value read twice means nothing changed in
    /// between, which lets a reader keep what it decoded.
    pub fn version(&self) -> u64 {
        self.arena.version()
    }

    /// The number of items.
    ///
    /// # Errors
    /// [`CollectionError::Corrupt`] when another program damaged the list's memory;
    /// [`CollectionError::Shm`] when a segment was truncated or cannot be opened.
    pub fn len(&self) -> Result<usize, CollectionError> {
        self.locked(|txn| Ok(block(txn.generation())?.len as usize))
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    /// As [`len`](RawList::len).
    pub fn is_empty(&self) -> Result<bool, CollectionError> {
        Ok(self.len()? == 0)
    }

    /// The item at `index`.
    ///
    /// # Errors
    /// [`CollectionError::IndexOutOfRange`] past the end; those of [`len`](RawList::len).
    pub fn get(&self, index: usize) -> Result<Vec<u8>, CollectionError> {
        self.locked(|txn| {
            let g = txn.generation();
            let b = block(g)?;
            let i = check_index(index, b.len)?;
            read_item(g, g.load(b.at + 16 + i * 8)?)
        })
    }

    /// Appends an item.
    ///
    /// # Errors
    /// Those of [`len`](RawList::len), and [`CollectionError::Shm`] when the list must
    /// grow and no memory is left.
    pub fn push(&self, value: &[u8]) -> Result<(), CollectionError> {
        self.writing(|txn| push(txn, value))
    }

    /// Appends every item under one hold of the lock.
    ///
    /// # Errors
    /// As [`push`](RawList::push).
    pub fn extend<'a>(
        &self,
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), CollectionError> {
        self.writing(|txn| {
            for v in values {
                push(txn, v)?;
            }
            Ok(())
        })
    }

    /// Replaces the item at `index`, returning the old one.
    ///
    /// # Errors
    /// As [`get`](RawList::get) and [`push`](RawList::push).
    pub fn set(&self, index: usize, value: &[u8]) -> Result<Vec<u8>, CollectionError> {
        self.writing(|txn| {
            let old = {
                let g = txn.generation();
                let b = block(g)?;
                let i = check_index(index, b.len)?;
                read_item(g, g.load(b.at + 16 + i * 8)?)?
            };
            let off = write_item(txn, value, 0, 0)?;
            let g = txn.generation();
            let b = block(g)?;
            g.store(b.at + 16 + index as u64 * 8, off)?;
            Ok(old)
        })
    }

    /// Replaces the item at `index` by `f(current)` in one step under the lock.
    /// `f` must not use this list.
    ///
    /// # Errors
    /// As [`set`](RawList::set).
    pub fn update(
        &self,
        index: usize,
        f: impl FnOnce(Vec<u8>) -> Vec<u8>,
    ) -> Result<Vec<u8>, CollectionError> {
        self.writing(|txn| {
            let cur = {
                let g = txn.generation();
                let b = block(g)?;
                let i = check_index(index, b.len)?;
                read_item(g, g.load(b.at + 16 + i * 8)?)?
            };
            let new = f(cur);
            let off = write_item(txn, &new, 0, 0)?;
            let g = txn.generation();
            let b = block(g)?;
            g.store(b.at + 16 + index as u64 * 8, off)?;
            Ok(new)
        })
    }

    /// Inserts an item before `index` (`index == len` appends).
    ///
    /// # Errors
    /// [`CollectionError::IndexOutOfRange`] past `len`; those of
    /// [`push`](RawList::push).
    pub fn insert(&self, index: usize, value: &[u8]) -> Result<(), CollectionError> {
        self.writing(|txn| {
            let len = block(txn.generation())?.len;
            if index as u64 > len {
                return Err(CollectionError::IndexOutOfRange {
                    index,
                    len: len as usize,
                });
            }
            let cap = (len + 1).max(FIRST_CAP).next_power_of_two();
            // The reserve keeps room for the new block: no growth between the item and
            // its block.
            let off = write_item(txn, value, block_len(cap), len + 1)?;
            let g = txn.generation();
            let mut offs = offsets(g, &block(g)?)?;
            offs.insert(index, off);
            replace_block(txn, &offs)
        })
    }

    /// Removes and returns the item at `index`.
    ///
    /// # Errors
    /// As [`get`](RawList::get).
    pub fn remove(&self, index: usize) -> Result<Vec<u8>, CollectionError> {
        self.writing(|txn| {
            let len = block(txn.generation())?.len;
            check_index(index, len)?;
            reserve_block(txn, len.max(1))?;
            let g = txn.generation();
            let mut offs = offsets(g, &block(g)?)?;
            let old = read_item(g, offs.remove(index))?;
            replace_block(txn, &offs)?;
            Ok(old)
        })
    }

    /// Removes and returns the last item, `None` when empty.
    ///
    /// # Errors
    /// As [`len`](RawList::len).
    pub fn pop(&self) -> Result<Option<Vec<u8>>, CollectionError> {
        self.writing(|txn| {
            let g = txn.generation();
            let b = block(g)?;
            if b.len == 0 {
                return Ok(None);
            }
            let old = read_item(g, g.load(b.at + 16 + (b.len - 1) * 8)?)?;
            // Shrinking the length publishes the removal.
            g.store(b.at, b.len - 1)?;
            Ok(Some(old))
        })
    }

    /// Removes every item at once.
    ///
    /// # Errors
    /// As [`push`](RawList::push).
    pub fn clear(&self) -> Result<(), CollectionError> {
        self.writing(|txn| {
            let next = txn.build(HEAP_START as usize + FIRST_HEAP, 0, HEAP_START, |next| {
                init_index(next, HEAP_START)
            })?;
            txn.publish(next)
        })
    }

    /// A snapshot of every item, in order, taken under the lock.
    ///
    /// # Errors
    /// As [`len`](RawList::len).
    pub fn to_vec(&self) -> Result<Vec<Vec<u8>>, CollectionError> {
        self.locked(|txn| {
            let g = txn.generation();
            let b = block(g)?;
            offsets(g, &b)?
                .into_iter()
                .map(|o| read_item(g, o))
                .collect()
        })
    }

    /// A snapshot of the items in `start..end` (clamped to the list's length).
    ///
    /// # Errors
    /// As [`len`](RawList::len).
    pub fn slice(&self, start: usize, end: usize) -> Result<Vec<Vec<u8>>, CollectionError> {
        self.locked(|txn| {
            let g = txn.generation();
            let b = block(g)?;
            let end = (end as u64).min(b.len);
            let start = (start as u64).min(end);
            (start..end)
                .map(|i| read_item(g, g.load(b.at + 16 + i * 8)?))
                .collect()
        })
    }
}

/// A `Vec` in shared memory, for every process on the machine: items through serde,
/// reached by name from unrelated processes (Python's `Manager().list()` without the
/// server round trip).
///
/// Every operation holds the list's robust lock; every change is published by one
/// atomic store after the new item is whole, so a holder killed at any instant leaves
/// the list as it was before or after its operation. See
/// [`SharedDict`](crate::collections::SharedDict) for growth and crashes.
///
/// # Examples
/// ```
/// use shoal::collections::SharedList;
///
/// let log: SharedList<String> = SharedList::new()?;
/// log.push(&"started".to_owned())?;
/// log.push(&"working".to_owned())?;
/// log.insert(0, &"booted".to_owned())?;
///
/// let same: SharedList<String> = SharedList::open(log.name())?; // any process
/// assert_eq!(same.get(1)?, "started");
/// assert_eq!(same.pop()?.as_deref(), Some("working"));
/// assert_eq!(same.iter()?.collect::<Vec<_>>(), ["booted", "started"]);
/// # Ok::<(), shoal::collections::CollectionError>(())
/// ```
pub struct SharedList<T> {
    raw: RawList,
    codec: Codec,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for SharedList<T> {
    fn clone(&self) -> Self {
        SharedList {
            raw: self.raw.clone(),
            codec: self.codec,
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SharedList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedList")
            .field("name", &self.raw.name())
            .field("format", &self.raw.format())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> SharedList<T> {
    /// Creates an empty list under a generated name, items in bincode.
    ///
    /// # Errors
    /// As [`create_named_with`](SharedList::create_named_with).
    pub fn new() -> Result<SharedList<T>, CollectionError> {
        SharedList::create(None, Codec::Bincode)
    }

    /// Creates an empty list named `name`, items in bincode.
    ///
    /// # Errors
    /// As [`create_named_with`](SharedList::create_named_with).
    pub fn create_named(name: &str) -> Result<SharedList<T>, CollectionError> {
        SharedList::create(Some(name), Codec::Bincode)
    }

    /// Creates an empty list named `name` whose items are encoded with `codec`; this
    /// handle and its clones remove the names when the last is dropped in this process.
    ///
    /// # Errors
    /// [`CollectionError::Shm`] when the name is taken or invalid.
    pub fn create_named_with(name: &str, codec: Codec) -> Result<SharedList<T>, CollectionError> {
        SharedList::create(Some(name), codec)
    }

    fn create(name: Option<&str>, codec: Codec) -> Result<SharedList<T>, CollectionError> {
        Ok(SharedList {
            raw: RawList::create(name, Format::from_codec(codec))?,
            codec,
            _t: PhantomData,
        })
    }

    /// Opens the list `name` made by any process, in the codec it was made with.
    ///
    /// # Errors
    /// [`CollectionError::WrongFormat`] when its items are not in a serde codec (use
    /// [`RawList`]); [`CollectionError::Version`]; [`CollectionError::Shm`] when there
    /// is no such list.
    pub fn open(name: &str) -> Result<SharedList<T>, CollectionError> {
        let raw = RawList::open(name, None)?;
        let codec = raw
            .format()
            .codec()
            .ok_or_else(|| CollectionError::WrongFormat {
                name: name.to_owned(),
                found: raw.format(),
                expected: Format::Bincode,
            })?;
        Ok(SharedList {
            raw,
            codec,
            _t: PhantomData,
        })
    }

    /// Opens the list `name`, refusing it unless its items are encoded with `codec`.
    ///
    /// # Errors
    /// [`CollectionError::WrongFormat`], and those of [`open`](SharedList::open).
    pub fn open_with(name: &str, codec: Codec) -> Result<SharedList<T>, CollectionError> {
        Ok(SharedList {
            raw: RawList::open(name, Some(Format::from_codec(codec)))?,
            codec,
            _t: PhantomData,
        })
    }

    /// The list's name.
    pub fn name(&self) -> &str {
        self.raw.name()
    }

    /// The bytes-level list underneath.
    pub fn raw(&self) -> &RawList {
        &self.raw
    }

    fn codec_error(&self, e: crate::codec::CodecError) -> CollectionError {
        CollectionError::Codec {
            name: self.name().to_owned(),
            source: e,
        }
    }

    fn encode(&self, v: &T) -> Result<Vec<u8>, CollectionError> {
        self.codec.encode(v).map_err(|e| self.codec_error(e))
    }

    fn decode(&self, b: &[u8]) -> Result<T, CollectionError> {
        self.codec.decode(b).map_err(|e| self.codec_error(e))
    }

    /// The number of items.
    ///
    /// # Errors
    /// As [`RawList::len`].
    pub fn len(&self) -> Result<usize, CollectionError> {
        self.raw.len()
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    /// As [`RawList::len`].
    pub fn is_empty(&self) -> Result<bool, CollectionError> {
        self.raw.is_empty()
    }

    /// The item at `index`.
    ///
    /// # Errors
    /// [`CollectionError::IndexOutOfRange`] past the end; [`CollectionError::Codec`]
    /// when the stored bytes are not a `T`.
    pub fn get(&self, index: usize) -> Result<T, CollectionError> {
        self.decode(&self.raw.get(index)?)
    }

    /// Appends an item.
    ///
    /// # Errors
    /// As [`RawList::push`], and [`CollectionError::Codec`].
    pub fn push(&self, value: &T) -> Result<(), CollectionError> {
        self.raw.push(&self.encode(value)?)
    }

    /// Appends every item under one hold of the lock.
    ///
    /// # Errors
    /// As [`push`](SharedList::push).
    pub fn extend<'a>(&self, values: impl IntoIterator<Item = &'a T>) -> Result<(), CollectionError>
    where
        T: 'a,
    {
        let encoded = values
            .into_iter()
            .map(|v| self.encode(v))
            .collect::<Result<Vec<_>, _>>()?;
        self.raw.extend(encoded.iter().map(Vec::as_slice))
    }

    /// Replaces the item at `index`, returning the old one.
    ///
    /// # Errors
    /// As [`get`](SharedList::get).
    pub fn set(&self, index: usize, value: &T) -> Result<T, CollectionError> {
        let old = self.raw.set(index, &self.encode(value)?)?;
        self.decode(&old)
    }

    /// Replaces the item at `index` by `f(current)` in one step under the lock; returns
    /// the new item. `f` must not use this list.
    ///
    /// # Errors
    /// As [`get`](SharedList::get); an item that cannot be decoded is left as it was.
    ///
    /// # Examples
    /// ```
    /// use shoal::collections::SharedList;
    ///
    /// let counts: SharedList<u64> = SharedList::new()?;
    /// counts.push(&0)?;
    /// counts.update(0, |n| n + 5)?;
    /// assert_eq!(counts.get(0)?, 5);
    /// # Ok::<(), shoal::collections::CollectionError>(())
    /// ```
    pub fn update(&self, index: usize, f: impl FnOnce(T) -> T) -> Result<T, CollectionError> {
        let mut failure = None;
        let mut out = None;
        self.raw.update(index, |bytes| match self.decode(&bytes) {
            Ok(v) => {
                let new = f(v);
                match self.encode(&new) {
                    Ok(b) => {
                        out = Some(new);
                        b
                    }
                    Err(e) => {
                        failure = Some(e);
                        bytes
                    }
                }
            }
            Err(e) => {
                failure = Some(e);
                bytes
            }
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out.expect("the update ran")),
        }
    }

    /// Inserts an item before `index`.
    ///
    /// # Errors
    /// As [`RawList::insert`].
    pub fn insert(&self, index: usize, value: &T) -> Result<(), CollectionError> {
        self.raw.insert(index, &self.encode(value)?)
    }

    /// Removes and returns the item at `index`.
    ///
    /// # Errors
    /// As [`get`](SharedList::get).
    pub fn remove(&self, index: usize) -> Result<T, CollectionError> {
        self.decode(&self.raw.remove(index)?)
    }

    /// Removes and returns the last item.
    ///
    /// # Errors
    /// As [`get`](SharedList::get).
    pub fn pop(&self) -> Result<Option<T>, CollectionError> {
        self.raw.pop()?.map(|b| self.decode(&b)).transpose()
    }

    /// Removes every item at once.
    ///
    /// # Errors
    /// As [`RawList::clear`].
    pub fn clear(&self) -> Result<(), CollectionError> {
        self.raw.clear()
    }

    /// A snapshot of the items, in order, taken under the lock.
    ///
    /// # Errors
    /// As [`get`](SharedList::get), for any item.
    pub fn iter(&self) -> Result<std::vec::IntoIter<T>, CollectionError> {
        let items = self.raw.to_vec()?;
        let decoded = items
            .iter()
            .map(|b| self.decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(decoded.into_iter())
    }
}

/// A list travels as its name: the receiver opens it.
impl<T> Serialize for SharedList<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.raw.name(), self.raw.format().id()).serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for SharedList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedList<T>, D::Error> {
        let (name, _format) = <(String, u32)>::deserialize(d)?;
        SharedList::open(&name).map_err(serde::de::Error::custom)
    }
}
