//! `wait`: block until one of several queues, connections or processes is ready.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::channel::{Connection, JoinableQueue, Queue, SimpleQueue};
use crate::sys::{self, Deadline};

/// Longest single `poll` of [`wait`]: a readiness signal consumed by another waiter of
/// the same channel (the eventfd is shared) costs at most this much latency.
const SLICE: Duration = Duration::from_millis(20);

mod sealed {
    pub trait Sealed {
        /// Registers (or unregisters) for readiness signals; false for non-channels.
        fn set_watch(&self, on: bool) -> bool;
    }
}
use sealed::Sealed;

/// Something [`wait`] can wait on: a queue or connection (ready when a `get`/`recv`
/// would not block: a message, or closed) or a [`crate::Process`] (ready when it ended).
/// Implemented by shoal's types only.
pub trait Waitable: Sealed {
    /// Whether the object is ready now.
    fn is_ready(&self) -> bool;
    /// The descriptor that becomes readable when the object may have become ready.
    fn ready_fd(&self) -> BorrowedFd<'_>;
}

macro_rules! queue_waitable {
    ($($t:ident),*) => {$(
        impl<T> Sealed for $t<T> {
            fn set_watch(&self, on: bool) -> bool {
                self.core().ring().watch(on);
                true
            }
        }
        impl<T> Waitable for $t<T> {
            fn is_ready(&self) -> bool {
                self.core().readable()
            }
            fn ready_fd(&self) -> BorrowedFd<'_> {
                self.core().ring().event_fd()
            }
        }
    )*};
}
queue_waitable!(Queue, SimpleQueue);

impl<T> Sealed for JoinableQueue<T> {
    fn set_watch(&self, on: bool) -> bool {
        (**self).set_watch(on)
    }
}
impl<T> Waitable for JoinableQueue<T> {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
    fn ready_fd(&self) -> BorrowedFd<'_> {
        (**self).ready_fd()
    }
}

impl Sealed for Connection {
    fn set_watch(&self, on: bool) -> bool {
        self.rx_core().map(|c| c.ring().watch(on)).is_some()
    }
}
impl Waitable for Connection {
    fn is_ready(&self) -> bool {
        match self.rx_core() {
            Some(rx) => rx.readable() || rx.end_dead(true),
            None => false,
        }
    }
    fn ready_fd(&self) -> BorrowedFd<'_> {
        match self.rx_core() {
            Some(rx) => rx.ring().event_fd(),
            // A send-only end is never ready; its sending ring's descriptor is only
            // signalled for the peer.
            None => self
                .tx_core()
                .map(|c| c.ring().event_fd())
                .expect("a connection has an end"),
        }
    }
}

impl Sealed for crate::Process {
    fn set_watch(&self, _on: bool) -> bool {
        false
    }
}
impl Waitable for crate::Process {
    fn is_ready(&self) -> bool {
        sys::poll_readable(&[self.sentinel()], Some(Duration::ZERO)).is_ok_and(|r| r[0])
    }
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.sentinel()
    }
}

/// Unregisters the readiness watchers of [`wait`] however it returns.
struct Watch<'a>(&'a [&'a dyn Waitable], Vec<bool>);

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        for (o, watched) in self.0.iter().zip(&self.1) {
            if *watched {
                o.set_watch(false);
            }
        }
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: no
/// limit), and returns the indices of the ready ones (empty after a timeout) — Python's
/// `multiprocessing.connection.wait`.
///
/// Queues and connections are ready when a `get`/`recv` would not block (a message is
/// there, or the channel is closed, or a pipe's sender died); a process is ready once it
/// has ended.
///
/// # Errors
/// When `poll` fails.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shoal::channel::{wait, Pipe, Queue, Waitable};
///
/// let q: Queue<u8> = Queue::new()?;
/// let (a, b) = Pipe::duplex()?;
/// a.send(&1u8)?;
/// let ready = wait(&[&q as &dyn Waitable, &b], Some(Duration::from_secs(5)))?;
/// assert_eq!(ready, vec![1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    wait_with_fds(objects, &[], timeout).map(|(ready, _)| ready)
}

/// [`wait`] over shoal objects and plain descriptors together (sockets, pipes, process
/// sentinels of other libraries): returns the indices of the ready objects and of the
/// readable descriptors (both empty after a timeout).
///
/// # Errors
/// When `poll` fails (a closed descriptor among `fds`, say).
///
/// # Examples
/// ```
/// use std::io::Write;
/// use std::os::fd::AsFd;
/// use std::time::Duration;
/// use shoal::channel::{wait_with_fds, Queue, Waitable};
///
/// let q: Queue<u8> = Queue::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// b.write_all(b"x")?;
/// let (objects, fds) = wait_with_fds(&[&q as &dyn Waitable], &[a.as_fd()], Some(Duration::from_secs(5)))?;
/// assert_eq!((objects, fds), (vec![], vec![0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait_with_fds(
    objects: &[&dyn Waitable],
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<(Vec<usize>, Vec<usize>)> {
    let deadline = Deadline::from_timeout(timeout);
    let watched: Vec<bool> = objects.iter().map(|o| o.set_watch(true)).collect();
    let watch = Watch(objects, watched);
    let mut polled: Vec<BorrowedFd<'_>> = objects.iter().map(|o| o.ready_fd()).collect();
    polled.extend_from_slice(fds);
    let mut fds_ready = Vec::new();
    loop {
        let ready: Vec<usize> = (0..objects.len())
            .filter(|&i| objects[i].is_ready())
            .collect();
        if !ready.is_empty() && fds_ready.is_empty() && !fds.is_empty() {
            // Report the descriptors that are ready too: a channel that stays ready
            // must not hide them from a caller that waits again and again.
            let now = sys::poll_readable(fds, Some(Duration::ZERO))?;
            fds_ready = (0..fds.len()).filter(|&i| now[i]).collect();
        }
        if !ready.is_empty() || !fds_ready.is_empty() || deadline.expired() {
            return Ok((ready, fds_ready));
        }
        // Sliced: a channel's eventfd is shared, and another waiter may consume a signal.
        let slice = deadline.remaining().map_or(SLICE, |left| left.min(SLICE));
        let readable = sys::poll_readable(&polled, Some(slice))?;
        // Reset the channels' descriptors that fired before looking at the rings again,
        // so that the next poll sleeps until something new happens.
        for (i, r) in readable.iter().enumerate() {
            if !*r {
                continue;
            }
            if i < objects.len() {
                if watch.1[i] {
                    let _ = sys::eventfd_drain(polled[i]);
                }
            } else {
                fds_ready.push(i - objects.len());
            }
        }
    }
}

impl Sealed for crate::net::Connection {
    fn set_watch(&self, _on: bool) -> bool {
        false
    }
}
impl Waitable for crate::net::Connection {
    /// Ready when a `recv` would not block: a message buffered or on the socket, the end
    /// of the stream, or a closed connection (whose `recv` fails at once).
    fn is_ready(&self) -> bool {
        self.poll(Duration::ZERO).unwrap_or(true)
    }
    fn ready_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_ready_channel_does_not_hide_ready_descriptors() {
        let q: Queue<u8> = Queue::new().unwrap();
        q.put(1).unwrap();
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.write_all(b"x").unwrap();
        let (objects, fds) = wait_with_fds(
            &[&q as &dyn Waitable],
            &[a.as_fd()],
            Some(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!((objects, fds), (vec![0], vec![0]));
    }
}
