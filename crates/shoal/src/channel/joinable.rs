//! `JoinableQueue<T>`: a [`Queue`] whose consumers mark tasks done and whose producers
//! can wait until every task is.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::endpoint::{deserialize_endpoint, serialize_endpoint, Endpoint, Wait};
use crate::channel::{CreateError, PutError, Queue, QueueBuilder, TAG_JOINABLE};
use crate::sys::{self, Deadline, WaitOutcome};

/// A queue that counts unfinished tasks (Python's `multiprocessing.JoinableQueue`).
///
/// Every successful put adds a task; [`task_done`](JoinableQueue::task_done) removes
/// one; [`join`](JoinableQueue::join) waits until none is left. All [`Queue`] methods
/// are available through `Deref`; puts must go through this type's own
/// [`put`](JoinableQueue::put) family to be counted.
///
/// A consumer that dies between its `get` and its `task_done` leaves the count one too
/// high: use [`join_timeout`](JoinableQueue::join_timeout) where consumers may die.
///
/// # Examples
/// ```
/// use shoal::channel::JoinableQueue;
///
/// let q: JoinableQueue<u32> = JoinableQueue::new()?;
/// let worker = {
///     let q = q.clone();
///     std::thread::spawn(move || {
///         for _ in 0..3 {
///             q.get().unwrap();
///             q.task_done().unwrap();
///         }
///     })
/// };
/// for i in 0..3 {
///     q.put(i)?;
/// }
/// q.join();
/// worker.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> JoinableQueue<T> {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("len", &self.queue.len())
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

/// [`JoinableQueue::task_done`] was called more often than messages were put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() was called more times than there were messages put")
    }
}

impl std::error::Error for TaskDoneError {}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> JoinableQueue<T> {
    /// A joinable queue with the default ring (1 MiB, bincode, no message bound).
    ///
    /// # Errors
    /// When the kernel refuses the memory or an eventfd.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::JoinableQueue;
    ///
    /// let q: JoinableQueue<u32> = JoinableQueue::new()?;
    /// assert_eq!(q.unfinished(), 0);
    /// assert_eq!(q.maxsize(), 0); // Queue methods work through Deref
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Result<JoinableQueue<T>, CreateError> {
        JoinableQueue::with_builder(&QueueBuilder::default())
    }

    /// A joinable queue with the options of `builder`.
    ///
    /// # Errors
    /// As [`QueueBuilder::build`].
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{JoinableQueue, Queue};
    ///
    /// let q: JoinableQueue<u32> = JoinableQueue::with_builder(&Queue::builder().maxsize(1))?;
    /// q.put(1)?;
    /// assert!(q.try_put(2).unwrap_err().is_full());
    /// assert_eq!(q.unfinished(), 1); // the failed put added no task
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_builder(builder: &QueueBuilder) -> Result<JoinableQueue<T>, CreateError> {
        let core = Endpoint::create(builder.ring_config(TAG_JOINABLE)?, builder.chosen_codec())?;
        Ok(JoinableQueue {
            queue: Queue::from_core(core),
        })
    }

    fn core(&self) -> &Arc<Endpoint> {
        self.queue.core()
    }

    /// Tasks put and not yet marked done.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::JoinableQueue<char> = shoal::JoinableQueue::new()?;
    /// q.put('a')?;
    /// q.put('b')?;
    /// assert_eq!(q.unfinished(), 2);
    /// q.get()?;
    /// assert_eq!(q.unfinished(), 2); // taken is not done
    /// q.task_done()?;
    /// assert_eq!(q.unfinished(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unfinished(&self) -> u64 {
        self.core()
            .ring()
            .tasks()
            .unfinished
            .load(Ordering::SeqCst)
            .max(0) as u64
    }

    /// The task is counted before the put so that a consumer's `task_done` can never
    /// run before the count that it cancels.
    fn counted<E>(&self, put: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        self.add_task();
        let r = put();
        if r.is_err() {
            let _ = self.remove_task();
        }
        r
    }

    fn add_task(&self) {
        self.core()
            .ring()
            .tasks()
            .unfinished
            .fetch_add(1, Ordering::SeqCst);
    }

    fn remove_task(&self) -> Result<(), TaskDoneError> {
        let t = self.core().ring().tasks();
        let before = t.unfinished.fetch_sub(1, Ordering::SeqCst);
        if before <= 0 {
            t.unfinished.fetch_add(1, Ordering::SeqCst);
            return Err(TaskDoneError);
        }
        if before == 1 {
            t.epoch.fetch_add(1, Ordering::SeqCst);
            if t.sleepers.load(Ordering::SeqCst) != 0 {
                sys::futex_wake(&t.epoch, u32::MAX);
            }
        }
        Ok(())
    }

    /// Marks one task taken with `get` as done.
    ///
    /// # Errors
    /// [`TaskDoneError`] when there is no unfinished task.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{JoinableQueue, TaskDoneError};
    ///
    /// let q: JoinableQueue<u8> = JoinableQueue::new()?;
    /// q.put(1)?;
    /// q.get()?;
    /// q.task_done()?;
    /// assert_eq!(q.task_done(), Err(TaskDoneError)); // one more than was put
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.remove_task()
    }

    /// Waits until every task put has been marked done.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::JoinableQueue<u8> = shoal::JoinableQueue::new()?;
    /// let worker = {
    ///     let q = q.clone();
    ///     std::thread::spawn(move || {
    ///         let n = q.get().unwrap();
    ///         q.task_done().unwrap();
    ///         n
    ///     })
    /// };
    /// q.put(9)?;
    /// q.join(); // returns once the worker marked its task done
    /// assert_eq!(q.unfinished(), 0);
    /// assert_eq!(worker.join().unwrap(), 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(&self) {
        self.join_until(Deadline::NEVER);
    }

    /// [`join`](JoinableQueue::join) for at most `timeout`; returns whether every task
    /// was done.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::JoinableQueue<u8> = shoal::JoinableQueue::new()?;
    /// q.put(1)?;
    /// assert!(!q.join_timeout(Duration::from_millis(10))); // one task left
    /// q.get()?;
    /// q.task_done()?;
    /// assert!(q.join_timeout(Duration::from_millis(10)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_until(Deadline::after(timeout))
    }

    fn join_until(&self, deadline: Deadline) -> bool {
        let t = self.core().ring().tasks();
        loop {
            if t.unfinished.load(Ordering::SeqCst) <= 0 {
                return true;
            }
            t.sleepers.fetch_add(1, Ordering::SeqCst);
            let epoch = t.epoch.load(Ordering::SeqCst);
            if t.unfinished.load(Ordering::SeqCst) <= 0 {
                t.sleepers.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            let out = sys::futex_wait(&t.epoch, epoch, deadline);
            t.sleepers.fetch_sub(1, Ordering::SeqCst);
            if matches!(out, Ok(WaitOutcome::TimedOut)) {
                return t.unfinished.load(Ordering::SeqCst) <= 0;
            }
        }
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Puts `msg` as a new task, blocking while full.
    ///
    /// # Errors
    /// As [`Queue::put`]; a failed put adds no task.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::JoinableQueue<String> = shoal::JoinableQueue::new()?;
    /// q.put("job".to_owned())?;
    /// assert_eq!(q.unfinished(), 1);
    /// assert_eq!(q.get()?, "job");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put(&self, msg: T) -> Result<(), PutError<T>> {
        self.counted(|| self.core().put_value(msg, Wait::forever()))
    }

    /// Puts `msg` as a new task, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// use shoal::channel::{JoinableQueue, PutError, Queue};
    ///
    /// let q: JoinableQueue<u8> = JoinableQueue::with_builder(&Queue::builder().maxsize(1))?;
    /// q.put_timeout(1, Duration::from_millis(10))?;
    /// let full = q.put_timeout(2, Duration::from_millis(10));
    /// assert_eq!(full, Err(PutError::Timeout(2)));
    /// assert_eq!(q.unfinished(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_timeout(&self, msg: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.counted(|| self.core().put_value(msg, Wait::timeout(timeout)))
    }

    /// Puts `msg` as a new task if there is room now.
    ///
    /// # Errors
    /// As [`Queue::try_put`].
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{JoinableQueue, PutError, Queue};
    ///
    /// let q: JoinableQueue<u8> = JoinableQueue::with_builder(&Queue::builder().maxsize(1))?;
    /// q.try_put(1)?;
    /// assert_eq!(q.try_put(2), Err(PutError::Full(2)));
    /// assert_eq!(q.unfinished(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_put(&self, msg: T) -> Result<(), PutError<T>> {
        self.counted(|| self.core().put_value(msg, Wait::No))
    }
}

/// Raw-byte puts, counted as tasks like [`put`](JoinableQueue::put) (they shadow the
/// queue's uncounted ones).
impl<T> JoinableQueue<T> {
    /// [`Queue::put_bytes`], counting a new task.
    ///
    /// # Errors
    /// As [`Queue::put_bytes`].
    ///
    /// # Examples
    /// ```
    /// let q: shoal::JoinableQueue<Vec<u8>> = shoal::JoinableQueue::new()?;
    /// q.put_bytes(b"raw")?;
    /// assert_eq!(q.unfinished(), 1);
    /// assert_eq!(q.get_bytes()?, b"raw");
    /// q.task_done()?;
    /// assert_eq!(q.unfinished(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_bytes(&self, data: &[u8]) -> Result<(), PutError<()>> {
        self.counted(|| self.core().put_bytes(data, Wait::forever()))
    }

    /// [`Queue::put_bytes_timeout`], counting a new task.
    ///
    /// # Errors
    /// As [`Queue::put_bytes_timeout`]; no task is counted then.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shoal::channel::{JoinableQueue, Queue};
    ///
    /// let q: JoinableQueue<u8> = JoinableQueue::with_builder(&Queue::builder().maxsize(1))?;
    /// q.put_bytes_timeout(b"a", Duration::from_secs(1))?;
    /// assert!(q.put_bytes_timeout(b"b", Duration::from_millis(1)).is_err());
    /// assert_eq!(q.unfinished(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_bytes_timeout(&self, data: &[u8], timeout: Duration) -> Result<(), PutError<()>> {
        self.counted(|| self.core().put_bytes(data, Wait::timeout(timeout)))
    }

    /// [`Queue::try_put_bytes`], counting a new task.
    ///
    /// # Errors
    /// As [`Queue::try_put_bytes`]; no task is counted then.
    ///
    /// # Examples
    /// ```
    /// use shoal::channel::{JoinableQueue, Queue};
    ///
    /// let q: JoinableQueue<u8> = JoinableQueue::with_builder(&Queue::builder().maxsize(1))?;
    /// q.try_put_bytes(b"a")?;
    /// assert!(q.try_put_bytes(b"b").unwrap_err().is_full());
    /// assert_eq!(q.unfinished(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_put_bytes(&self, data: &[u8]) -> Result<(), PutError<()>> {
        self.counted(|| self.core().put_bytes(data, Wait::No))
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_endpoint(self.core(), TAG_JOINABLE, "JoinableQueue", s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JoinableQueue<T>, D::Error> {
        Ok(JoinableQueue {
            queue: Queue::from_core(deserialize_endpoint(d, TAG_JOINABLE)?),
        })
    }
}
