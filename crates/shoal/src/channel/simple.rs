//! `SimpleQueue<T>`: the small queue of Python's `multiprocessing.SimpleQueue`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::endpoint::{deserialize_endpoint, serialize_endpoint, Endpoint, Wait};
use crate::channel::{CreateError, GetError, PutError, QueueBuilder, TAG_SIMPLE};

/// An unbounded-by-count queue with only `put`, `get`, `is_empty` (Python's `empty`),
/// `len` and `close` (Python's `multiprocessing.SimpleQueue`), on the same crash-safe
/// ring as [`crate::channel::Queue`]; the names are [`Queue`](crate::Queue)'s.
///
/// # Examples
/// ```
/// let q: shoal::channel::SimpleQueue<String> = shoal::channel::SimpleQueue::new()?;
/// q.put("hi".to_owned())?;
/// assert!(!q.is_empty());
/// assert_eq!(q.get()?, "hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleQueue<T> {
    core: std::sync::Arc<Endpoint>,
    _marker: std::marker::PhantomData<fn(T) -> T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> SimpleQueue<T> {
        SimpleQueue {
            core: self.core.clone(),
            _marker: std::marker::PhantomData,
        }
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("len", &self.len())
            .finish()
    }
}

impl<T> SimpleQueue<T> {
    pub(crate) fn core(&self) -> &std::sync::Arc<Endpoint> {
        &self.core
    }

    /// A simple queue with a 1 MiB ring and the bincode codec.
    ///
    /// # Errors
    /// When the kernel refuses the memory or an eventfd.
    ///
    /// # Examples
    /// ```
    /// use shoal::SimpleQueue;
    ///
    /// let q: SimpleQueue<u32> = SimpleQueue::new()?;
    /// assert!(q.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Result<SimpleQueue<T>, CreateError> {
        let b = QueueBuilder::default();
        Ok(SimpleQueue {
            core: Endpoint::create(b.ring_config(TAG_SIMPLE)?, b.chosen_codec())?,
            _marker: std::marker::PhantomData,
        })
    }

    /// Whether the queue holds no message now (Python's `empty()`).
    ///
    /// # Examples
    /// ```
    /// let q: shoal::SimpleQueue<u8> = shoal::SimpleQueue::new()?;
    /// assert!(q.is_empty());
    /// q.put(1)?;
    /// assert!(!q.is_empty());
    /// q.get()?;
    /// assert!(q.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.core.used_cells() == 0
    }

    /// How many messages the queue holds now (Python's `qsize()`, which its
    /// `SimpleQueue` lacks); other processes may change it at any moment.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::SimpleQueue<u8> = shoal::SimpleQueue::new()?;
    /// q.put(1)?;
    /// q.put(2)?;
    /// assert_eq!(q.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Closes the queue: later puts fail, gets drain then fail.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::SimpleQueue<u8> = shoal::SimpleQueue::new()?;
    /// q.put(1)?;
    /// q.close();
    /// assert!(q.put(2).unwrap_err().is_closed()); // later puts fail
    /// assert_eq!(q.get()?, 1); // gets drain...
    /// assert!(q.get().unwrap_err().is_closed()); // ...then fail
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.core.ring().close();
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// Puts `msg`, blocking while the ring is full.
    ///
    /// # Errors
    /// `Closed` or `Encode`, with the message.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::SimpleQueue<String> = shoal::SimpleQueue::new()?;
    /// q.put("kept".to_owned())?;
    /// q.close();
    /// let err = q.put("refused".to_owned()).unwrap_err();
    /// assert_eq!(err.into_inner(), "refused"); // a failed put gives the message back
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put(&self, msg: T) -> Result<(), PutError<T>> {
        self.core.put_value(msg, Wait::forever())
    }

    /// Takes the next message, blocking while empty.
    ///
    /// # Errors
    /// `Closed` once closed and drained; `Decode`.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::SimpleQueue<Vec<u8>> = shoal::SimpleQueue::new()?;
    /// let q2 = q.clone();
    /// std::thread::spawn(move || q2.put(vec![1, 2, 3]).unwrap());
    /// assert_eq!(q.get()?, [1, 2, 3]); // blocks until it comes
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self) -> Result<T, GetError> {
        self.core.get_value(Wait::forever())
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_endpoint(&self.core, TAG_SIMPLE, "SimpleQueue", s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SimpleQueue<T>, D::Error> {
        Ok(SimpleQueue {
            core: deserialize_endpoint(d, TAG_SIMPLE)?,
            _marker: std::marker::PhantomData,
        })
    }
}
