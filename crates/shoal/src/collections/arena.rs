//! What a dict and a list share: the root, the lock, the generations and how a handle
//! follows them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::collections::layout::{
    self, DataHeader, Generation, COLLECTION_LAYOUT_VERSION, DATA_MAGIC, ROOT_LEN, ROOT_MAGIC,
};
use crate::collections::{CollectionError, Format};
use crate::shm::{Segment, SegmentKind, ShmError};
use crate::sync::Lock;
use crate::sys;

/// Characters a container's name may have, leaving room for the suffixes of its other
/// segments (`.lock`, `.g<generation>`) within a segment name's 200.
const MAX_NAME: usize = 170;

/// The name of the lock segment of container `name`.
fn lock_name(name: &str) -> String {
    format!("{name}.lock")
}

/// The name of the segment of generation `generation` of container `name`.
pub(crate) fn gen_name(name: &str, generation: u64) -> String {
    format!("{name}.g{generation}")
}

fn next_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "shoal-{}-c{:x}{:05x}",
        std::process::id(),
        n,
        nanos & 0xfffff
    )
}

/// Whether `e` says the name exists already.
fn exists(e: &ShmError) -> bool {
    matches!(e, ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
}

/// Whether `e` says there is no such name.
fn missing(e: &ShmError) -> bool {
    matches!(e, ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Which container an arena holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Dict,
    List,
}

impl Shape {
    fn data_kind(self) -> u64 {
        match self {
            Shape::Dict => layout::DATA_KIND_DICT,
            Shape::List => layout::DATA_KIND_LIST,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Shape::Dict => "shared dict",
            Shape::List => "shared list",
        }
    }
}

/// One process's handle on a container (shared by its clones).
pub(crate) struct Arena {
    name: String,
    shape: Shape,
    format: Format,
    root: Arc<Segment>,
    lock: Lock,
    creator_pid: u32,
    /// Whether this handle made the container: its last drop in the creating process
    /// removes the names.
    owner: bool,
    current: Mutex<Current>,
    /// How often this handle took the lock from a holder that died.
    recoveries: AtomicU64,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .field("format", &self.format)
            .finish()
    }
}

/// How long a handle trusts the sizes of the files it mapped before checking them again
/// (one `fstat` each, a microsecond here: more than a whole operation).
const SIZE_CHECK_PERIOD: Duration = Duration::from_millis(10);

/// The generation this process maps, and when the sizes of its files were last checked.
pub(crate) struct Current {
    generation: Generation,
    checked: Instant,
}

/// The state an operation works on: the current generation, under the lock.
pub(crate) struct Txn<'a> {
    arena: &'a Arena,
    current: MutexGuard<'a, Current>,
}

impl Txn<'_> {
    /// The generation holding the entries now.
    pub(crate) fn generation(&self) -> &Generation {
        &self.current.generation
    }

    /// Makes a new generation of at least `payload` bytes, its header written (heap
    /// starting at `heap_start`); `fill` writes its entries. Nothing is published: the
    /// container still shows the current generation until [`Txn::publish`].
    pub(crate) fn build(
        &self,
        payload: usize,
        slots: u64,
        heap_start: u64,
        fill: impl FnOnce(&Generation) -> Result<(), CollectionError>,
    ) -> Result<Generation, CollectionError> {
        let arena = self.arena;
        let generation = self.current.generation.generation + 1;
        let name = gen_name(&arena.name, generation);
        let create = || {
            Segment::create_named_detached(
                SegmentKind::CollectionData,
                &name,
                payload,
                arena.creator_pid,
                |_| {},
            )
        };
        let seg = match create() {
            // Left by a holder that died while growing the container: never published
            // (the root still names the current generation, and we hold the lock).
            Err(e) if exists(&e) => {
                let _ = crate::sys::shm_unlink(&name);
                create()
            }
            other => other,
        }
        .map_err(|e| arena.shm_error("grow", e))?;
        let next = Generation::new(seg, generation);
        let built = (|| {
            next.store(DataHeader::VERSION as u64, version_word(arena.shape))?;
            next.store(DataHeader::GEN as u64, generation)?;
            next.store(DataHeader::SLOTS as u64, slots)?;
            next.store(DataHeader::HEAP_USED as u64, heap_start)?;
            fill(&next)?;
            next.store(DataHeader::MAGIC as u64, DATA_MAGIC)
        })();
        if let Err(e) = built {
            let _ = crate::sys::shm_unlink(&name);
            return Err(e);
        }
        Ok(next)
    }

    /// Makes `next` (from [`Txn::build`]) the container's generation with one atomic
    /// store, then removes the previous generation's name (processes that mapped it keep
    /// their mapping until they follow the root).
    pub(crate) fn publish(&mut self, next: Generation) -> Result<(), CollectionError> {
        let root = layout::root(&self.arena.root)?;
        root.generation.store(next.generation, Ordering::Release);
        let old = gen_name(&self.arena.name, self.current.generation.generation);
        let _ = crate::sys::shm_unlink(&old);
        self.current.generation = next;
        Ok(())
    }
}

fn version_word(shape: Shape) -> u64 {
    u64::from(COLLECTION_LAYOUT_VERSION) | shape.data_kind() << 32
}

impl Arena {
    /// Creates a container named `name` (a generated `shoal-<pid>-c<id>` when `None`),
    /// its first generation built by `first` (payload bytes, slots, heap start).
    pub(crate) fn create(
        name: Option<&str>,
        shape: Shape,
        format: Format,
        first: (usize, u64, u64),
    ) -> Result<Arena, CollectionError> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => next_name(),
        };
        let context = || format!("create {} {name:?}", shape.noun());
        if name.len() > MAX_NAME {
            return Err(CollectionError::Shm {
                context: context(),
                source: ShmError::InvalidName { name: name.clone() },
            });
        }
        let pid = std::process::id();
        // The lock first and the root last: a process that finds the root finds the
        // rest.
        let lock =
            Lock::create_named_detached(&lock_name(&name)).map_err(|e| CollectionError::Sync {
                context: context(),
                source: e,
            })?;
        let (payload, slots, heap_start) = first;
        let data_name = gen_name(&name, 0);
        let data = Segment::create_named_detached(
            SegmentKind::CollectionData,
            &data_name,
            payload,
            pid,
            |_| {},
        )
        .map_err(|e| {
            let _ = sys::shm_unlink(&lock_name(&name));
            CollectionError::Shm {
                context: context(),
                source: e,
            }
        })?;
        let first = Generation::new(data, 0);
        let init = (|| {
            first.store(DataHeader::VERSION as u64, version_word(shape))?;
            first.store(DataHeader::GEN as u64, 0)?;
            first.store(DataHeader::SLOTS as u64, slots)?;
            first.store(DataHeader::HEAP_USED as u64, heap_start)?;
            if shape == Shape::List {
                crate::collections::list::init_index(&first, heap_start)?;
            }
            first.store(DataHeader::MAGIC as u64, DATA_MAGIC)
        })();
        let root = init.and_then(|()| {
            Segment::create_named_detached(root_kind(shape), &name, ROOT_LEN, pid, |seg| {
                layout::init_root(seg, format.id(), pid)
            })
            .map_err(|e| CollectionError::Shm {
                context: context(),
                source: e,
            })
        });
        let root = match root {
            Ok(root) => root,
            Err(e) => {
                let _ = sys::shm_unlink(&data_name);
                let _ = sys::shm_unlink(&lock_name(&name));
                return Err(e);
            }
        };
        Ok(Arena {
            name,
            shape,
            format,
            root,
            lock,
            creator_pid: pid,
            owner: true,
            current: Mutex::new(Current {
                generation: first,
                checked: Instant::now(),
            }),
            recoveries: AtomicU64::new(0),
        })
    }

    /// Opens the container `name` made by any process; `format` is checked against the
    /// header when given.
    pub(crate) fn open(
        name: &str,
        shape: Shape,
        format: Option<Format>,
    ) -> Result<Arena, CollectionError> {
        let context = || format!("open {} {name:?}", shape.noun());
        let root = Segment::open_named(name, Some(root_kind(shape))).map_err(|e| {
            CollectionError::Shm {
                context: context(),
                source: e,
            }
        })?;
        let state = layout::root(&root)?;
        let magic = state.magic.load(Ordering::Acquire);
        if magic != ROOT_MAGIC {
            return Err(CollectionError::Corrupt {
                name: name.to_owned(),
                reason: format!("its root starts with {magic:#018x}, not {ROOT_MAGIC:#018x}"),
            });
        }
        if state.version != COLLECTION_LAYOUT_VERSION {
            return Err(CollectionError::Version {
                name: name.to_owned(),
                found: state.version,
                expected: COLLECTION_LAYOUT_VERSION,
            });
        }
        let found = Format::from_id(state.format).ok_or_else(|| CollectionError::Corrupt {
            name: name.to_owned(),
            reason: format!("its header names an unknown value format {}", state.format),
        })?;
        if let Some(expected) = format {
            if expected != found {
                return Err(CollectionError::WrongFormat {
                    name: name.to_owned(),
                    found,
                    expected,
                });
            }
        }
        let creator_pid = state.creator_pid;
        let lock = Lock::open_named(&lock_name(name)).map_err(|e| CollectionError::Sync {
            context: context(),
            source: e,
        })?;
        let current = map_current(name, shape, &root)?;
        Ok(Arena {
            name: name.to_owned(),
            shape,
            format: found,
            root,
            lock,
            creator_pid,
            owner: false,
            current: Mutex::new(Current {
                generation: current,
                checked: Instant::now(),
            }),
            recoveries: AtomicU64::new(0),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn format(&self) -> Format {
        self.format
    }

    pub(crate) fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    fn shm_error(&self, op: &str, e: ShmError) -> CollectionError {
        CollectionError::Shm {
            context: format!("{op} {} {:?}", self.shape.noun(), self.name),
            source: e,
        }
    }

    /// Runs `f` under the container's lock on its current generation.
    ///
    /// When the previous holder died holding the lock, `repair` runs first: every
    /// published entry is whole (see [`layout`]), but counters updated after the
    /// publishing store may be stale.
    ///
    /// A `write` brackets `f` with the root's update counter (odd during `f`).
    pub(crate) fn locked<R>(
        &self,
        repair: impl FnOnce(&mut Txn<'_>) -> Result<(), CollectionError>,
        write: bool,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R, CollectionError>,
    ) -> Result<R, CollectionError> {
        let (_guard, died) = match self.lock.acquire() {
            Ok(g) => (g, false),
            Err(died) => (died.into_inner(), true),
        };
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut txn = Txn {
            arena: self,
            current,
        };
        // Another process may truncate a file, and an access past its new end raises
        // SIGBUS: the sizes are checked when a generation is mapped and then every
        // SIZE_CHECK_PERIOD (see the module docs).
        let now = Instant::now();
        if now.duration_since(txn.current.checked) >= SIZE_CHECK_PERIOD {
            self.root
                .check_size()
                .map_err(|e| self.shm_error("use", e))?;
            txn.current
                .generation
                .segment()
                .check_size()
                .map_err(|e| self.shm_error("use", e))?;
            txn.current.checked = now;
        }
        let generation = layout::root(&self.root)?.generation.load(Ordering::Acquire);
        if txn.current.generation.generation != generation {
            txn.current.generation = map_current(&self.name, self.shape, &self.root)?;
            txn.current.checked = now;
        }
        if died {
            self.recoveries.fetch_add(1, Ordering::Relaxed);
            // A holder that died while growing may have published the new generation
            // without removing the old one's name.
            if let Some(prev) = txn.current.generation.generation.checked_sub(1) {
                let _ = sys::shm_unlink(&gen_name(&self.name, prev));
            }
            repair(&mut txn)?;
            let version = &layout::root(&self.root)?.updates;
            if version.load(Ordering::Relaxed) % 2 == 1 {
                // The dead holder was mid-update: what it published is whole, so the
                // update is over either way.
                version.fetch_add(1, Ordering::Release);
            }
        }
        if !write {
            return f(&mut txn);
        }
        let version = &layout::root(&self.root)?.updates;
        version.fetch_add(1, Ordering::AcqRel);
        let out = f(&mut txn);
        version.fetch_add(1, Ordering::Release);
        out
    }

    /// The root's update counter (see [`layout::RootState::updates`]).
    pub(crate) fn version(&self) -> u64 {
        layout::root(&self.root).map_or(1, |r| r.updates.load(Ordering::Acquire))
    }
}

fn root_kind(shape: Shape) -> SegmentKind {
    layout::root_kind(shape == Shape::List)
}

/// Maps the generation the root names now. A grower may remove that name between our
/// read of the root and our open: read again then.
fn map_current(name: &str, shape: Shape, root: &Segment) -> Result<Generation, CollectionError> {
    let state = layout::root(root)?;
    let mut last = None;
    for _ in 0..100 {
        let generation = state.generation.load(Ordering::Acquire);
        match Segment::open_named(
            &gen_name(name, generation),
            Some(SegmentKind::CollectionData),
        ) {
            Ok(seg) => {
                let g = Generation::new(seg, generation);
                g.validate(shape.data_kind())?;
                return Ok(g);
            }
            Err(e) if missing(&e) => last = Some(e),
            Err(e) => {
                return Err(CollectionError::Shm {
                    context: format!("open {} {name:?}", shape.noun()),
                    source: e,
                });
            }
        }
    }
    Err(CollectionError::Shm {
        context: format!("open {} {name:?}", shape.noun()),
        source: last.expect("the loop ran"),
    })
}

impl Drop for Arena {
    fn drop(&mut self) {
        // A forked child holds copies of its parent's handles: only the creating
        // process removes the names.
        if !self.owner || std::process::id() != self.creator_pid {
            return;
        }
        let generation = layout::root(&self.root)
            .map(|r| r.generation.load(Ordering::Acquire))
            .unwrap_or(0);
        let _ = sys::shm_unlink(&gen_name(&self.name, generation));
        if let Some(prev) = generation.checked_sub(1) {
            let _ = sys::shm_unlink(&gen_name(&self.name, prev));
        }
        // The next generation's name exists only if a holder died while growing the
        // container (never published, so no process maps it).
        let _ = sys::shm_unlink(&gen_name(&self.name, generation + 1));
        let _ = sys::shm_unlink(&self.name);
        let _ = sys::shm_unlink(&lock_name(&self.name));
    }
}
