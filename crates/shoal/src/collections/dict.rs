//! [`SharedDict`]: a hash map in shared memory, and [`RawDict`], its bytes-level form.
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

/// A slot that never held an entry: probing stops here.
const EMPTY: u64 = 0;
/// A slot whose entry was removed: probing goes on past it.
const TOMBSTONE: u64 = 1;
/// Bytes before an entry's key: hash (8), key length (4), value length (4).
const ENTRY_HEAD: usize = 16;
/// Slots of a new dict.
const FIRST_SLOTS: u64 = 64;
/// Heap bytes of a new dict.
const FIRST_HEAP: usize = 64 * 1024;

fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

fn entry_len(key: usize, value: usize) -> usize {
    (ENTRY_HEAD + key + value).next_multiple_of(8)
}

fn heap_start(slots: u64) -> u64 {
    DataHeader::SIZE as u64 + slots * 8
}

/// A key and its value, as stored (see [`RawDict::entries`]).
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// `Send` and `Sync` whatever `K` and `V` are: a dict holds no `K` or `V`, only bytes.
type Invariant<K, V> = fn(K, V) -> (K, V);

/// One entry, as read from a generation.
struct Entry {
    hash: u64,
    key_len: usize,
    value_len: usize,
}

fn read_entry(g: &Generation, off: u64) -> Result<Entry, CollectionError> {
    let mut head = [0u8; ENTRY_HEAD];
    g.read(off, &mut head)?;
    let hash = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let key_len = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
    let value_len = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes")) as usize;
    Ok(Entry {
        hash,
        key_len,
        value_len,
    })
}

fn read_bytes(g: &Generation, off: u64, len: usize) -> Result<Vec<u8>, CollectionError> {
    let mut out = vec![0u8; len];
    g.read(off, &mut out)?;
    Ok(out)
}

fn slot_off(i: u64) -> u64 {
    DataHeader::SIZE as u64 + i * 8
}

/// Where a key is, or would go.
struct Probe {
    /// The slot holding the key, and the entry's offset.
    found: Option<(u64, u64)>,
    /// The first free slot (a tombstone or the empty slot that ended the probe).
    free: Option<u64>,
}

fn probe(g: &Generation, h: u64, key: &[u8]) -> Result<Probe, CollectionError> {
    let slots = g.load(DataHeader::SLOTS as u64)?;
    if slots == 0 || !slots.is_power_of_two() {
        return Err(corrupt(g, format!("it claims {slots} hash slots")));
    }
    let mask = slots - 1;
    let mut i = h & mask;
    let mut free = None;
    let mut candidate = Vec::new();
    for _ in 0..slots {
        let v = g.load(slot_off(i))?;
        match v {
            EMPTY => {
                return Ok(Probe {
                    found: None,
                    free: free.or(Some(i)),
                });
            }
            TOMBSTONE => {
                free.get_or_insert(i);
            }
            off => {
                let e = read_entry(g, off)?;
                if e.hash == h && e.key_len == key.len() {
                    candidate.resize(key.len(), 0);
                    g.read(off + ENTRY_HEAD as u64, &mut candidate)?;
                    if candidate == key {
                        return Ok(Probe {
                            found: Some((i, off)),
                            free,
                        });
                    }
                }
            }
        }
        i = (i + 1) & mask;
    }
    Ok(Probe { found: None, free })
}

fn corrupt(g: &Generation, reason: String) -> CollectionError {
    CollectionError::Corrupt {
        name: g.segment().name().unwrap_or("<anonymous>").to_owned(),
        reason,
    }
}

/// Visits every live entry: `(slot, offset, entry)`.
fn for_each(
    g: &Generation,
    mut f: impl FnMut(u64, u64, &Entry) -> Result<(), CollectionError>,
) -> Result<(), CollectionError> {
    let slots = g.load(DataHeader::SLOTS as u64)?;
    for i in 0..slots {
        let off = g.load(slot_off(i))?;
        if off > TOMBSTONE {
            let e = read_entry(g, off)?;
            f(i, off, &e)?;
        }
    }
    Ok(())
}

/// Counts the live entries and non-empty slots again: after a holder died, the
/// counters it updates after its publishing store may be one off.
fn repair(txn: &mut Txn<'_>) -> Result<(), CollectionError> {
    let g = txn.generation();
    let slots = g.load(DataHeader::SLOTS as u64)?;
    let (mut live, mut used) = (0u64, 0u64);
    for i in 0..slots {
        match g.load(slot_off(i))? {
            EMPTY => {}
            TOMBSTONE => used += 1,
            _ => {
                live += 1;
                used += 1;
            }
        }
    }
    g.store(DataHeader::LEN as u64, live)?;
    g.store(DataHeader::USED as u64, used)
}

/// Moves the entries into a new generation with room for `live + 1` entries and
/// `extra` more heap bytes, dropping tombstones and removed entries.
fn grow(txn: &mut Txn<'_>, extra: usize) -> Result<(), CollectionError> {
    let g = txn.generation();
    let live = g.load(DataHeader::LEN as u64)?;
    let mut live_bytes = 0usize;
    for_each(g, |_, _, e| {
        live_bytes += entry_len(e.key_len, e.value_len);
        Ok(())
    })?;
    let slots = ((live + 1) * 2).next_power_of_two().max(FIRST_SLOTS);
    let heap = (live_bytes * 4 + extra * 2).max(FIRST_HEAP);
    let start = heap_start(slots);
    let payload = start as usize + heap;
    let next = txn.build(payload, slots, start, |next| {
        let mut used = start;
        let mut count = 0u64;
        let mut buf = Vec::new();
        for_each(g, |_, off, e| {
            let len = entry_len(e.key_len, e.value_len);
            buf.resize(len, 0);
            g.read(off, &mut buf)?;
            next.write(used, &buf)?;
            let mask = slots - 1;
            let mut i = e.hash & mask;
            while next.load(slot_off(i))? != EMPTY {
                i = (i + 1) & mask;
            }
            next.store(slot_off(i), used)?;
            used += len as u64;
            count += 1;
            Ok(())
        })?;
        next.store(DataHeader::HEAP_USED as u64, used)?;
        next.store(DataHeader::LEN as u64, count)?;
        next.store(DataHeader::USED as u64, count)
    })?;
    txn.publish(next)
}

/// Writes `key → value` (the caller holds the lock); returns the previous value's
/// bytes when `old` is asked for.
fn put(
    txn: &mut Txn<'_>,
    key: &[u8],
    value: &[u8],
    want_old: bool,
) -> Result<Option<Vec<u8>>, CollectionError> {
    if key.len() > u32::MAX as usize || value.len() > u32::MAX as usize {
        return Err(CollectionError::TooLarge {
            len: key.len().max(value.len()),
        });
    }
    let h = hash(key);
    let need = entry_len(key.len(), value.len());
    loop {
        let g = txn.generation();
        let p = probe(g, h, key)?;
        let slots = g.load(DataHeader::SLOTS as u64)?;
        let used = g.load(DataHeader::USED as u64)?;
        let heap_used = g.load(DataHeader::HEAP_USED as u64)?;
        let fits = heap_used as usize + need <= g.len();
        let room = p.found.is_some() || (used + 1) * 4 <= slots * 3;
        let Some(slot) = p.found.map(|(s, _)| s).or(p.free).filter(|_| fits && room) else {
            grow(txn, need)?;
            continue;
        };
        let old = match p.found {
            Some((_, off)) if want_old => {
                let e = read_entry(g, off)?;
                Some(read_bytes(
                    g,
                    off + (ENTRY_HEAD + e.key_len) as u64,
                    e.value_len,
                )?)
            }
            _ => None,
        };
        // Out of place: the entry is written past `heap_used`, then the heap claims it,
        // then one store of the slot publishes it. A holder killed before the last store
        // leaves the dict as it was.
        let mut entry = Vec::with_capacity(need);
        entry.extend_from_slice(&h.to_le_bytes());
        entry.extend_from_slice(&(key.len() as u32).to_le_bytes());
        entry.extend_from_slice(&(value.len() as u32).to_le_bytes());
        entry.extend_from_slice(key);
        entry.extend_from_slice(value);
        entry.resize(need, 0);
        g.write(heap_used, &entry)?;
        g.store(DataHeader::HEAP_USED as u64, heap_used + need as u64)?;
        let was = g.load(slot_off(slot))?;
        g.store(slot_off(slot), heap_used)?;
        if p.found.is_none() {
            let len = g.load(DataHeader::LEN as u64)?;
            g.store(DataHeader::LEN as u64, len + 1)?;
            if was == EMPTY {
                g.store(DataHeader::USED as u64, used + 1)?;
            }
        }
        return Ok(old);
    }
}

fn take(txn: &mut Txn<'_>, key: &[u8]) -> Result<Option<Vec<u8>>, CollectionError> {
    let g = txn.generation();
    let p = probe(g, hash(key), key)?;
    let Some((slot, off)) = p.found else {
        return Ok(None);
    };
    let e = read_entry(g, off)?;
    let old = read_bytes(g, off + (ENTRY_HEAD + e.key_len) as u64, e.value_len)?;
    g.store(slot_off(slot), TOMBSTONE)?;
    let len = g.load(DataHeader::LEN as u64)?;
    g.store(DataHeader::LEN as u64, len.saturating_sub(1))?;
    Ok(Some(old))
}

fn lookup(txn: &Txn<'_>, key: &[u8]) -> Result<Option<Vec<u8>>, CollectionError> {
    let g = txn.generation();
    match probe(g, hash(key), key)?.found {
        Some((_, off)) => {
            let e = read_entry(g, off)?;
            Ok(Some(read_bytes(
                g,
                off + (ENTRY_HEAD + e.key_len) as u64,
                e.value_len,
            )?))
        }
        None => Ok(None),
    }
}

fn empty(txn: &mut Txn<'_>) -> Result<(), CollectionError> {
    let start = heap_start(FIRST_SLOTS);
    let next = txn.build(start as usize + FIRST_HEAP, FIRST_SLOTS, start, |_| Ok(()))?;
    txn.publish(next)
}

/// A dict in shared memory whose keys and values are bytes, as stored: what
/// [`SharedDict`] is built on, and what a program reads a dict of another language with
/// (Python's `shoal.SharedDict` stores pickled values, [`Format::Pickle`], or raw
/// bytes, [`Format::Raw`]).
///
/// Keys are compared by their bytes. Clones share the handle; every operation holds the
/// dict's lock, a robust lock: a holder killed at any instant leaves every published
/// entry whole, and the next operation repairs the counters it left (see
/// [`SharedDict`]).
///
/// # Examples
/// ```
/// use shoal::collections::{Format, RawDict};
///
/// let dict = RawDict::create(None, Format::Raw)?;
/// dict.insert(b"key", b"value")?;
/// let other = RawDict::open(dict.name(), Some(Format::Raw))?; // from any process
/// assert_eq!(other.get(b"key")?, Some(b"value".to_vec()));
/// assert_eq!(other.remove(b"key")?, Some(b"value".to_vec()));
/// assert!(dict.is_empty()?);
/// # Ok::<(), shoal::collections::CollectionError>(())
/// ```
#[derive(Clone)]
pub struct RawDict {
    arena: Arc<Arena>,
}

impl fmt::Debug for RawDict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDict")
            .field("name", &self.name())
            .field("format", &self.format())
            .finish()
    }
}

impl RawDict {
    /// Creates an empty dict under `name` (`/dev/shm/<name>`, with `<name>.lock` and
    /// `<name>.g<generation>` beside it), or under a generated `shoal-<pid>-c<id>` when
    /// `None`; `format` is recorded for openers. This handle (and its clones) removes
    /// the names when the last of them is dropped in this process.
    ///
    /// # Errors
    /// [`CollectionError::Shm`] when the name is taken or invalid (at most 170
    /// characters, no `/`), or the memory cannot be had.
    ///
    /// # Examples
    /// ```
    /// use shoal::collections::{Format, RawDict};
    ///
    /// let name = format!("shoal-doc-rawdict-{}", std::process::id());
    /// let dict = RawDict::create(Some(&name), Format::MessagePack)?;
    /// assert_eq!(dict.name(), name);
    /// assert!(RawDict::create(Some(&name), Format::MessagePack).is_err()); // taken
    /// # Ok::<(), shoal::collections::CollectionError>(())
    /// ```
    pub fn create(name: Option<&str>, format: Format) -> Result<RawDict, CollectionError> {
        let start = heap_start(FIRST_SLOTS);
        let arena = Arena::create(
            name,
            Shape::Dict,
            format,
            (start as usize + FIRST_HEAP, FIRST_SLOTS, start),
        )?;
        Ok(RawDict {
            arena: Arc::new(arena),
        })
    }

    /// Opens the dict `name` made by any process. With `Some(format)`, a dict whose
    /// values are stored in another format is refused.
    ///
    /// # Errors
    /// [`CollectionError::WrongFormat`] as said; [`CollectionError::Version`] for a
    /// dict of another layout version; [`CollectionError::Shm`] when there is no such
    /// dict (or the name holds something else).
    ///
    /// # Examples
    /// ```
    /// use shoal::collections::{CollectionError, Format, RawDict};
    ///
    /// let dict = RawDict::create(None, Format::Pickle)?;
    /// let wrong = RawDict::open(dict.name(), Some(Format::MessagePack)).unwrap_err();
    /// assert!(matches!(wrong, CollectionError::WrongFormat { found: Format::Pickle, .. }));
    /// assert_eq!(RawDict::open(dict.name(), None)?.format(), Format::Pickle);
    /// # Ok::<(), CollectionError>(())
    /// ```
    pub fn open(name: &str, format: Option<Format>) -> Result<RawDict, CollectionError> {
        Ok(RawDict {
            arena: Arc::new(Arena::open(name, Shape::Dict, format)?),
        })
    }

    /// The dict's name, for [`open`](RawDict::open).
    pub fn name(&self) -> &str {
        self.arena.name()
    }

    /// The format its values are stored in.
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
        self.arena.locked(repair, false, f)
    }

    pub(crate) fn writing<R>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R, CollectionError>,
    ) -> Result<R, CollectionError> {
        self.arena.locked(repair, true, f)
    }

    /// A counter that changes with every update of the container by any process: even
    /// between updates, odd during one (or after its writer died mid-update, until the
    /// next operation). The same even value read twice means nothing changed in
    /// between, which lets a reader keep what it decoded.
    pub fn version(&self) -> u64 {
        self.arena.version()
    }

    /// The value stored under `key`.
    ///
    /// # Errors
    /// [`CollectionError::Corrupt`] when the dict's memory was damaged by another
    /// program; [`CollectionError::Shm`] when a segment was truncated or cannot be
    /// opened.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CollectionError> {
        self.locked(|txn| lookup(txn, key))
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    /// As [`get`](RawDict::get).
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, CollectionError> {
        self.locked(|txn| Ok(probe(txn.generation(), hash(key), key)?.found.is_some()))
    }

    /// Stores `value` under `key`, returning the previous value.
    ///
    /// # Errors
    /// [`CollectionError::TooLarge`] for a key or value over 4 GiB; the errors of
    /// [`get`](RawDict::get), and [`CollectionError::Shm`] when the dict must grow and
    /// no memory is left.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, CollectionError> {
        self.writing(|txn| put(txn, key, value, true))
    }

    /// [`insert`](RawDict::insert) without reading the previous value back.
    ///
    /// # Errors
    /// As [`insert`](RawDict::insert).
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<(), CollectionError> {
        self.writing(|txn| put(txn, key, value, false).map(drop))
    }

    /// Removes `key`, returning its value.
    ///
    /// # Errors
    /// As [`get`](RawDict::get).
    pub fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CollectionError> {
        self.writing(|txn| take(txn, key))
    }

    /// Replaces the value of `key` by `f(current)` under the dict's lock, in one step no
    /// other process can interleave with (`None` in or out: absent). Returns the new
    /// value. `f` must not use this dict (the lock is held; it would wait forever).
    ///
    /// # Errors
    /// As [`insert`](RawDict::insert).
    pub fn update(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<Vec<u8>>) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, CollectionError> {
        self.writing(|txn| {
            let new = f(lookup(txn, key)?);
            match &new {
                Some(v) => put(txn, key, v, false).map(drop)?,
                None => take(txn, key).map(drop)?,
            }
            Ok(new)
        })
    }

    /// Stores every pair under one hold of the lock (each store is whole; a holder
    /// killed midway leaves the pairs before it stored).
    ///
    /// # Errors
    /// As [`insert`](RawDict::insert).
    pub fn extend<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<(), CollectionError> {
        self.writing(|txn| {
            for (k, v) in pairs {
                put(txn, k, v, false)?;
            }
            Ok(())
        })
    }

    /// The number of entries.
    ///
    /// # Errors
    /// As [`get`](RawDict::get).
    pub fn len(&self) -> Result<usize, CollectionError> {
        self.locked(|txn| Ok(txn.generation().load(DataHeader::LEN as u64)? as usize))
    }

    /// Whether the dict has no entries.
    ///
    /// # Errors
    /// As [`get`](RawDict::get).
    pub fn is_empty(&self) -> Result<bool, CollectionError> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry (one atomic switch to an empty generation).
    ///
    /// # Errors
    /// As [`insert`](RawDict::insert).
    pub fn clear(&self) -> Result<(), CollectionError> {
        self.writing(empty)
    }

    /// A snapshot of every `(key, value)`, taken under the lock, in slot order.
    ///
    /// # Errors
    /// As [`get`](RawDict::get).
    pub fn entries(&self) -> Result<Vec<RawEntry>, CollectionError> {
        self.locked(|txn| {
            let g = txn.generation();
            let mut out = Vec::new();
            for_each(g, |_, off, e| {
                let all = read_bytes(g, off + ENTRY_HEAD as u64, e.key_len + e.value_len)?;
                let (k, v) = all.split_at(e.key_len);
                out.push((k.to_vec(), v.to_vec()));
                Ok(())
            })?;
            Ok(out)
        })
    }

    /// A snapshot of every key.
    ///
    /// # Errors
    /// As [`get`](RawDict::get).
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, CollectionError> {
        self.locked(|txn| {
            let g = txn.generation();
            let mut out = Vec::new();
            for_each(g, |_, off, e| {
                out.push(read_bytes(g, off + ENTRY_HEAD as u64, e.key_len)?);
                Ok(())
            })?;
            Ok(out)
        })
    }

    /// Checks the dict's invariants under its lock: every slot names a whole entry in
    /// the heap whose hash matches its key, no key appears twice, and the length
    /// counter matches the live entries. A crash test's oracle.
    ///
    /// # Errors
    /// [`CollectionError::Corrupt`] naming the first broken invariant.
    pub fn check(&self) -> Result<(), CollectionError> {
        self.locked(|txn| {
            let g = txn.generation();
            let heap_used = g.load(DataHeader::HEAP_USED as u64)?;
            let slots = g.load(DataHeader::SLOTS as u64)?;
            let mut keys = std::collections::HashSet::new();
            let mut used = 0u64;
            for i in 0..slots {
                if g.load(slot_off(i))? == TOMBSTONE {
                    used += 1;
                }
            }
            for_each(g, |_, off, e| {
                used += 1;
                if off < heap_start(slots)
                    || off + entry_len(e.key_len, e.value_len) as u64 > heap_used
                {
                    return Err(corrupt(
                        g,
                        format!("an entry at {off} lies outside the heap in use"),
                    ));
                }
                let key = read_bytes(g, off + ENTRY_HEAD as u64, e.key_len)?;
                if hash(&key) != e.hash {
                    return Err(corrupt(g, format!("the entry at {off} has a wrong hash")));
                }
                if !keys.insert(key) {
                    return Err(corrupt(g, format!("the entry at {off} repeats a key")));
                }
                Ok(())
            })?;
            let len = g.load(DataHeader::LEN as u64)?;
            if len != keys.len() as u64 {
                return Err(corrupt(
                    g,
                    format!("its length says {len}, but {} entries are live", keys.len()),
                ));
            }
            if used != g.load(DataHeader::USED as u64)? {
                return Err(corrupt(g, "its count of used slots is wrong".to_owned()));
            }
            Ok(())
        })
    }
}

/// A `HashMap` in shared memory, for every process on the machine: keys and values
/// through serde, reached by name from unrelated processes (Python's
/// `multiprocessing.Manager().dict()` without the server round trip).
///
/// Keys are encoded with MessagePack and compared by their encoding (so a `String` key
/// matches the same string from Python's `shoal.SharedDict`, and `1u8` matches `1i64`);
/// the methods taking a key accept any type with `K`'s encoding (a `&str` for a
/// `String` key);
/// values with the dict's [`Format`] (bincode by default; [`Format::MessagePack`] to
/// share the dict with Python).
///
/// # Crashes
///
/// Every operation holds the dict's robust lock: a holder killed (even `SIGKILL`)
/// releases it to the next process, which repairs what the dead holder left. Entries
/// are written out of place and published with one atomic store, so the dict a
/// process sees after a crash holds, for every key, the value before or after the
/// interrupted operation, never a torn one. When it is full the dict moves to a bigger
/// segment (a new *generation*, published by one store in its root; other processes
/// follow on their next operation).
///
/// # Examples
/// ```
/// use shoal::collections::SharedDict;
///
/// let scores: SharedDict<String, u32> = SharedDict::new()?;
/// scores.insert("ada", &36)?;
/// scores.update("ada", |v| v.map(|n| n + 1))?; // atomically
///
/// // Any process can open it by name.
/// let same: SharedDict<String, u32> = SharedDict::open(scores.name())?;
/// assert_eq!(same.get("ada")?, Some(37));
/// assert_eq!(same.len()?, 1);
/// for (who, score) in same.iter()? {
///     println!("{who}: {score}");
/// }
/// # Ok::<(), shoal::collections::CollectionError>(())
/// ```
pub struct SharedDict<K, V> {
    raw: RawDict,
    codec: Codec,
    _t: PhantomData<Invariant<K, V>>,
}

impl<K, V> Clone for SharedDict<K, V> {
    fn clone(&self) -> Self {
        SharedDict {
            raw: self.raw.clone(),
            codec: self.codec,
            _t: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for SharedDict<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedDict")
            .field("name", &self.raw.name())
            .field("format", &self.raw.format())
            .finish()
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> SharedDict<K, V> {
    /// Creates an empty dict under a generated name (`shoal-<pid>-c<id>`), values in
    /// bincode.
    ///
    /// # Errors
    /// As [`create_named_with`](SharedDict::create_named_with).
    pub fn new() -> Result<SharedDict<K, V>, CollectionError> {
        SharedDict::create(None, Codec::Bincode)
    }

    /// Creates an empty dict named `name`, values in bincode.
    ///
    /// # Errors
    /// As [`create_named_with`](SharedDict::create_named_with).
    pub fn create_named(name: &str) -> Result<SharedDict<K, V>, CollectionError> {
        SharedDict::create(Some(name), Codec::Bincode)
    }

    /// Creates an empty dict named `name` whose values are encoded with `codec`. This
    /// handle and its clones remove the dict's names when the last is dropped in this
    /// process.
    ///
    /// # Errors
    /// [`CollectionError::Shm`] when the name is taken or invalid (at most 170
    /// characters, no `/`).
    ///
    /// # Examples
    /// ```
    /// use shoal::codec::Codec;
    /// use shoal::collections::SharedDict;
    ///
    /// let name = format!("shoal-doc-dict-msgpack-{}", std::process::id());
    /// let d: SharedDict<String, Vec<i64>> = SharedDict::create_named_with(&name, Codec::MessagePack)?;
    /// d.insert(&"primes".to_owned(), &vec![2, 3, 5])?;
    /// assert_eq!(d.get(&"primes".to_owned())?, Some(vec![2, 3, 5]));
    /// # Ok::<(), shoal::collections::CollectionError>(())
    /// ```
    pub fn create_named_with(
        name: &str,
        codec: Codec,
    ) -> Result<SharedDict<K, V>, CollectionError> {
        SharedDict::create(Some(name), codec)
    }

    fn create(name: Option<&str>, codec: Codec) -> Result<SharedDict<K, V>, CollectionError> {
        Ok(SharedDict {
            raw: RawDict::create(name, Format::from_codec(codec))?,
            codec,
            _t: PhantomData,
        })
    }

    /// Opens the dict `name` made by any process, in the format it was made with.
    ///
    /// # Errors
    /// [`CollectionError::WrongFormat`] when its values are not in a serde codec
    /// (Python's pickled or raw-bytes dicts: use [`RawDict`]);
    /// [`CollectionError::Version`] for another layout version;
    /// [`CollectionError::Shm`] when there is no such dict.
    ///
    /// # Examples
    /// ```
    /// use shoal::collections::{CollectionError, SharedDict, SharedList};
    ///
    /// let list: SharedList<u8> = SharedList::new()?;
    /// let not_a_dict = SharedDict::<u8, u8>::open(list.name()).unwrap_err();
    /// assert!(matches!(not_a_dict, CollectionError::Shm { .. }));
    /// assert!(not_a_dict.to_string().contains("list"), "{not_a_dict}");
    /// # Ok::<(), CollectionError>(())
    /// ```
    pub fn open(name: &str) -> Result<SharedDict<K, V>, CollectionError> {
        let raw = RawDict::open(name, None)?;
        let codec = raw
            .format()
            .codec()
            .ok_or_else(|| CollectionError::WrongFormat {
                name: name.to_owned(),
                found: raw.format(),
                expected: Format::Bincode,
            })?;
        Ok(SharedDict {
            raw,
            codec,
            _t: PhantomData,
        })
    }

    /// Opens the dict `name`, refusing it unless its values are encoded with `codec`.
    ///
    /// # Errors
    /// [`CollectionError::WrongFormat`] as said, and those of
    /// [`open`](SharedDict::open).
    pub fn open_with(name: &str, codec: Codec) -> Result<SharedDict<K, V>, CollectionError> {
        Ok(SharedDict {
            raw: RawDict::open(name, Some(Format::from_codec(codec)))?,
            codec,
            _t: PhantomData,
        })
    }

    /// The dict's name, for [`open`](SharedDict::open).
    pub fn name(&self) -> &str {
        self.raw.name()
    }

    /// The bytes-level dict underneath.
    pub fn raw(&self) -> &RawDict {
        &self.raw
    }

    fn codec_error(&self, e: crate::codec::CodecError) -> CollectionError {
        CollectionError::Codec {
            name: self.name().to_owned(),
            source: e,
        }
    }

    fn key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Vec<u8>, CollectionError> {
        Codec::MessagePack
            .encode(key)
            .map_err(|e| self.codec_error(e))
    }

    fn value(&self, value: &V) -> Result<Vec<u8>, CollectionError> {
        self.codec.encode(value).map_err(|e| self.codec_error(e))
    }

    fn decode(&self, bytes: Option<Vec<u8>>) -> Result<Option<V>, CollectionError> {
        bytes
            .map(|b| self.codec.decode(&b).map_err(|e| self.codec_error(e)))
            .transpose()
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// [`CollectionError::Codec`] when the stored bytes are not a `V` (another program
    /// stored another type); those of [`RawDict::get`].
    pub fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>, CollectionError> {
        let k = self.key(key)?;
        self.decode(self.raw.get(&k)?)
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    /// As [`RawDict::get`].
    pub fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<bool, CollectionError> {
        self.raw.contains_key(&self.key(key)?)
    }

    /// Stores `value` under `key`, returning the previous value.
    ///
    /// # Errors
    /// [`CollectionError::Codec`] when either cannot be encoded; those of
    /// [`RawDict::insert`].
    pub fn insert<Q: Serialize + ?Sized>(
        &self,
        key: &Q,
        value: &V,
    ) -> Result<Option<V>, CollectionError> {
        let (k, v) = (self.key(key)?, self.value(value)?);
        self.decode(self.raw.insert(&k, &v)?)
    }

    /// Removes `key`, returning its value.
    ///
    /// # Errors
    /// As [`get`](SharedDict::get).
    pub fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>, CollectionError> {
        let k = self.key(key)?;
        self.decode(self.raw.remove(&k)?)
    }

    /// Replaces the value of `key` by `f(current)` in one step under the dict's lock
    /// (`None`: absent); returns the new value. `f` must not use this dict.
    ///
    /// # Errors
    /// As [`insert`](SharedDict::insert); a value that cannot be decoded or encoded
    /// leaves the entry as it was.
    ///
    /// # Examples
    /// ```
    /// use shoal::collections::SharedDict;
    ///
    /// let hits: SharedDict<String, u64> = SharedDict::new()?;
    /// for _ in 0..3 {
    ///     hits.update(&"/", |n| Some(n.unwrap_or(0) + 1))?;
    /// }
    /// assert_eq!(hits.get(&"/")?, Some(3));
    /// assert_eq!(hits.update(&"/", |_| None)?, None); // removed
    /// assert!(hits.is_empty()?);
    /// # Ok::<(), shoal::collections::CollectionError>(())
    /// ```
    pub fn update<Q: Serialize + ?Sized>(
        &self,
        key: &Q,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<Option<V>, CollectionError> {
        let k = self.key(key)?;
        self.raw.writing(|txn| {
            let new = f(self.decode(lookup(txn, &k)?)?);
            match &new {
                Some(v) => put(txn, &k, &self.value(v)?, false).map(drop)?,
                None => take(txn, &k).map(drop)?,
            }
            Ok(new)
        })
    }

    /// Stores every pair under one hold of the lock (Python's `dict.update`).
    ///
    /// # Errors
    /// As [`insert`](SharedDict::insert).
    pub fn extend<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a K, &'a V)>,
    ) -> Result<(), CollectionError>
    where
        K: 'a,
        V: 'a,
    {
        let encoded = pairs
            .into_iter()
            .map(|(k, v)| Ok((self.key(k)?, self.value(v)?)))
            .collect::<Result<Vec<_>, CollectionError>>()?;
        self.raw
            .extend(encoded.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    }

    /// The number of entries.
    ///
    /// # Errors
    /// As [`RawDict::get`].
    pub fn len(&self) -> Result<usize, CollectionError> {
        self.raw.len()
    }

    /// Whether the dict is empty.
    ///
    /// # Errors
    /// As [`RawDict::get`].
    pub fn is_empty(&self) -> Result<bool, CollectionError> {
        self.raw.is_empty()
    }

    /// Removes every entry at once.
    ///
    /// # Errors
    /// As [`RawDict::clear`].
    pub fn clear(&self) -> Result<(), CollectionError> {
        self.raw.clear()
    }

    /// A snapshot of the entries, taken under the lock (in no particular order).
    ///
    /// # Errors
    /// As [`get`](SharedDict::get), for any entry.
    pub fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>, CollectionError> {
        let entries = self.raw.entries()?;
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let key = Codec::MessagePack
                .decode(&k)
                .map_err(|e| self.codec_error(e))?;
            let value = self.codec.decode(&v).map_err(|e| self.codec_error(e))?;
            out.push((key, value));
        }
        Ok(out.into_iter())
    }

    /// A snapshot of the keys.
    ///
    /// # Errors
    /// As [`iter`](SharedDict::iter).
    pub fn keys(&self) -> Result<Vec<K>, CollectionError> {
        Ok(self.iter()?.map(|(k, _)| k).collect())
    }
}

/// A dict travels as its name: the receiver opens it (any process on the machine).
impl<K, V> Serialize for SharedDict<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.raw.name(), self.raw.format().id()).serialize(s)
    }
}

impl<'de, K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> Deserialize<'de>
    for SharedDict<K, V>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedDict<K, V>, D::Error> {
        let (name, _format) = <(String, u32)>::deserialize(d)?;
        SharedDict::open(&name).map_err(serde::de::Error::custom)
    }
}
