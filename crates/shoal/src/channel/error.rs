//! Errors of channel operations; a failed put gives its message back.

use std::fmt;

use crate::codec::CodecError;

/// Why a message was not put. Every variant but [`PutError::Encode`] gives the message
/// back, so that nothing is lost (crossbeam's `TrySendError::Full(msg)`).
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError<T> {
    /// The channel is full (from `try_put`).
    Full(T),
    /// The channel stayed full until the timeout (from `put_timeout`).
    Timeout(T),
    /// The channel was closed.
    Closed(T),
    /// The message could not be encoded.
    Encode(T, CodecError),
    /// An in-place reservation longer than half the ring (messages that long are only
    /// carried by the copying `put`, which streams them in parts).
    TooLarge(T),
}

impl<T> PutError<T> {
    /// The message that was not put.
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<String> = shoal::Queue::with_maxsize(1)?;
    /// q.put("first".to_owned())?;
    /// let err = q.try_put("second".to_owned()).unwrap_err();
    /// assert_eq!(err.into_inner(), "second"); // nothing is lost
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(m)
            | PutError::Timeout(m)
            | PutError::Closed(m)
            | PutError::TooLarge(m)
            | PutError::Encode(m, _) => m,
        }
    }

    /// Whether the error is [`PutError::Full`].
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::with_maxsize(1)?;
    /// q.put(1)?;
    /// let err = q.try_put(2).unwrap_err();
    /// assert!(err.is_full());
    /// assert!(!err.is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_))
    }

    /// Whether the error is [`PutError::Closed`].
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// q.close();
    /// let err = q.put(1).unwrap_err();
    /// assert!(err.is_closed());
    /// assert!(!err.is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, PutError::Closed(_))
    }

    /// Whether the error is [`PutError::Timeout`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::Queue<u8> = shoal::Queue::with_maxsize(1)?;
    /// q.put(1)?;
    /// let err = q.put_timeout(2, Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// assert_eq!(err.into_inner(), 2); // the message comes back
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, PutError::Timeout(_))
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message may not be Debug; name the variant only, like crossbeam.
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::TooLarge(_) => f.write_str("TooLarge(..)"),
            PutError::Encode(_, e) => write!(f, "Encode(.., {e:?})"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("could not put a message: the channel is full"),
            PutError::Timeout(_) => {
                f.write_str("could not put a message: the channel stayed full until the timeout")
            }
            PutError::Closed(_) => f.write_str("could not put a message: the channel is closed"),
            PutError::TooLarge(_) => f.write_str(
                "could not reserve room for a message in place: it is longer than half the ring",
            ),
            PutError::Encode(_, e) => write!(f, "could not put a message: {e}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PutError::Encode(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Why no message was received. Two errors are equal when their variants and contents
/// are.
///
/// # Examples
/// ```
/// use shoal::channel::GetError;
///
/// let (tx, rx) = shoal::Pipe::simplex()?;
/// tx.send_bytes(b"four")?;
/// let err = rx.recv_bytes_into(&mut [0u8; 2]).unwrap_err();
/// assert_eq!(err, GetError::BufferTooShort(b"four".to_vec())); // the message is in it
/// assert_ne!(err, GetError::BufferTooShort(b"five".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetError {
    /// Nothing to take (from `try_get`).
    Empty,
    /// Nothing arrived before the timeout (from `get_timeout`).
    Timeout,
    /// The channel is closed and drained (for a pipe: the peer closed its end or died).
    Closed,
    /// The buffer given to `recv_bytes_into` was too short; the message (consumed) is here.
    BufferTooShort(Vec<u8>),
    /// A message was taken but could not be decoded; its bytes are here.
    Decode {
        /// What the codec reported.
        error: CodecError,
        /// The message as received.
        bytes: Vec<u8>,
    },
}

impl GetError {
    /// Whether the error is [`GetError::Empty`].
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// let err = q.try_get().unwrap_err();
    /// assert!(err.is_empty());
    /// assert!(!err.is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, GetError::Empty)
    }

    /// Whether the error is [`GetError::Closed`].
    ///
    /// # Examples
    /// ```
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// q.put(7)?;
    /// q.close();
    /// assert_eq!(q.get()?, 7); // what was put before the close is still delivered
    /// assert!(q.get().unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, GetError::Closed)
    }

    /// Whether the error is [`GetError::Timeout`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let q: shoal::Queue<u8> = shoal::Queue::new()?;
    /// let err = q.get_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// assert!(!err.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, GetError::Timeout)
    }
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => f.write_str("could not get a message: the channel is empty"),
            GetError::Timeout => {
                f.write_str("could not get a message: nothing arrived before the timeout")
            }
            GetError::Closed => {
                f.write_str("could not get a message: the channel is closed and empty")
            }
            GetError::BufferTooShort(bytes) => write!(
                f,
                "could not receive a {}-byte message into a shorter buffer",
                bytes.len()
            ),
            GetError::Decode { error, bytes } => write!(
                f,
                "received a {}-byte message that could not be decoded: {error}",
                bytes.len()
            ),
        }
    }
}

impl std::error::Error for GetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GetError::Decode { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A channel could not be created: a setting it cannot use, or the operating system's
/// refusal (kept as the [`source`](std::error::Error::source)).
///
/// # Examples
/// ```
/// use std::error::Error;
///
/// let err = shoal::Queue::builder().cell_size(100).build::<u8>().unwrap_err();
/// assert!(err.to_string().contains("cell"), "{err}");
/// assert!(err.source().is_none()); // a setting, not the kernel
/// ```
#[derive(Debug)]
pub struct CreateError {
    pub(crate) message: String,
    pub(crate) source: Option<crate::shm::ShmError>,
}

impl CreateError {
    /// A setting the channel cannot use.
    pub(crate) fn invalid(message: String) -> CreateError {
        CreateError {
            message,
            source: None,
        }
    }
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::shm::ShmError> for CreateError {
    fn from(e: crate::shm::ShmError) -> CreateError {
        CreateError {
            message: "could not create a channel".to_owned(),
            source: Some(e),
        }
    }
}
