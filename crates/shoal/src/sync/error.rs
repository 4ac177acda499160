//! Errors and results of the synchronisation primitives.
#![deny(unsafe_code)]

use std::fmt;
use std::io;

use crate::shm::ShmError;

/// A synchronisation primitive could not be created, or a descriptor received from
/// another process could not become one. Every primitive of [`crate::sync`] (and
/// [`Value`](crate::Value) / [`Array`](crate::Array)) reports creation and import
/// failures with this one type.
///
/// # Examples
/// ```
/// use shoal::sync::{Barrier, Semaphore, SyncError};
///
/// assert!(matches!(Barrier::new(0), Err(SyncError::InvalidParties { parties: 0 })));
/// let e = Semaphore::new(u32::MAX).unwrap_err();
/// assert!(matches!(e, SyncError::ValueTooLarge { value: u32::MAX, .. }));
/// # Ok::<(), SyncError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncError {
    /// Its shared-memory segment could not be made, mapped or validated.
    Shm {
        /// What shoal was doing ("create a lock", "receive a barrier").
        context: &'static str,
        /// The underlying error.
        source: ShmError,
    },
    /// The operating system refused an operation.
    Io {
        /// What shoal was doing.
        context: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A received segment holds another primitive than the one asked for.
    WrongPrimitive {
        /// The primitive asked for ("lock").
        expected: &'static str,
        /// What the segment's tag says it holds ("a re-entrant lock").
        found: String,
    },
    /// A received segment is too small for the primitive asked for (a wrong layout).
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

impl SyncError {
    pub(crate) fn shm(context: &'static str, source: ShmError) -> SyncError {
        SyncError::Shm { context, source }
    }
}

/// `name` with its indefinite article: "a barrier", "an event".
pub(crate) fn a(name: &str) -> String {
    let vowel = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Shm { context, source } => write!(f, "could not {context}: {source}"),
            SyncError::Io { context, source } => write!(f, "could not {context}: {source}"),
            SyncError::WrongPrimitive { expected, found } => write!(
                f,
                "the shared segment received holds {found}, not {}",
                a(expected)
            ),
            SyncError::TooSmall {
                primitive,
                len,
                needed,
            } => write!(
                f,
                "the shared segment received has {len} payload bytes, but {} needs {needed}",
                a(primitive)
            ),
            SyncError::ValueTooLarge { value, max } => write!(
                f,
                "a semaphore cannot start at {value}: its count is limited to {max}"
            ),
            SyncError::InvalidParties { parties } => write!(
                f,
                "a barrier cannot be made for {parties} parties: it needs 1 to {} parties",
                u32::MAX
            ),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyncError::Shm { source, .. } => Some(source),
            SyncError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The result of a blocking acquire: the guard, or the guard wrapped in [`OwnerDied`]
/// when the previous holder died while holding the lock.
///
/// # Examples
/// ```
/// use shoal::sync::{LockGuard, LockResult};
/// use shoal::Lock;
///
/// fn take(lock: &Lock) -> LockResult<LockGuard<'_>> {
///     lock.acquire()
/// }
///
/// let lock = Lock::new()?;
/// // Nobody died holding it here; where one may have, check the data it guards.
/// let guard = take(&lock).unwrap_or_else(|died| died.into_inner());
/// assert!(lock.is_locked());
/// drop(guard);
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
pub type LockResult<G> = Result<G, OwnerDied<G>>;

/// The previous holder of a lock died while holding it; the lock is now held by the
/// caller (like std's [`PoisonError`](std::sync::PoisonError), it carries the guard).
///
/// The data the lock protects may be half-updated: check or repair it, then go on with
/// [`into_inner`](OwnerDied::into_inner). The lock itself is usable again at once; the
/// condition is reported only to the first acquirer after the death.
///
/// # Examples
/// ```
/// use shoal::sync::GuardError;
/// use shoal::{Process, Value};
///
/// fn crash_mid_update(v: Value<[u32; 2]>) {
///     let mut g = v.lock().unwrap();
///     g[0] = 1; // half of the update...
///     std::process::exit(3); // ...and the process is gone, holding the lock
/// }
/// shoal::entry!(crash_mid_update);
///
/// let pair = Value::new([0u32; 2])?;
/// Process::new(crash_mid_update, pair.clone()).start()?.join()?;
/// let mut g = match pair.lock() {
///     Ok(g) => g,
///     Err(GuardError::OwnerDied(died)) => {
///         let mut g = died.into_inner();
///         *g = [0, 0]; // repair: undo the half-done update
///         g
///     }
///     Err(no_lock) => return Err(no_lock.to_string().into()),
/// };
/// assert_eq!(*g, [0, 0]);
/// g[1] = 5;
/// drop(g);
/// assert!(pair.lock().is_ok()); // reported once; the lock works as before
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OwnerDied<G> {
    guard: G,
    tid: u32,
    pid: u32,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G, tid: u32, pid: u32) -> OwnerDied<G> {
        OwnerDied { guard, tid, pid }
    }

    /// The guard: the caller holds the lock.
    ///
    /// # Examples
    /// ```
    /// use shoal::Lock;
    ///
    /// let lock = Lock::new()?;
    /// let handle = lock.clone();
    /// std::thread::spawn(move || std::mem::forget(handle.acquire().unwrap()))
    ///     .join()
    ///     .unwrap(); // the thread ended holding the lock
    /// let guard = lock.acquire().unwrap_or_else(|died| died.into_inner());
    /// assert!(lock.is_locked()); // held by this thread now
    /// drop(guard);
    /// assert!(lock.acquire().is_ok()); // and usable as before
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::GuardError;
    /// use shoal::Value;
    ///
    /// let balance = Value::new(100i64)?;
    /// let handle = balance.clone();
    /// std::thread::spawn(move || {
    ///     let mut g = handle.lock().unwrap();
    ///     *g -= 30;
    ///     std::mem::forget(g); // the thread ends holding the lock, mid-transfer
    /// })
    /// .join()
    /// .unwrap();
    /// let Err(GuardError::OwnerDied(died)) = balance.lock() else {
    ///     panic!("the holder died");
    /// };
    /// assert_eq!(**died.get_ref(), 70); // the half-done update is visible
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// A mutable reference to the guard.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::GuardError;
    /// use shoal::Value;
    ///
    /// let balance = Value::new(100i64)?;
    /// let handle = balance.clone();
    /// std::thread::spawn(move || {
    ///     let mut g = handle.lock().unwrap();
    ///     *g -= 30;
    ///     std::mem::forget(g); // the thread ends holding the lock, mid-transfer
    /// })
    /// .join()
    /// .unwrap();
    /// let Err(GuardError::OwnerDied(mut died)) = balance.lock() else {
    ///     panic!("the holder died");
    /// };
    /// **died.get_mut() = 100; // roll the half-done update back
    /// drop(died.into_inner());
    /// assert_eq!(balance.load(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }

    /// The kernel thread id of the holder that died, when known.
    ///
    /// # Examples
    /// ```
    /// use shoal::Lock;
    ///
    /// let lock = Lock::new()?;
    /// let handle = lock.clone();
    /// let tid = std::thread::spawn(move || {
    ///     std::mem::forget(handle.acquire().unwrap());
    ///     // The kernel thread id: /proc/thread-self links to "<pid>/task/<tid>".
    ///     let me = std::fs::read_link("/proc/thread-self").unwrap();
    ///     me.file_name().unwrap().to_str().unwrap().parse::<u32>().unwrap()
    /// })
    /// .join()
    /// .unwrap();
    /// let died = lock.acquire().unwrap_err();
    /// assert_eq!(died.thread_id(), Some(tid));
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn thread_id(&self) -> Option<u32> {
        (self.tid != 0).then_some(self.tid)
    }

    /// The process id of the holder that died, when known.
    ///
    /// # Examples
    /// ```
    /// use shoal::{Lock, Process};
    ///
    /// fn die_holding(lock: Lock) {
    ///     std::mem::forget(lock.acquire().unwrap());
    /// }
    /// shoal::entry!(die_holding);
    ///
    /// let lock = Lock::new()?;
    /// let child = Process::new(die_holding, lock.clone()).start()?;
    /// child.join()?;
    /// let died = lock.acquire().unwrap_err();
    /// assert_eq!(died.process_id(), Some(child.pid()));
    /// assert!(died.to_string().contains(&child.pid().to_string()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn process_id(&self) -> Option<u32> {
        (self.pid != 0).then_some(self.pid)
    }

    /// The same report carrying another guard (for wrappers of a lock's guard).
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> OwnerDied<H> {
        OwnerDied {
            guard: f(self.guard),
            tid: self.tid,
            pid: self.pid,
        }
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied")
            .field("thread_id", &self.thread_id())
            .field("process_id", &self.process_id())
            .finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.thread_id(), self.process_id()) {
            (Some(tid), Some(pid)) => write!(
                f,
                "the previous holder of the lock (thread {tid} of process {pid}) died while holding it"
            ),
            (Some(tid), None) => write!(
                f,
                "the previous holder of the lock (thread {tid}) died while holding it"
            ),
            _ => f.write_str("the previous holder of the lock died while holding it"),
        }
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// Why a non-blocking or timed acquire did not simply succeed.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::sync::TryLockError;
///
/// let lock = shoal::Lock::new()?;
/// let _held = lock.acquire().unwrap();
/// let other = lock.clone();
/// let outcome = std::thread::spawn(move || {
///     let busy = matches!(other.try_acquire(), Err(TryLockError::WouldBlock));
///     let late = matches!(other.acquire_timeout(Duration::from_millis(10)), Err(TryLockError::Timeout));
///     busy && late
/// });
/// assert!(outcome.join().unwrap());
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
pub enum TryLockError<G> {
    /// The lock is held by someone else (from a `try_` call).
    WouldBlock,
    /// The timeout passed before the lock came free.
    Timeout,
    /// The lock was acquired, but its previous holder had died holding it.
    OwnerDied(OwnerDied<G>),
}

impl<G> From<OwnerDied<G>> for TryLockError<G> {
    fn from(e: OwnerDied<G>) -> TryLockError<G> {
        TryLockError::OwnerDied(e)
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::Timeout => f.write_str("Timeout"),
            TryLockError::OwnerDied(e) => f.debug_tuple("OwnerDied").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("the lock is held by someone else"),
            TryLockError::Timeout => f.write_str("timed out waiting for the lock"),
            TryLockError::OwnerDied(e) => e.fmt(f),
        }
    }
}

impl<G> std::error::Error for TryLockError<G> {}

/// A release by a thread that does not hold the lock.
///
/// # Examples
/// ```
/// let lock = shoal::Lock::new()?;
/// let e = lock.release().unwrap_err();
/// assert_eq!(e.to_string(), "cannot release a lock that is not locked");
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHeld {
    pub(crate) what: &'static str,
    pub(crate) holder: Option<u32>,
}

impl NotHeld {
    /// The thread id of the current holder, `None` when the lock is free.
    ///
    /// # Examples
    /// ```
    /// use std::sync::mpsc;
    /// use shoal::Lock;
    ///
    /// let lock = Lock::new()?;
    /// assert_eq!(lock.release().unwrap_err().holder(), None); // free
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let (done_tx, done_rx) = mpsc::channel::<()>();
    /// let handle = lock.clone();
    /// let t = std::thread::spawn(move || {
    ///     let _g = handle.acquire().unwrap();
    ///     let me = std::fs::read_link("/proc/thread-self").unwrap(); // "<pid>/task/<tid>"
    ///     tx.send(me.file_name().unwrap().to_str().unwrap().parse::<u32>().unwrap()).unwrap();
    ///     done_rx.recv().unwrap();
    /// });
    /// let tid = rx.recv().unwrap();
    /// assert_eq!(lock.release().unwrap_err().holder(), Some(tid)); // not ours to release
    /// done_tx.send(()).unwrap();
    /// t.join().unwrap();
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn holder(&self) -> Option<u32> {
        self.holder
    }
}

impl fmt::Display for NotHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.what;
        match self.holder {
            Some(tid) => write!(
                f,
                "cannot release a {what} this thread does not hold (thread {tid} holds it)"
            ),
            None => write!(f, "cannot release a {what} that is not locked"),
        }
    }
}

impl std::error::Error for NotHeld {}

/// The object has no lock to take (it was made `without_lock`).
///
/// # Examples
/// ```
/// use shoal::Value;
///
/// let raw = Value::without_lock(1u32)?;
/// let e = raw.lock().unwrap_err();
/// assert_eq!(e.to_string(), "this shared value was created without a lock");
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoLock {
    pub(crate) what: &'static str,
}

impl fmt::Display for NoLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "this shared {} was created without a lock", self.what)
    }
}

impl std::error::Error for NoLock {}

/// Why [`Value::lock`](crate::Value::lock) or [`Array::lock`](crate::Array::lock) gave
/// no plain guard: one flat error, as std's `TryLockError` is for `Mutex::try_lock`.
///
/// [`into_guard`](GuardError::into_guard) keeps going after a dead holder (the guard is
/// inside) and leaves only [`NoLock`], which is `'static`, for `?`.
///
/// # Examples
/// ```
/// use shoal::sync::GuardError;
/// use shoal::Value;
///
/// let balance = Value::new(100i64)?;
/// let handle = balance.clone();
/// std::thread::spawn(move || std::mem::forget(handle.lock().unwrap()))
///     .join()
///     .unwrap(); // the thread ended holding the lock
/// match balance.lock() {
///     Err(GuardError::OwnerDied(died)) => *died.into_inner() += 1, // check, then go on
///     other => panic!("the holder died: {other:?}"),
/// }
/// *balance.lock().or_else(GuardError::into_guard)? += 1; // the usual form
/// assert_eq!(balance.load(), 102);
///
/// let raw = Value::without_lock(0u8)?;
/// let e = raw.lock().unwrap_err();
/// assert!(matches!(e, GuardError::NoLock(_)));
/// assert_eq!(e.to_string(), "this shared value was created without a lock");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub enum GuardError<G> {
    /// The value or array was made without a lock.
    NoLock(NoLock),
    /// The lock was taken, but its previous holder had died holding it: what it guards
    /// may be half-written. The guard is inside.
    OwnerDied(OwnerDied<G>),
}

/// The result of [`Value::lock`](crate::Value::lock) and
/// [`Array::lock`](crate::Array::lock).
pub type GuardResult<G> = Result<G, GuardError<G>>;

impl<G> GuardError<G> {
    /// The guard when the lock was taken from a dead holder; the [`NoLock`] error
    /// otherwise. `value.lock().or_else(GuardError::into_guard)?` takes the lock
    /// whatever its previous holder did.
    ///
    /// # Errors
    /// [`NoLock`] when there is no lock to take.
    ///
    /// # Examples
    /// ```
    /// use shoal::sync::GuardError;
    ///
    /// let v = shoal::Value::new(1u32)?;
    /// *v.lock().or_else(GuardError::into_guard)? *= 7;
    /// assert_eq!(v.load(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_guard(self) -> Result<G, NoLock> {
        match self {
            GuardError::NoLock(e) => Err(e),
            GuardError::OwnerDied(died) => Ok(died.into_inner()),
        }
    }
}

impl<G> From<OwnerDied<G>> for GuardError<G> {
    fn from(e: OwnerDied<G>) -> GuardError<G> {
        GuardError::OwnerDied(e)
    }
}

impl<G> From<NoLock> for GuardError<G> {
    fn from(e: NoLock) -> GuardError<G> {
        GuardError::NoLock(e)
    }
}

impl<G> fmt::Debug for GuardError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::NoLock(e) => f.debug_tuple("NoLock").field(e).finish(),
            GuardError::OwnerDied(e) => f.debug_tuple("OwnerDied").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for GuardError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::NoLock(e) => e.fmt(f),
            GuardError::OwnerDied(e) => e.fmt(f),
        }
    }
}

impl<G> std::error::Error for GuardError<G> {}

/// A semaphore release was refused; the count is unchanged.
///
/// # Examples
/// ```
/// use shoal::sync::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1)?;
/// assert_eq!(sem.release(), Err(ReleaseError::OverReleased { limit: 1 }));
/// assert_eq!(sem.value(), 1); // unchanged
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
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
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::sync::{Barrier, BarrierError};
///
/// let barrier = Barrier::new(2)?; // the other party never comes
/// assert_eq!(barrier.wait_timeout(Duration::from_millis(10)), Err(BarrierError::Timeout));
/// assert_eq!(barrier.wait(), Err(BarrierError::Broken)); // broken for everyone now
/// barrier.reset();
/// assert!(!barrier.is_broken());
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: it was aborted, reset while this caller waited, another
    /// waiter timed out, or a process died while updating the barrier's state. Every
    /// later wait fails the same way until [`reset`](crate::sync::Barrier::reset).
    Broken,
    /// This caller's timeout expired; the barrier is now broken for everyone else.
    Timeout,
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BarrierError::Broken => {
                "the barrier is broken: it was aborted or reset, a waiter timed out, or a party died updating it"
            }
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
    fn messages_are_sentences_with_context() {
        let e = OwnerDied::new((), 1234, 99);
        assert_eq!(
            e.to_string(),
            "the previous holder of the lock (thread 1234 of process 99) died while holding it"
        );
        let n = NotHeld {
            what: "lock",
            holder: None,
        };
        assert_eq!(n.to_string(), "cannot release a lock that is not locked");
        let w = SyncError::WrongPrimitive {
            expected: "event",
            found: "a re-entrant lock".to_owned(),
        };
        assert_eq!(
            w.to_string(),
            "the shared segment received holds a re-entrant lock, not an event"
        );
        let msgs = [
            SyncError::InvalidParties { parties: 0 }.to_string(),
            ReleaseError::OverReleased { limit: 2 }.to_string(),
            BarrierError::Broken.to_string(),
            BarrierError::Timeout.to_string(),
        ];
        for m in msgs {
            assert!(m.chars().next().unwrap().is_lowercase(), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
        let t: TryLockError<()> = TryLockError::Timeout;
        assert_eq!(t.to_string(), "timed out waiting for the lock");
    }
}
