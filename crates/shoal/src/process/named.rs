//! Objects opened by name: [`Named`] serves a shoal object under a name on this
//! machine, [`open_named`] attaches it in any process of the same user — a Rust or a
//! Python one, started by anyone.
//!
//! An eventfd or a memfd cannot be opened by name, so the creator of a named object
//! binds a Unix socket in the abstract namespace (`\0shoal-<uid>-<name>`: nothing on
//! disk, gone with the process) and a small thread answers each connection with the
//! object's handoff bytes ([`handoff::encode`]) and its descriptors (`SCM_RIGHTS`),
//! after a header naming the object's kind, its codec and the layout version. The
//! opener checks them before it rebuilds the object, so that a queue of pickles is
//! never read as MessagePack and a pipe end never attached as a queue.
//!
//! Who may connect: the abstract namespace has no file permissions, so each side checks
//! the other's user id as the kernel recorded it (`SO_PEERCRED`). The serving thread
//! refuses a process of another user, and an opener refuses a socket held by another
//! user (one who bound the name first to hand out objects of its own).
//!
//! Lifetime: the thread stops and the name disappears when the [`Named`] handle is
//! dropped (or the creating process exits, however it ends); processes that opened the
//! object keep using it, as with any shoal object handed over.
//!
//! # Examples
//! ```
//! use shoal::codec::Codec;
//! use shoal::Queue;
//!
//! let name = format!("doc-jobs-{}", std::process::id());
//! let jobs = Queue::builder().codec(Codec::MessagePack).build_named::<String>(&name)?;
//! // In any process of this user, Rust or Python (`shoal.Queue.open_named(name)`):
//! let same: Queue<String> = Queue::open_named(&name)?;
//! same.put("hello".to_owned())?;
//! assert_eq!(jobs.get()?, "hello");
//! drop(jobs); // no longer served; `same` goes on working
//! let err = Queue::<String>::open_named(&name).unwrap_err();
//! assert!(err.to_string().starts_with("no shoal queue named"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Platform notes
//! Linux only (abstract Unix sockets). A child forked (not spawned) while the object is
//! served keeps a copy of the socket, and the name stays taken until that child exits
//! or execs.

use std::fmt;
use std::io::{self, ErrorKind};
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::channel::{CreateError, JoinableQueue, Queue, QueueBuilder};
use crate::codec::Codec;
use crate::handoff::{self, Encoded};
use crate::process::Inheritable;
use crate::sys;

/// The first bytes of every answer ("shoal named").
const MAGIC: [u8; 4] = *b"SHNM";

/// The version of the answer's layout: the header below and the JSON [`Answer`].
const LAYOUT: u32 = 1;

/// How long an opener waits for the serving process's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest name (the socket's name adds `shoal-<uid>-`; the kernel allows 107
/// bytes).
const MAX_NAME: usize = 80;

/// The largest answer an opener reads.
const MAX_ANSWER: usize = 1 << 20;

/// What the serving thread sends after the fixed header (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    /// [`Inheritable::KIND`] of the object.
    kind: String,
    /// [`Codec::name`] of a channel's typed messages.
    #[serde(default)]
    codec: Option<String>,
    #[serde(default)]
    maxsize: usize,
    /// The serving process.
    pid: u32,
    /// The handoff bytes; the descriptors travel beside them.
    #[serde(default)]
    data: Vec<u8>,
    /// Why this opener is refused, instead of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

impl Answer {
    /// The header and JSON body of this answer.
    fn to_wire(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("an answer always encodes as JSON");
        let mut out = Vec::with_capacity(12 + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&LAYOUT.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// Why a name could not be served or opened.
///
/// # Examples
/// ```
/// use shoal::process::NamedError;
///
/// match shoal::Queue::<u8>::open_named("nobody-serves-me") {
///     Err(NamedError::NotServed { name, kind }) => assert_eq!((name.as_str(), kind.as_str()), ("nobody-serves-me", "queue")),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum NamedError {
    /// The name is empty, too long, or has characters other than letters, digits and
    /// `-_.:`.
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A live process of this user (this one, maybe) serves that name already.
    Taken {
        /// The name.
        name: String,
    },
    /// No live process of this user serves that name on this machine.
    NotServed {
        /// The name.
        name: String,
        /// The kind asked for (`"queue"`, or `"object"` when any kind would do).
        kind: String,
    },
    /// The object served is of another kind than the one asked for.
    Kind {
        /// The name.
        name: String,
        /// The kind asked for.
        wanted: String,
        /// The kind it is.
        found: String,
    },
    /// The channel's messages are of a codec this opener does not read.
    Codec {
        /// The name.
        name: String,
        /// The channel's kind.
        kind: String,
        /// Its codec's name ([`Codec::name`]).
        found: String,
        /// What to do instead, as a sentence that follows the error (starts with `: `
        /// or is empty).
        hint: String,
    },
    /// The serving process refused this one (another user).
    Refused {
        /// The name.
        name: String,
        /// The serving process.
        pid: u32,
        /// Its reason.
        reason: String,
    },
    /// The name's socket is held by a process of another user: nothing it offers is
    /// attached.
    ForeignOwner {
        /// The name.
        name: String,
        /// The pid holding the socket.
        pid: u32,
        /// Its user id.
        uid: u32,
    },
    /// The serving process speaks another layout version (another shoal release).
    Layout {
        /// The name.
        name: String,
        /// The version it speaks.
        found: u32,
    },
    /// The answer is not what shoal sends, or the object could not be rebuilt.
    Invalid {
        /// The name.
        name: String,
        /// What was wrong.
        why: String,
    },
    /// The object to serve could not be created or encoded.
    Create {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
    /// An operating-system call failed.
    Io {
        /// The name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl fmt::Display for NamedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamedError::InvalidName { name, why } => {
                write!(f, "{name:?} cannot name a shoal object: {why}")
            }
            NamedError::Taken { name } => write!(
                f,
                "a shoal object named '{name}' is served already by a live process of this \
                 user on this machine: pick another name, or open that one"
            ),
            NamedError::NotServed { name, kind } => write!(
                f,
                "no shoal {kind} named '{name}' is served by a live process of this user on \
                 this machine (a named object is served from its creation until its creator \
                 drops it or exits)"
            ),
            NamedError::Kind {
                name,
                wanted,
                found,
            } => write!(
                f,
                "the shoal object named '{name}' is a {found}, not a {wanted}"
            ),
            NamedError::Codec {
                name,
                kind,
                found,
                hint,
            } => write!(f, "the {kind} '{name}' carries {found} messages{hint}"),
            NamedError::Refused { name, pid, reason } => write!(
                f,
                "process {pid}, which serves '{name}', refused this process: {reason}"
            ),
            NamedError::ForeignOwner { name, pid, uid } => write!(
                f,
                "the socket of '{name}' is held by process {pid} of user {uid}, not of this \
                 user ({}): nothing it offers is attached",
                sys::effective_uid()
            ),
            NamedError::Layout { name, found } => write!(
                f,
                "the process serving '{name}' speaks layout version {found} of named objects; \
                 this shoal reads version {LAYOUT} (both sides need the same shoal release)"
            ),
            NamedError::Invalid { name, why } => {
                write!(f, "could not open the shoal object named '{name}': {why}")
            }
            NamedError::Create { name, why } => {
                write!(f, "could not create the shoal object named '{name}': {why}")
            }
            NamedError::Io { name, op, source } => {
                write!(
                    f,
                    "could not {op} for the shoal object named '{name}': {source}"
                )
            }
        }
    }
}

impl std::error::Error for NamedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NamedError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn check_name(name: &str) -> Result<(), NamedError> {
    let why = if name.is_empty() {
        Some("it is empty".to_owned())
    } else if name.len() > MAX_NAME {
        Some(format!(
            "it is {} bytes long, more than {MAX_NAME}",
            name.len()
        ))
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c)))
            .map(|c| format!("{c:?} is not a letter, a digit or one of -_.:"))
    };
    match why {
        Some(why) => Err(NamedError::InvalidName {
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// The abstract socket name of `name` for user `uid`.
fn socket_name(name: &str, uid: u32) -> String {
    format!("shoal-{uid}-{name}")
}

/// The serving side: a listening socket and the thread that answers it.
struct Server {
    name: String,
    listener: Arc<UnixListener>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The process whose thread serves: a child forked since holds a copy of this
    /// value, but neither the thread nor the right to shut the shared socket down.
    pid: u32,
}

impl Server {
    fn start(
        name: &str,
        answer: Answer,
        fds: Vec<OwnedFd>,
        allowed_uid: u32,
    ) -> Result<Server, NamedError> {
        check_name(name)?;
        let io = |op, source| NamedError::Io {
            name: name.to_owned(),
            op,
            source,
        };
        let addr = SocketAddr::from_abstract_name(socket_name(name, sys::effective_uid()))
            .map_err(|e| io("make the socket's name", e))?;
        let listener = match UnixListener::bind_addr(&addr) {
            Ok(l) => Arc::new(l),
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                return Err(NamedError::Taken {
                    name: name.to_owned(),
                })
            }
            Err(e) => return Err(io("bind the socket", e)),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let offer = answer.to_wire();
        let refusal = Answer {
            data: Vec::new(),
            refused: Some(format!("it serves processes of user {allowed_uid} only")),
            ..answer
        }
        .to_wire();
        let thread = {
            let (listener, stop) = (Arc::clone(&listener), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("shoal-named-{name}"))
                .spawn(move || serve(&listener, &stop, &offer, &refusal, &fds, allowed_uid))
                .map_err(|e| io("start the serving thread", e))?
        };
        Ok(Server {
            name: name.to_owned(),
            listener,
            stop,
            thread: Some(thread),
            pid: std::process::id(),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // A forked child's copy: the socket is shared with the creator, whose thread
            // goes on serving; only this process's descriptor closes (with the last
            // reference to the listener), and the thread, which this process does not
            // have, is neither woken nor joined.
            std::mem::forget(self.thread.take());
            return;
        }
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the thread out of `accept`; once it has returned, the last reference to
        // the listener closes it and the name is free.
        let _ = sys::shutdown_socket(self.listener.as_fd());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The serving thread: answers every connection until `stop`.
fn serve(
    listener: &UnixListener,
    stop: &AtomicBool,
    offer: &[u8],
    refusal: &[u8],
    fds: &[OwnedFd],
    allowed_uid: u32,
) {
    let fds: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, _)) => {
                // An opener that fails (it died, its socket is full) concerns only it.
                let _ = answer_one(&stream, offer, refusal, &fds, allowed_uid);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Out of descriptors, or a connection reset before it was taken: the
            // next opener may fare better; do not spin meanwhile.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn answer_one(
    stream: &UnixStream,
    offer: &[u8],
    refusal: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
    allowed_uid: u32,
) -> io::Result<()> {
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    let peer = sys::peer_credentials(stream.as_fd())?;
    if peer.uid != allowed_uid {
        return sys::send_with_fds(stream.as_fd(), refusal, &[]);
    }
    sys::send_with_fds(stream.as_fd(), offer, fds)
}

/// A shoal object served under a name on this machine, for [`open_named`] (or
/// `open_named` in Python) in any process of the same user.
///
/// It dereferences to the object. Dropping it (or [`into_inner`](Named::into_inner))
/// stops serving the name; the processes that opened the object keep it.
///
/// # Examples
/// ```
/// use shoal::process::{open_named, Named};
///
/// let name = format!("doc-done-{}", std::process::id());
/// let done = Named::serve(&name, shoal::Event::new()?)?;
/// let same: shoal::Event = open_named(&name)?;
/// same.set();
/// assert!(done.is_set());
/// assert_eq!(done.name(), name);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Named<T> {
    object: T,
    server: Server,
}

impl<T: fmt::Debug> fmt::Debug for Named<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.server.name)
            .field("object", &self.object)
            .finish()
    }
}

impl<T> Deref for Named<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.object
    }
}

impl<T: Inheritable> Named<T> {
    /// Serves `object` under `name` until the returned handle is dropped.
    ///
    /// # Errors
    /// [`NamedError::InvalidName`]; [`NamedError::Taken`] when a live process of this
    /// user serves the name already; [`NamedError::Create`] when the object cannot be
    /// encoded; [`NamedError::Io`] when the socket or thread cannot be made.
    ///
    /// # Examples
    /// ```
    /// use shoal::process::{Named, NamedError};
    ///
    /// let name = format!("doc-lock-{}", std::process::id());
    /// let lock = Named::serve(&name, shoal::Lock::new()?)?;
    /// let again = Named::serve(&name, shoal::Lock::new()?).unwrap_err();
    /// assert!(matches!(again, NamedError::Taken { .. }));
    /// drop(lock);
    /// let bad = Named::serve("no spaces", shoal::Lock::new()?).unwrap_err();
    /// assert!(matches!(bad, NamedError::InvalidName { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serve(name: &str, object: T) -> Result<Named<T>, NamedError> {
        Named::serve_for(name, object, sys::effective_uid())
    }

    /// [`serve`](Named::serve) to processes of `uid` only (tests of the refusal).
    fn serve_for(name: &str, object: T, uid: u32) -> Result<Named<T>, NamedError> {
        check_name(name)?;
        let parts = handoff::encode(&object).map_err(|e| NamedError::Create {
            name: name.to_owned(),
            why: e.to_string(),
        })?;
        let answer = Answer {
            kind: T::KIND.to_owned(),
            codec: object.codec_name().map(str::to_owned),
            maxsize: object.maxsize(),
            pid: std::process::id(),
            data: parts.bytes,
            refused: None,
        };
        let server = Server::start(name, answer, parts.fds, uid)?;
        Ok(Named { object, server })
    }
}

impl<T> Named<T> {
    /// The name it is served under.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-name-{}", std::process::id());
    /// let q = shoal::Queue::<u8>::create_named(&name)?;
    /// assert_eq!(q.name(), name);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.server.name
    }

    /// Stops serving the name and gives the object back.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-inner-{}", std::process::id());
    /// let q = shoal::Queue::<u8>::create_named(&name)?.into_inner();
    /// assert!(shoal::Queue::<u8>::open_named(&name).is_err()); // no longer served
    /// q.put(1)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        let Named { object, server } = self;
        drop(server);
        object
    }
}

/// What a process serves under a name, before it becomes an object: its kind, codec
/// and handoff parts ([`find_named`]). [`attach`](NamedObject::attach) rebuilds it.
#[derive(Debug)]
pub struct NamedObject {
    name: String,
    kind: String,
    codec: Option<Codec>,
    codec_name: Option<String>,
    maxsize: usize,
    pid: u32,
    parts: Encoded,
}

impl NamedObject {
    /// The object's kind ([`Inheritable::KIND`]: `"queue"`, `"pipe"`, `"lock"`…).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-kind-{}", std::process::id());
    /// let _served = shoal::process::Named::serve(&name, shoal::Event::new()?)?;
    /// assert_eq!(shoal::process::find_named(&name)?.kind(), "event");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The codec of a channel's typed messages (`None` for other objects, or a codec
    /// this shoal does not know).
    ///
    /// # Examples
    /// ```
    /// use shoal::codec::Codec;
    ///
    /// let name = format!("doc-codec-{}", std::process::id());
    /// let _q = shoal::Queue::builder().codec(Codec::Json).build_named::<u8>(&name)?;
    /// let found = shoal::process::find_named(&name)?;
    /// assert_eq!(found.codec(), Some(Codec::Json));
    /// assert_eq!(found.codec_name(), Some("JSON"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn codec(&self) -> Option<Codec> {
        self.codec
    }

    /// The name of that codec as the serving process gave it ([`Codec::name`]).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-codec-name-{}", std::process::id());
    /// let _lock = shoal::process::Named::serve(&name, shoal::Lock::new()?)?;
    /// assert_eq!(shoal::process::find_named(&name)?.codec_name(), None); // not a channel
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn codec_name(&self) -> Option<&str> {
        self.codec_name.as_deref()
    }

    /// A queue's bound on messages (0: none).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-maxsize-{}", std::process::id());
    /// let _q = shoal::Queue::builder().maxsize(7).build_named::<u8>(&name)?;
    /// assert_eq!(shoal::process::find_named(&name)?.maxsize(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }

    /// The serving process.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-pid-{}", std::process::id());
    /// let _q = shoal::Queue::<u8>::create_named(&name)?;
    /// assert_eq!(shoal::process::find_named(&name)?.pid(), std::process::id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The handoff bytes and descriptors, for [`handoff::decode`] by a program that
    /// rebuilds objects itself (the Python package does).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-parts-{}", std::process::id());
    /// let q = shoal::Queue::<u8>::create_named(&name)?;
    /// let parts = shoal::process::find_named(&name)?.into_parts();
    /// assert_eq!(parts.fds.len(), 2); // the ring's segment and its eventfd
    /// let same: shoal::Queue<u8> = shoal::handoff::decode(&parts.bytes, parts.fds)?;
    /// same.put(4)?;
    /// assert_eq!(q.get()?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_parts(self) -> Encoded {
        self.parts
    }

    /// Rebuilds the object as a `T`.
    ///
    /// # Errors
    /// [`NamedError::Kind`] when it is of another kind; [`NamedError::Invalid`] when
    /// it cannot be rebuilt.
    ///
    /// # Examples
    /// ```
    /// use shoal::process::{find_named, Named};
    ///
    /// let name = format!("doc-find-{}", std::process::id());
    /// let _served = Named::serve(&name, shoal::Semaphore::new(2)?)?;
    /// let found = find_named(&name)?;
    /// assert_eq!(found.kind(), "semaphore");
    /// let wrong = find_named(&name)?.attach::<shoal::Lock>().unwrap_err();
    /// assert!(wrong.to_string().ends_with("is a semaphore, not a lock"));
    /// let sem: shoal::Semaphore = found.attach()?;
    /// assert_eq!(sem.value(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach<T: Inheritable + DeserializeOwned>(self) -> Result<T, NamedError> {
        if self.kind != T::KIND {
            return Err(NamedError::Kind {
                name: self.name,
                wanted: T::KIND.to_owned(),
                found: self.kind,
            });
        }
        let name = self.name;
        handoff::decode(&self.parts.bytes, self.parts.fds).map_err(|e| NamedError::Invalid {
            name,
            why: e.to_string(),
        })
    }
}

/// The codec with this [`Codec::name`].
fn codec_named(name: &str) -> Option<Codec> {
    [
        Codec::Bincode,
        Codec::Json,
        Codec::MessagePack,
        Codec::Pickle,
        Codec::Raw,
    ]
    .into_iter()
    .find(|c| c.name() == name)
}

/// Asks the process serving `name` for it: its kind, codec and handoff parts.
///
/// # Errors
/// [`NamedError::NotServed`] when no live process of this user serves the name;
/// [`NamedError::ForeignOwner`] when another user holds its socket;
/// [`NamedError::Refused`]; [`NamedError::Layout`] for another shoal release;
/// [`NamedError::Invalid`] for an answer shoal did not write, or none within 10 s.
///
/// # Examples
/// ```
/// let err = shoal::process::find_named("nobody-serves-this").unwrap_err();
/// assert!(err.to_string().starts_with("no shoal object named 'nobody-serves-this'"));
/// ```
pub fn find_named(name: &str) -> Result<NamedObject, NamedError> {
    check_name(name)?;
    let io = |op, source| NamedError::Io {
        name: name.to_owned(),
        op,
        source,
    };
    let invalid = |why: String| NamedError::Invalid {
        name: name.to_owned(),
        why,
    };
    let me = sys::effective_uid();
    let addr = SocketAddr::from_abstract_name(socket_name(name, me))
        .map_err(|e| io("make the socket's name", e))?;
    let stream = match UnixStream::connect_addr(&addr) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {
            return Err(NamedError::NotServed {
                name: name.to_owned(),
                kind: "object".to_owned(),
            })
        }
        Err(e) => return Err(io("connect to the serving process", e)),
    };
    let peer = sys::peer_credentials(stream.as_fd())
        .map_err(|e| io("read the serving process's credentials", e))?;
    if peer.uid != me {
        return Err(NamedError::ForeignOwner {
            name: name.to_owned(),
            pid: peer.pid,
            uid: peer.uid,
        });
    }
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| io("set a timeout on the socket", e))?;
    let mut got = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = 12;
    while got.len() < want {
        let (n, more) = match sys::recv_with_fds(stream.as_fd(), &mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(invalid(format!(
                    "process {} serves the name but did not answer within {} s",
                    peer.pid,
                    ANSWER_TIMEOUT.as_secs()
                )))
            }
            Err(e) => return Err(io("receive the serving process's answer", e)),
        };
        fds.extend(more);
        if n == 0 {
            return Err(invalid(format!(
                "process {} closed the connection after {} bytes of its answer",
                peer.pid,
                got.len()
            )));
        }
        got.extend_from_slice(&buf[..n]);
        if want == 12 && got.len() >= 12 {
            if got[..4] != MAGIC {
                return Err(invalid(format!(
                    "process {} answered bytes that are not a shoal answer",
                    peer.pid
                )));
            }
            let version = u32::from_le_bytes(got[4..8].try_into().expect("4 bytes"));
            if version != LAYOUT {
                return Err(NamedError::Layout {
                    name: name.to_owned(),
                    found: version,
                });
            }
            let len = u32::from_le_bytes(got[8..12].try_into().expect("4 bytes")) as usize;
            if len > MAX_ANSWER {
                return Err(invalid(format!(
                    "process {} announced a {len}-byte answer, more than {MAX_ANSWER}",
                    peer.pid
                )));
            }
            want = 12 + len;
        }
    }
    let answer: Answer = serde_json::from_slice(&got[12..want])
        .map_err(|e| invalid(format!("its answer is not valid: {e}")))?;
    if let Some(reason) = answer.refused {
        return Err(NamedError::Refused {
            name: name.to_owned(),
            pid: answer.pid,
            reason,
        });
    }
    Ok(NamedObject {
        name: name.to_owned(),
        kind: answer.kind,
        codec: answer.codec.as_deref().and_then(codec_named),
        codec_name: answer.codec,
        maxsize: answer.maxsize,
        pid: answer.pid,
        parts: Encoded {
            bytes: answer.data,
            fds,
        },
    })
}

/// Attaches the object a process of this user serves under `name` (any kind that
/// [`Command::pass`](crate::process::Command::pass) passes: queues, pipe ends, locks,
/// events, values, segments…).
///
/// # Errors
/// As [`find_named`] (with the kind asked for in [`NamedError::NotServed`]), and
/// [`NamedError::Kind`] when the object is of another kind.
///
/// # Examples
/// ```
/// use shoal::process::{open_named, Named};
///
/// let name = format!("doc-open-{}", std::process::id());
/// let (ours, theirs) = shoal::Pipe::duplex()?;
/// let served = Named::serve(&name, theirs)?;
/// let end: shoal::Connection = open_named(&name)?;
/// end.send(&"over the named pipe end")?;
/// assert_eq!(ours.recv::<String>()?, "over the named pipe end");
/// # drop(served);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_named<T: Inheritable + DeserializeOwned>(name: &str) -> Result<T, NamedError> {
    find_named_kind(name, T::KIND)?.attach()
}

/// [`find_named`], naming `kind` when nothing is served.
fn find_named_kind(name: &str, kind: &str) -> Result<NamedObject, NamedError> {
    find_named(name).map_err(|e| match e {
        NamedError::NotServed { name, .. } => NamedError::NotServed {
            name,
            kind: kind.to_owned(),
        },
        other => other,
    })
}

/// The refusal of a typed opener for a channel of pickles or raw bytes.
fn typed_refusal(found: &NamedObject, bytes_opener: &str) -> Option<NamedError> {
    let hint = match found.codec {
        Some(Codec::Pickle) => format!(
            " (a Python program made it), which Rust does not decode: open it with \
             {bytes_opener} and exchange raw bytes (put_bytes/get_bytes), or create it in \
             Python with codec=\"msgpack\""
        ),
        Some(Codec::Raw) => {
            format!(", not typed messages: open it with {bytes_opener} and use put_bytes/get_bytes")
        }
        Some(_) => return None,
        None => format!(
            ", a codec this shoal does not know: open it with {bytes_opener} for its raw bytes"
        ),
    };
    Some(NamedError::Codec {
        name: found.name.clone(),
        kind: found.kind.clone(),
        found: found.codec_name.clone().unwrap_or_default(),
        hint,
    })
}

impl QueueBuilder {
    /// Builds the queue and serves it under `name` ([`Named`]), so that any process
    /// of this user opens it with [`Queue::open_named`] (or
    /// `shoal.Queue.open_named(name)` in Python: make it with [`Codec::MessagePack`]
    /// or [`Codec::Raw`] for that).
    ///
    /// # Errors
    /// As [`build`](QueueBuilder::build) ([`NamedError::Create`]) and
    /// [`Named::serve`].
    ///
    /// # Examples
    /// ```
    /// use shoal::codec::Codec;
    ///
    /// let name = format!("doc-raw-{}", std::process::id());
    /// let raw = shoal::Queue::builder().codec(Codec::Raw).build_named::<()>(&name)?;
    /// let same = shoal::Queue::<()>::open_named_bytes(&name)?;
    /// same.put_bytes(b"\x01\x02")?;
    /// assert_eq!(raw.get_bytes()?, b"\x01\x02");
    /// assert!(shoal::Queue::<u8>::open_named(&name).is_err()); // typed: refused
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_named<T>(&self, name: &str) -> Result<Named<Queue<T>>, NamedError> {
        check_name(name)?;
        let queue = self.build().map_err(|e| created(name, &e))?;
        Named::serve(name, queue)
    }

    /// As [`build_named`](QueueBuilder::build_named), a [`JoinableQueue`].
    ///
    /// # Errors
    /// As [`build_named`](QueueBuilder::build_named).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-joinable-{}", std::process::id());
    /// let tasks = shoal::Queue::builder().build_joinable_named::<u32>(&name)?;
    /// let worker = shoal::JoinableQueue::<u32>::open_named(&name)?;
    /// tasks.put(5)?;
    /// assert_eq!(worker.get()?, 5);
    /// worker.task_done()?;
    /// tasks.join();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_joinable_named<T>(
        &self,
        name: &str,
    ) -> Result<Named<JoinableQueue<T>>, NamedError> {
        check_name(name)?;
        let queue = JoinableQueue::with_builder(self).map_err(|e| created(name, &e))?;
        Named::serve(name, queue)
    }
}

fn created(name: &str, e: &CreateError) -> NamedError {
    NamedError::Create {
        name: name.to_owned(),
        why: e.to_string(),
    }
}

impl<T> Queue<T> {
    /// A queue with the defaults of [`Queue::new`] (bincode), served under `name`:
    /// [`QueueBuilder::build_named`] chooses the codec and bounds.
    ///
    /// # Errors
    /// As [`QueueBuilder::build_named`].
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-create-{}", std::process::id());
    /// let q = shoal::Queue::<(u32, String)>::create_named(&name)?;
    /// shoal::Queue::<(u32, String)>::open_named(&name)?.put((1, "one".to_owned()))?;
    /// assert_eq!(q.get()?, (1, "one".to_owned()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_named(name: &str) -> Result<Named<Queue<T>>, NamedError> {
        Queue::builder().build_named(name)
    }

    /// Opens the queue a process of this user serves under `name`, for typed
    /// messages in the queue's own codec (bincode, JSON or MessagePack).
    ///
    /// # Errors
    /// As [`open_named`]; [`NamedError::Codec`] for a queue of Python pickles or raw
    /// bytes (open those with [`open_named_bytes`](Queue::open_named_bytes)).
    ///
    /// # Examples
    /// ```
    /// let err = shoal::Queue::<u8>::open_named("no-such-queue").unwrap_err();
    /// assert!(err.to_string().starts_with("no shoal queue named 'no-such-queue' is served"));
    /// ```
    pub fn open_named(name: &str) -> Result<Queue<T>, NamedError> {
        let found = find_named_kind(name, <Queue<T> as Inheritable>::KIND)?;
        if found.kind == <Queue<T> as Inheritable>::KIND {
            if let Some(e) = typed_refusal(&found, "Queue::open_named_bytes") {
                return Err(e);
            }
        }
        found.attach()
    }

    /// Opens the queue served under `name` for raw bytes (`put_bytes`/`get_bytes`),
    /// whatever its codec: a Rust program's side of a queue of Python pickles, or of
    /// raw bytes.
    ///
    /// # Errors
    /// As [`open_named`].
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-bytes-{}", std::process::id());
    /// let q = shoal::Queue::<String>::create_named(&name)?; // bincode
    /// let raw = shoal::Queue::<()>::open_named_bytes(&name)?;
    /// q.put("hi".to_owned())?;
    /// assert_eq!(raw.get_bytes()?, b"\x02hi"); // bincode's bytes
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_named_bytes(name: &str) -> Result<Queue<T>, NamedError> {
        open_named(name)
    }
}

impl<T> JoinableQueue<T> {
    /// A joinable queue with the defaults of [`JoinableQueue::new`], served under
    /// `name` ([`QueueBuilder::build_joinable_named`] for other settings).
    ///
    /// # Errors
    /// As [`QueueBuilder::build_named`].
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-jq-{}", std::process::id());
    /// let q = shoal::JoinableQueue::<u8>::create_named(&name)?;
    /// let err = shoal::Queue::<u8>::open_named(&name).unwrap_err();
    /// assert!(err.to_string().ends_with("is a joinable-queue, not a queue"));
    /// # drop(q);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_named(name: &str) -> Result<Named<JoinableQueue<T>>, NamedError> {
        Queue::builder().build_joinable_named(name)
    }

    /// Opens the joinable queue served under `name`, as [`Queue::open_named`].
    ///
    /// # Errors
    /// As [`Queue::open_named`].
    ///
    /// # Examples
    /// ```
    /// let err = shoal::JoinableQueue::<u8>::open_named("no-such-jq").unwrap_err();
    /// assert!(err.to_string().starts_with("no shoal joinable-queue named 'no-such-jq'"));
    /// ```
    pub fn open_named(name: &str) -> Result<JoinableQueue<T>, NamedError> {
        let kind = <JoinableQueue<T> as Inheritable>::KIND;
        let found = find_named_kind(name, kind)?;
        if found.kind == kind {
            if let Some(e) = typed_refusal(&found, "JoinableQueue::open_named_bytes") {
                return Err(e);
            }
        }
        found.attach()
    }

    /// Opens the joinable queue served under `name` for raw bytes, as
    /// [`Queue::open_named_bytes`].
    ///
    /// # Errors
    /// As [`open_named`].
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-jqb-{}", std::process::id());
    /// let q = shoal::JoinableQueue::<u8>::create_named(&name)?;
    /// shoal::JoinableQueue::<()>::open_named_bytes(&name)?.put_bytes(b"\x07")?;
    /// assert_eq!(q.get()?, 7);
    /// q.task_done()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_named_bytes(name: &str) -> Result<JoinableQueue<T>, NamedError> {
        open_named(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Queue;

    fn unique(what: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        format!(
            "test-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    #[test]
    fn a_process_of_another_user_is_refused() {
        let name = unique("uid");
        let other = sys::effective_uid().wrapping_add(1);
        let _q = Named::serve_for(&name, Queue::<u8>::new().unwrap(), other).unwrap();
        let err = Queue::<u8>::open_named(&name).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, NamedError::Refused { .. }), "{text}");
        assert!(
            text.contains(&format!("serves processes of user {other} only")),
            "{text}"
        );
    }

    #[test]
    fn the_name_is_free_again_once_dropped() {
        let name = unique("free");
        let q = Queue::<u8>::create_named(&name).unwrap();
        let opened = Queue::<u8>::open_named(&name).unwrap();
        drop(q);
        assert!(matches!(
            Queue::<u8>::open_named(&name).unwrap_err(),
            NamedError::NotServed { .. }
        ));
        // What was opened goes on; the name can be served again.
        opened.put(3).unwrap();
        let again = Queue::<u8>::create_named(&name).unwrap();
        assert!(again.is_empty());
        assert_eq!(opened.get().unwrap(), 3);
    }

    #[test]
    fn typed_openers_refuse_pickles_and_raw_bytes() {
        for (codec, words) in [
            (
                Codec::Pickle,
                "carries pickle messages (a Python program made it)",
            ),
            (Codec::Raw, "carries raw bytes messages, not typed messages"),
        ] {
            let name = unique("codec");
            let _q = Queue::builder()
                .codec(codec)
                .build_named::<()>(&name)
                .unwrap();
            let text = Queue::<u8>::open_named(&name).unwrap_err().to_string();
            assert!(text.contains(words), "{text}");
            assert!(text.contains("Queue::open_named_bytes"), "{text}");
            Queue::<()>::open_named_bytes(&name).unwrap();
        }
    }

    #[test]
    fn a_forked_child_dropping_its_copy_leaves_the_name_served() {
        let name = unique("fork");
        let slot = std::cell::RefCell::new(Some(Queue::<u8>::create_named(&name).unwrap()));
        // The child drops its copy of the handle; the parent keeps its own.
        let pid = sys::fork_run(|| {
            drop(slot.borrow_mut().take());
            0
        })
        .unwrap();
        let pidfd = sys::pidfd_open(pid).unwrap();
        assert_eq!(sys::pidfd_wait(pidfd.as_fd(), true).unwrap(), Some(0));
        let q = slot.borrow_mut().take().unwrap();
        let opened = Queue::<u8>::open_named(&name).unwrap();
        opened.put(1).unwrap();
        assert_eq!(q.get().unwrap(), 1);
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "a/b", "with space", &"x".repeat(MAX_NAME + 1)] {
            assert!(matches!(
                Queue::<u8>::create_named(bad).unwrap_err(),
                NamedError::InvalidName { .. }
            ));
            assert!(matches!(
                find_named(bad).unwrap_err(),
                NamedError::InvalidName { .. }
            ));
        }
    }

    #[test]
    fn another_layout_is_named() {
        // A fake server of a future release.
        let name = unique("layout");
        let addr =
            SocketAddr::from_abstract_name(socket_name(&name, sys::effective_uid())).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut wire = Vec::from(MAGIC);
            wire.extend_from_slice(&(LAYOUT + 1).to_le_bytes());
            wire.extend_from_slice(&0u32.to_le_bytes());
            sys::send_with_fds(s.as_fd(), &wire, &[]).unwrap();
        });
        let err = find_named(&name).unwrap_err();
        t.join().unwrap();
        assert!(matches!(err, NamedError::Layout { found, .. } if found == LAYOUT + 1));
        assert!(err
            .to_string()
            .contains(&format!("layout version {}", LAYOUT + 1)));
    }
}
