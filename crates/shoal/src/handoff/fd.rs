//! [`Fd`]: an OS resource (socket, listener, file, any descriptor) inside an object
//! that travels through a handoff.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, OwnedFd};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{export_fd, import_fd};

/// A socket, listener, file or any other owner of a descriptor (`TcpStream`,
/// `TcpListener`, `UnixStream`, `UnixListener`, `File`, `OwnedFd`…) that travels to
/// another process as its descriptor: as (or inside) a [`Process`](crate::Process)
/// argument or a pool task's argument, under every start method, like shoal's own
/// objects.
///
/// The receiving process gets a duplicate of the descriptor (the same open socket or
/// file, sharing its offset); the sender keeps its own.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::net::{TcpListener, TcpStream};
/// use shoal::handoff::Fd;
///
/// fn greet(mut conn: Fd<TcpStream>) {
///     conn.write_all(b"hello from the child").unwrap();
/// }
/// shoal::entry!(greet);
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let mut client = TcpStream::connect(listener.local_addr()?)?;
/// let (accepted, _) = listener.accept()?;
/// let child = shoal::Process::new(greet, Fd(accepted)).start()?;
/// assert_eq!(child.join()?, 0);
/// let mut got = String::new();
/// client.read_to_string(&mut got)?;
/// assert_eq!(got, "hello from the child");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Fd<T>(pub T);

impl<T> Fd<T> {
    /// The resource itself.
    ///
    /// # Examples
    /// ```
    /// use shoal::handoff::Fd;
    ///
    /// let file = Fd(std::fs::File::open("/dev/null")?);
    /// let file: std::fs::File = file.into_inner();
    /// assert!(file.metadata()?.len() == 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Fd<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Fd<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Fd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fd").field(&self.0).finish()
    }
}

impl<T: AsFd> Serialize for Fd<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let index =
            export_fd(self.0.as_fd(), "descriptor (socket or file)").map_err(S::Error::custom)?;
        index.serialize(s)
    }
}

impl<'de, T: From<OwnedFd>> Deserialize<'de> for Fd<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fd<T>, D::Error> {
        let index = u32::deserialize(d)?;
        let fd = import_fd(index).map_err(D::Error::custom)?;
        Ok(Fd(T::from(fd)))
    }
}
