//! A flag that processes can wait for.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shm::Segment;
use crate::sync::primitive::Primitive;
use crate::sync::spin;
use crate::sync::SyncError;
use crate::sys::{Deadline, WaitOutcome};

/// The in-segment state of an event.
///
/// `word` is the futex word: bit 0 is the flag, bits 1.. count the `set` calls that
/// found the flag clear (wrapping).
///
/// | `word` | meaning |
/// |---|---|
/// | `g << 1` | clear; `g` sets so far |
/// | `g << 1 \| 1` | set by the `g`-th set |
///
/// A waiter that saw the flag clear with the word at `w` returns as soon as the word
/// differs from `w`: only a `set` changes a clear word, so a set followed at once by a
/// `clear` still releases every waiter that was there (as Python's `Event` does), instead
/// of being missed by waiters that wake after the clear.
///
/// `sleepers` counts the waiters that may sleep; `set` reads it after changing the word
/// (`SeqCst` on both sides, a Dekker pair as in the semaphore) and makes the `FUTEX_WAKE`
/// call only when it is non-zero.
#[repr(C)]
struct EventState {
    word: AtomicU32,
    sleepers: AtomicU32,
}

// SAFETY: #[repr(C)], only atomics (and padding never read): every bit pattern is a
// valid state, shared between processes only through atomic operations; alignment ≤ 64.
#[allow(unsafe_code)]
unsafe impl crate::shm::PayloadState for EventState {}

const _: () = {
    assert!(std::mem::offset_of!(EventState, word) == 0);
    assert!(std::mem::offset_of!(EventState, sleepers) == 4);
    assert!(std::mem::size_of::<EventState>() == 8);
};

const SET: u32 = 1;

/// A flag shared between processes, which waiters block on until it is set (Python's
/// `multiprocessing.Event`).
///
/// [`set`](Event::set) raises the flag and wakes every waiter; it makes no system call
/// when nobody sleeps. [`wait`](Event::wait) returns at once while the flag is up;
/// otherwise it spins briefly (so that two busy processes signalling each other meet
/// without sleeping) and then sleeps on a futex. A clone is another handle on the same
/// event, and so is the value a child process receives when the event is passed as a
/// [`Process`](crate::process) argument.
///
/// # Examples
/// ```
/// use shoal::sync::Event;
///
/// let ready = Event::new()?;
/// let setter = ready.clone();
/// let t = std::thread::spawn(move || setter.set());
/// ready.wait();
/// assert!(ready.is_set());
/// # t.join().unwrap();
/// # Ok::<(), shoal::sync::SyncError>(())
/// ```
#[derive(Clone)]
pub struct Event {
    seg: Arc<Segment>,
}

impl Event {
    /// Creates an event whose flag is clear.
    ///
    /// # Errors
    /// [`SyncError::Shm`] when the shared memory cannot be created.
    ///
    /// # Examples
    /// ```
    /// assert!(!shoal::sync::Event::new()?.is_set());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn new() -> Result<Event, SyncError> {
        let seg = Primitive::Event.create(std::mem::size_of::<EventState>())?;
        // The zero-filled segment is already a clear event with no sleepers.
        Ok(Event { seg })
    }

    fn state(&self) -> &EventState {
        self.seg.state::<EventState>()
    }

    /// Raises the flag and wakes every waiter. Does nothing if it is already up.
    ///
    /// # Examples
    /// ```
    /// let ev = shoal::sync::Event::new()?;
    /// ev.set();
    /// ev.set();
    /// assert!(ev.is_set());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn set(&self) {
        let st = self.state();
        let mut w = st.word.load(Ordering::Relaxed);
        loop {
            if w & SET != 0 {
                // Already up: every waiter that saw it clear was woken by the set that
                // raised it (or will see it before it sleeps).
                return;
            }
            let next = (w | SET).wrapping_add(2);
            match st
                .word
                .compare_exchange_weak(w, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        if st.sleepers.load(Ordering::SeqCst) > 0 {
            spin::wake_all(&st.word);
        }
    }

    /// Lowers the flag; later waiters block until the next [`set`](Event::set).
    ///
    /// # Examples
    /// ```
    /// let ev = shoal::sync::Event::new()?;
    /// ev.set();
    /// ev.clear();
    /// assert!(!ev.is_set());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn clear(&self) {
        // fetch_and leaves a clear word unchanged, so waiters that saw it never take a
        // clear for a set.
        self.state().word.fetch_and(!SET, Ordering::SeqCst);
    }

    /// Whether the flag is up now.
    ///
    /// # Examples
    /// ```
    /// let ev = shoal::sync::Event::new()?;
    /// assert!(!ev.is_set());
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.state().word.load(Ordering::Acquire) & SET != 0
    }

    /// Blocks until the flag is set (returns at once if it is up).
    ///
    /// # Examples
    /// ```
    /// let ev = shoal::sync::Event::new()?;
    /// ev.set();
    /// ev.wait();
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn wait(&self) {
        while !self.wait_until(Deadline::NEVER) {}
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it was set
    /// (Python's `wait(timeout)`).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let ev = shoal::sync::Event::new()?;
    /// assert!(!ev.wait_timeout(Duration::from_millis(1)));
    /// ev.set();
    /// assert!(ev.wait_timeout(Duration::from_millis(1)));
    /// # Ok::<(), shoal::sync::SyncError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Deadline::after(timeout))
    }

    fn wait_until(&self, deadline: Deadline) -> bool {
        let st = self.state();
        // Acquire: what the setter wrote before `set` is visible once we see its word.
        let w = st.word.load(Ordering::Acquire);
        if w & SET != 0 {
            return true;
        }
        let changed = || st.word.load(Ordering::Acquire) != w;
        if spin::spin_until(changed) {
            return true;
        }
        st.sleepers.fetch_add(1, Ordering::SeqCst);
        let set = loop {
            if st.word.load(Ordering::SeqCst) != w {
                break true;
            }
            if spin::sleep_on(&st.word, w, deadline) == WaitOutcome::TimedOut {
                break changed();
            }
        };
        st.sleepers.fetch_sub(1, Ordering::SeqCst);
        set
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Primitive::Event.serialize(&self.seg, s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let seg = Primitive::Event.deserialize(d, std::mem::size_of::<EventState>())?;
        Ok(Event { seg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{decode, encode};
    use crate::sync::watchdog;
    use std::time::Instant;

    #[test]
    fn set_clear_is_set() {
        let ev = Event::new().unwrap();
        assert!(!ev.is_set());
        ev.set();
        assert!(ev.is_set());
        ev.clear();
        ev.clear();
        assert!(!ev.is_set());
        fn check<T: Send + Sync + Clone>() {}
        check::<Event>();
    }

    #[test]
    fn timeout_waits_at_least_the_timeout() {
        watchdog(|| {
            let ev = Event::new().unwrap();
            let start = Instant::now();
            assert!(!ev.wait_timeout(Duration::from_millis(30)));
            assert!(start.elapsed() >= Duration::from_millis(30));
        });
    }

    #[test]
    fn a_set_then_clear_still_releases_sleepers() {
        watchdog(|| {
            let ev = Event::new().unwrap();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let ev = ev.clone();
                    std::thread::spawn(move || ev.wait_timeout(Duration::from_secs(20)))
                })
                .collect();
            // Let them reach the futex (not required for correctness, only for coverage).
            while ev.state().sleepers.load(Ordering::SeqCst) < 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            ev.set();
            ev.clear();
            for w in waiters {
                assert!(w.join().unwrap());
            }
            // Every sleeper deregistered: the next set makes no system call.
            assert_eq!(ev.state().sleepers.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn handoff_round_trip_and_wrong_primitive() {
        let ev = Event::new().unwrap();
        let enc = encode(&ev).unwrap();
        let back: Event = decode(&enc.bytes, enc.fds).unwrap();
        back.set();
        assert!(ev.is_set());

        let enc = encode(&ev).unwrap();
        let err = decode::<crate::sync::Barrier>(&enc.bytes, enc.fds).unwrap_err();
        assert!(err.to_string().contains("an event, not a barrier"), "{err}");

        // A segment of another kind altogether is refused by the segment layer.
        let shm = crate::SharedMemory::new(64).unwrap();
        let enc = encode(&shm).unwrap();
        let err = decode::<Event>(&enc.bytes, enc.fds).unwrap_err();
        assert!(
            err.to_string().contains("could not receive an event"),
            "{err}"
        );
    }
}
