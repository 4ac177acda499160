//! A listener's background acceptor: it takes clients off the listening socket and
//! runs each handshake on a handshake thread of its own, so that a silent or slow client
//! holds one slot, never the listener.
//!
//! ```text
//! listening socket ──acceptor thread──▶ handshake threads ──▶ ready queue ──▶ accept()
//!                                        (TLS, HMAC, with        (connections and
//!                                         the handshake limit)    failed clients' errors)
//! ```
//!
//! The bound (`max_pending`) counts the handshakes in flight plus the results waiting in
//! the ready queue. At the bound the acceptor leaves new clients in the kernel's backlog
//! until a handshake ends and `accept` takes its result, so neither threads nor finished
//! connections pile up without limit. A listener without an auth key and without TLS has
//! no handshake: its connections go straight to the ready queue.
//!
//! The ready queue's eventfd is readable exactly while the queue holds a result (both
//! change under the state lock), which makes it the listener's descriptor for `epoll`,
//! tokio or a `wait` over several objects.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::net::connection::Role;
use crate::net::options::Options;
use crate::net::socket::{ListenSocket, Socket};
use crate::net::{Connection, NetError};
use crate::sys;

/// How many handshakes a listener runs at once unless told otherwise.
pub(crate) const DEFAULT_MAX_PENDING: usize = 64;

/// How long the acceptor rests after the listening socket failed (`EMFILE` and the
/// like stay true for a while; retrying at once would only spin).
const BACKOFF: Duration = Duration::from_millis(100);

/// What the acceptor, the handshake threads and `accept` share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a result joins the ready queue (blocking `accept` waits on it).
    ready_cv: Condvar,
    /// Readable while the ready queue holds a result.
    ready_fd: OwnedFd,
    /// Wakes the acceptor thread: a slot was freed, or the listener is being dropped.
    wake_fd: OwnedFd,
    max_pending: usize,
    opts: Options,
}

#[derive(Default)]
struct State {
    /// Finished handshakes, in the order they finished.
    ready: VecDeque<Result<Connection, NetError>>,
    /// The sockets of the handshakes in flight, so that dropping the listener can shut
    /// them down (which ends their handshakes at once).
    in_flight: HashMap<u64, Arc<Socket>>,
    next_id: u64,
    /// The listener is gone: results are dropped, the acceptor thread ends.
    stopped: bool,
}

impl State {
    fn pending(&self) -> usize {
        self.in_flight.len() + self.ready.len()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Nothing panics while holding the state lock but an allocation failure; the state
    // is consistent between statements, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Queues a result for `accept` (the caller holds the state lock).
    fn push(&self, state: &mut State, result: Result<Connection, NetError>) {
        state.ready.push_back(result);
        if state.ready.len() == 1 {
            // An eventfd write fails only for a descriptor that is not an eventfd.
            let _ = sys::eventfd_signal(self.ready_fd.as_fd());
        }
        self.ready_cv.notify_one();
    }

    /// Takes the oldest result (the caller holds the state lock).
    fn pop(&self, state: &mut State) -> Option<Result<Connection, NetError>> {
        let result = state.ready.pop_front()?;
        if state.ready.is_empty() {
            let _ = sys::eventfd_drain(self.ready_fd.as_fd());
        }
        // A slot is free: the acceptor may take the next client.
        let _ = sys::eventfd_signal(self.wake_fd.as_fd());
        Some(result)
    }

    /// A handshake thread's end: its slot moves from in flight to the ready queue.
    fn finish(&self, id: u64, result: Result<Connection, NetError>) {
        let mut state = lock(&self.state);
        state.in_flight.remove(&id);
        if state.stopped {
            drop(state);
            // Nobody will accept it: the connection closes here.
            drop(result);
            return;
        }
        self.push(&mut state, result);
    }
}

/// The background half of a [`Listener`](crate::net::Listener).
pub(crate) struct Acceptor {
    shared: Arc<Shared>,
    socket: Arc<ListenSocket>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("Acceptor")
            .field("socket", &self.socket)
            .field("in_flight", &state.in_flight.len())
            .field("ready", &state.ready.len())
            .field("max_pending", &self.shared.max_pending)
            .finish()
    }
}

impl Acceptor {
    /// Starts the acceptor thread on a bound socket.
    pub(crate) fn start(
        socket: ListenSocket,
        opts: Options,
        max_pending: usize,
    ) -> Result<Acceptor, NetError> {
        let eventfd = || sys::eventfd_create().map_err(|e| NetError::io("create an eventfd", e));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready_cv: Condvar::new(),
            ready_fd: eventfd()?,
            wake_fd: eventfd()?,
            max_pending: max_pending.max(1),
            opts,
        });
        let socket = Arc::new(socket);
        let thread = std::thread::Builder::new()
            .name("shoal-acceptor".to_owned())
            .spawn({
                let shared = shared.clone();
                let socket = socket.clone();
                move || run(&shared, &socket)
            })
            .map_err(|e| NetError::io("start the listener's acceptor thread", e))?;
        Ok(Acceptor {
            shared,
            socket,
            thread: Some(thread),
        })
    }

    /// Readable while a result waits for `accept`.
    pub(crate) fn ready_fd(&self) -> BorrowedFd<'_> {
        self.shared.ready_fd.as_fd()
    }

    /// The oldest finished handshake, waiting for one until `deadline` (`None`: for
    /// ever); `None` when the deadline passed first.
    pub(crate) fn take(&self, deadline: Option<Instant>) -> Option<Result<Connection, NetError>> {
        let mut state = lock(&self.shared.state);
        loop {
            if let Some(result) = self.shared.pop(&mut state) {
                return Some(result);
            }
            state = match deadline {
                None => self
                    .shared
                    .ready_cv
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.shared
                        .ready_cv
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// The oldest finished handshake, when one is there.
    #[cfg(feature = "tokio")]
    pub(crate) fn try_take(&self) -> Option<Result<Connection, NetError>> {
        let mut state = lock(&self.shared.state);
        self.shared.pop(&mut state)
    }

    /// A duplicate of the ready descriptor, for registering with a reactor.
    #[cfg(feature = "tokio")]
    pub(crate) fn ready_fd_dup(&self) -> Result<OwnedFd, NetError> {
        self.shared
            .ready_fd
            .try_clone()
            .map_err(|e| NetError::io("duplicate the listener's descriptor", e))
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let (in_flight, ready) = {
            let mut state = lock(&self.shared.state);
            state.stopped = true;
            let in_flight: Vec<_> = state.in_flight.values().cloned().collect();
            (in_flight, std::mem::take(&mut state.ready))
        };
        // Ends the handshakes in flight at once: their reads and writes fail.
        for socket in in_flight {
            socket.shutdown();
        }
        drop(ready);
        let _ = sys::eventfd_signal(self.shared.wake_fd.as_fd());
        if let Some(thread) = self.thread.take() {
            // The thread only polls and accepts; it ends once it sees `stopped`.
            let _ = thread.join();
        }
    }
}

/// The acceptor thread: accepts while there is room, hands each client to a handshake
/// thread, and sleeps on the listening socket and the wake eventfd.
fn run(shared: &Arc<Shared>, socket: &ListenSocket) {
    loop {
        let room = {
            let state = lock(&shared.state);
            if state.stopped {
                return;
            }
            state.pending() < shared.max_pending
        };
        if room {
            match socket.try_accept() {
                Ok(Some(client)) => {
                    dispatch(shared, client);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    fail(shared, e);
                    continue;
                }
            }
        }
        // Without room only a freed slot (or the end) can change anything.
        let listen = socket.as_fd();
        let wake = shared.wake_fd.as_fd();
        let waited = if room {
            sys::poll_readable(&[wake, listen], None)
        } else {
            sys::poll_readable(&[wake], None)
        };
        if let Err(e) = waited {
            fail(shared, NetError::io("wait for a connection", e));
            continue;
        }
        // Drained before the state is read again, so a later signal is never lost.
        let _ = sys::eventfd_drain(wake);
    }
}

/// The listening socket failed: `accept` reports it, and the acceptor rests a little.
fn fail(shared: &Shared, error: NetError) {
    {
        let mut state = lock(&shared.state);
        if state.stopped {
            return;
        }
        shared.push(&mut state, Err(error));
    }
    let _ = sys::poll_readable(&[shared.wake_fd.as_fd()], Some(BACKOFF));
}

/// Starts the handshake of a freshly accepted client.
fn dispatch(shared: &Arc<Shared>, client: Socket) {
    if !shared.opts.has_handshake() {
        // Nothing to exchange: the connection is ready as it is.
        let result = Connection::establish(client, Role::Server, &shared.opts);
        let mut state = lock(&shared.state);
        shared.push(&mut state, result);
        return;
    }
    let client = Arc::new(client);
    let id = {
        let mut state = lock(&shared.state);
        let id = state.next_id;
        state.next_id += 1;
        state.in_flight.insert(id, client.clone());
        id
    };
    let spawned = std::thread::Builder::new()
        .name("shoal-handshake".to_owned())
        .spawn({
            let shared = shared.clone();
            let client = client.clone();
            move || {
                let result = Connection::establish(client, Role::Server, &shared.opts);
                shared.finish(id, result);
            }
        });
    if let Err(e) = spawned {
        client.shutdown();
        shared.finish(id, Err(NetError::io("start a handshake thread", e)));
    }
}
