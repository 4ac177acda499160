//! Async forms of the channel operations (the `tokio` feature).
//!
//! A get first tries the non-blocking operation; when the ring is empty it registers as
//! a readiness watcher (producers then signal the ring's eventfd after each commit),
//! wraps a duplicate of that eventfd in [`tokio::io::unix::AsyncFd`], and loops: clear
//! the eventfd, try again, await readability. Registering *before* the retry closes the
//! race with a producer that commits between the retry and the await: it sees the
//! watcher and signals.
//!
//! A put tries the non-blocking operation and, while the ring is full, retries after a
//! tokio sleep that doubles from 20 µs to 5 ms. The ring's eventfd signals data only, so
//! there is no descriptor to await for space; sleeping instead of blocking a thread in
//! `spawn_blocking` keeps the future cancel-safe: a put future dropped while it waits
//! never puts its message later, and holds no thread.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::unix::AsyncFd;

use super::endpoint::{Endpoint, Wait};
use super::{Connection, GetError, PutError, Queue, Readiness};
use crate::codec::Codec;
use crate::sys;

/// How often a pipe's receiver or sender checks that its peer still lives.
const PEER_CHECK: Duration = Duration::from_millis(20);
/// First and longest sleep of a put that finds the ring full.
const PUT_NAP_MIN: Duration = Duration::from_micros(20);
const PUT_NAP_MAX: Duration = Duration::from_millis(5);

/// A readiness registration and its own duplicate of the ring's eventfd, registered
/// with tokio's reactor (which refuses the same descriptor number twice, while two tasks
/// of one process may wait on one ring at the same time).
struct Watch {
    readiness: Readiness,
    fd: AsyncFd<OwnedFd>,
}

impl Watch {
    fn new(core: &Arc<Endpoint>) -> Option<Watch> {
        let readiness = Readiness::new(Arc::clone(core));
        let dup = readiness.as_fd().try_clone_to_owned().ok()?;
        let fd = sys::eventfd_async(dup).ok()?;
        Some(Watch { readiness, fd })
    }
}

/// Runs the non-blocking `op` until it finds a message (or fails otherwise), awaiting
/// the ring's readiness in between. `dead` says whether the only sender died (pipes):
/// then what is left is drained and the end of stream reported.
async fn get_with<R>(
    core: &Arc<Endpoint>,
    mut op: impl FnMut(&Endpoint) -> Result<R, GetError>,
    dead: impl Fn() -> bool,
) -> Result<R, GetError> {
    match op(core) {
        Err(GetError::Empty) => {}
        other => return other,
    }
    // Without a spare descriptor (EMFILE) or a reactor registration, fall back to naps.
    let watch = Watch::new(core);
    loop {
        if let Some(w) = &watch {
            w.readiness.clear();
        }
        match op(core) {
            Err(GetError::Empty) => {}
            other => return other,
        }
        if dead() {
            return match op(core) {
                Err(GetError::Empty) => Err(GetError::Closed),
                other => other,
            };
        }
        match &watch {
            Some(w) => match tokio::time::timeout(PEER_CHECK, w.fd.readable()).await {
                Ok(Ok(mut guard)) => guard.clear_ready(),
                Ok(Err(_)) => tokio::time::sleep(PUT_NAP_MAX).await,
                Err(_elapsed) => {}
            },
            None => tokio::time::sleep(PUT_NAP_MAX).await,
        }
    }
}

/// Runs the non-blocking `op` until the ring takes `msg` (or fails otherwise), sleeping
/// with exponential backoff while it is full. `dead` says whether the only receiver
/// died (pipes): the put then fails with `Closed`.
async fn put_with<M>(
    mut msg: M,
    mut op: impl FnMut(M) -> Result<(), PutError<M>>,
    dead: impl Fn() -> bool,
) -> Result<(), PutError<M>> {
    let mut nap = PUT_NAP_MIN;
    loop {
        match op(msg) {
            Err(PutError::Full(m)) => msg = m,
            other => return other,
        }
        if dead() {
            return Err(PutError::Closed(msg));
        }
        tokio::time::sleep(nap).await;
        nap = (nap * 2).min(PUT_NAP_MAX);
    }
}

impl<T> Queue<T> {
    /// [`get_bytes`](Queue::get_bytes) as a future: waits for a message on tokio's
    /// reactor (through the queue's readiness eventfd) instead of blocking the thread.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the queue is closed and drained.
    ///
    /// # Panics
    /// Outside a tokio runtime with its IO and time drivers enabled, when it has to
    /// wait.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let q: shoal::channel::Queue<()> = shoal::channel::Queue::new()?;
    /// let q2 = q.clone();
    /// std::thread::spawn(move || q2.put_bytes(b"hi").unwrap());
    /// assert_eq!(q.get_bytes_async().await?, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn get_bytes_async(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        get_with(
            self.core(),
            |c| c.get_bytes_into(&mut v, Wait::No),
            || false,
        )
        .await?;
        Ok(v)
    }

    /// [`put_bytes`](Queue::put_bytes) as a future: while the queue is full it sleeps
    /// on tokio's timer (20 µs, doubling up to 5 ms) instead of blocking the thread.
    /// Dropping the future before it completes never puts the message.
    ///
    /// # Errors
    /// [`PutError::Closed`] after [`close`](Queue::close).
    ///
    /// # Panics
    /// Outside a tokio runtime with its time driver enabled, when it has to wait.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let q: shoal::channel::Queue<()> = shoal::channel::Queue::new()?;
    /// q.put_bytes_async(b"hi").await?;
    /// assert_eq!(q.get_bytes_async().await?, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn put_bytes_async(&self, data: &[u8]) -> Result<(), PutError<()>> {
        let core = self.core();
        put_with((), |()| core.put_bytes(data, Wait::No), || false).await
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// [`get`](Queue::get) as a future (see [`get_bytes_async`](Queue::get_bytes_async)).
    ///
    /// # Errors
    /// [`GetError::Closed`] once closed and drained; [`GetError::Decode`].
    ///
    /// # Panics
    /// Outside a tokio runtime with its IO and time drivers enabled, when it has to
    /// wait.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let q: shoal::channel::Queue<u32> = shoal::channel::Queue::new()?;
    /// q.put_async(7).await?;
    /// assert_eq!(q.get_async().await?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn get_async(&self) -> Result<T, GetError> {
        get_with(self.core(), |c| c.get_value(Wait::No), || false).await
    }

    /// [`put`](Queue::put) as a future (see [`put_bytes_async`](Queue::put_bytes_async)):
    /// a failed put gives the message back.
    ///
    /// # Errors
    /// [`PutError::Closed`] with the message; [`PutError::Encode`].
    ///
    /// # Panics
    /// Outside a tokio runtime with its time driver enabled, when it has to wait.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let q: shoal::channel::Queue<String> = shoal::channel::Queue::with_maxsize(1)?;
    /// q.put_async("one".to_owned()).await?;
    /// let q2 = q.clone();
    /// let second = tokio::spawn(async move { q2.put_async("two".to_owned()).await });
    /// assert_eq!(q.get_async().await?, "one");
    /// second.await??;
    /// assert_eq!(q.get_async().await?, "two");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn put_async(&self, msg: T) -> Result<(), PutError<T>> {
        let core = self.core();
        put_with(msg, |m| core.put_value(m, Wait::No), || false).await
    }
}

impl Connection {
    /// [`recv_bytes`](Connection::recv_bytes) as a future: waits on tokio's reactor
    /// (through the ring's readiness eventfd) instead of blocking the thread.
    ///
    /// # Errors
    /// [`GetError::Closed`] at end of stream (the peer closed or died, nothing left).
    ///
    /// # Panics
    /// Outside a tokio runtime with its IO and time drivers enabled, when it has to
    /// wait.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (a, b) = shoal::channel::Pipe::duplex()?;
    /// std::thread::spawn(move || a.send_bytes(b"ping").unwrap());
    /// assert_eq!(b.recv_bytes_async().await?, b"ping");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn recv_bytes_async(&self) -> Result<Vec<u8>, GetError> {
        let rx = self.rx_core().ok_or(GetError::Closed)?;
        rx.note_end(false);
        let mut v = Vec::new();
        get_with(
            rx,
            |c| c.get_bytes_into(&mut v, Wait::No),
            || rx.end_dead(true),
        )
        .await?;
        Ok(v)
    }

    /// [`recv`](Connection::recv) as a future (see
    /// [`recv_bytes_async`](Connection::recv_bytes_async)).
    ///
    /// # Errors
    /// `Closed` at end of stream; `Decode`.
    ///
    /// # Panics
    /// Outside a tokio runtime with its IO and time drivers enabled, when it has to
    /// wait.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (a, b) = shoal::channel::Pipe::duplex()?;
    /// a.send_async(&(1u8, "one")).await?;
    /// assert_eq!(b.recv_async::<(u8, String)>().await?, (1, "one".to_owned()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn recv_async<T: DeserializeOwned>(&self) -> Result<T, GetError> {
        let rx = self.rx_core().ok_or(GetError::Closed)?;
        rx.note_end(false);
        get_with(rx, |c| c.get_value(Wait::No), || rx.end_dead(true)).await
    }

    /// [`send_bytes`](Connection::send_bytes) as a future: while the ring is full it
    /// sleeps on tokio's timer (20 µs, doubling up to 5 ms). Dropping the future before
    /// it completes never sends the message.
    ///
    /// # Errors
    /// [`PutError::Closed`] when this end cannot send, was closed, or the peer closed or
    /// died while the ring was full.
    ///
    /// # Panics
    /// Outside a tokio runtime with its time driver enabled, when it has to wait.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (tx, rx) = shoal::channel::Pipe::simplex()?;
    /// tx.send_bytes_async(b"pong").await?;
    /// assert_eq!(rx.recv_bytes_async().await?, b"pong");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn send_bytes_async(&self, data: &[u8]) -> Result<(), PutError<()>> {
        let tx = self.tx_core().ok_or(PutError::Closed(()))?;
        tx.note_end(true);
        put_with((), |()| tx.put_bytes(data, Wait::No), || tx.end_dead(false)).await
    }

    /// [`send`](Connection::send) as a future (see
    /// [`send_bytes_async`](Connection::send_bytes_async)).
    ///
    /// # Errors
    /// As [`send_bytes_async`](Connection::send_bytes_async), and `Encode`.
    ///
    /// # Panics
    /// Outside a tokio runtime with its time driver enabled, when it has to wait.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (a, b) = shoal::channel::Pipe::duplex()?;
    /// b.send_async("hello").await?;
    /// assert_eq!(a.recv_async::<String>().await?, "hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn send_async<T: Serialize + ?Sized>(&self, msg: &T) -> Result<(), PutError<()>> {
        let bytes = Codec::Bincode
            .encode(msg)
            .map_err(|e| PutError::Encode((), e))?;
        self.send_bytes_async(&bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn two_waiters_in_one_process_share_the_ring() {
        rt().block_on(async {
            let q: Queue<u32> = Queue::new().unwrap();
            let a = tokio::spawn({
                let q = q.clone();
                async move { q.get_async().await.unwrap() }
            });
            let b = tokio::spawn({
                let q = q.clone();
                async move { q.get_async().await.unwrap() }
            });
            tokio::task::yield_now().await;
            q.put(1).unwrap();
            q.put(2).unwrap();
            let mut got = [a.await.unwrap(), b.await.unwrap()];
            got.sort();
            assert_eq!(got, [1, 2]);
        });
    }

    #[test]
    fn close_wakes_an_async_getter() {
        rt().block_on(async {
            let q: Queue<u32> = Queue::new().unwrap();
            let q2 = q.clone();
            let waiter = tokio::spawn(async move { q2.get_async().await });
            tokio::task::yield_now().await;
            q.close();
            assert!(matches!(waiter.await.unwrap(), Err(GetError::Closed)));
        });
    }
}
