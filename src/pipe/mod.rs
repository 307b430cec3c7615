//! `Pipe` and `Connection`: Python's `multiprocessing.Pipe`, over shared-memory queues.
//!
//! A duplex pipe is two byte queues, one each way; a one-way pipe is one. A small shared table
//! records, for each end, which process holds it (pid and start time) and whether it was
//! closed. A connection sent to another process (it serialises as names) is claimed there: the
//! receiving process becomes that end's holder. `recv` reports end-of-file once nothing is left
//! to read and the other end is closed or its holder has died; it notices a death within
//! [`DEATH_CHECK`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

mod error;
mod travel;

pub use error::{RecvError, RecvTimeoutError, SendError, TryRecvError};

use error::RecvFail;

use crate::error::{Error, Result};
use crate::queue::{GetTimeoutError, PutError, Queue};
use crate::shm::{Kind, shm_shared};
use crate::shm::{Shared, TypeInfo};
use crate::sys;

/// How often a blocked `recv` checks whether the other end's process is still alive.
pub const DEATH_CHECK: Duration = Duration::from_millis(50);

shm_shared! {
    struct EndState {
        pid: AtomicU32,
        closed: AtomicU32,
        start: AtomicU64,
    }
}

shm_shared! {
    /// The shared table of a pipe's two ends.
    pub(crate) struct PipeState {
        ends: [EndState; 2],
    }
}

/// Creates pipes: [`Pipe::duplex`] and [`Pipe::simplex`] return the two [`Connection`]s of a
/// new pipe (Python's `Pipe()` and `Pipe(duplex=False)`).
///
/// A pipe is typed: `Pipe::<A, B>` carries `A`s from its first end to its second and `B`s
/// back, so its ends are a `Connection<A, B>` (sends `A`, receives `B`) and a
/// `Connection<B, A>`. Opening an end, or receiving one from another process, with other
/// types is an error ([`Error::TypeMismatch`](crate::Error::TypeMismatch)), as opening a
/// `Value` with another element type is. `B` defaults to `A`, and `A` to `Vec<u8>`.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// use shmkit::Pipe;
///
/// let (client, server) = Pipe::<String, u32>::duplex()?;
/// client.send("ping")?;
/// assert_eq!(server.recv()?, "ping");
/// server.send(&42)?;
/// assert_eq!(client.recv_timeout(std::time::Duration::from_secs(1))?, 42);
/// # Ok(()) }
/// ```
pub struct Pipe<A = Vec<u8>, B = A>(PhantomData<fn(A) -> B>);

impl<A, B> std::fmt::Debug for Pipe<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pipe")
            .field(&std::any::type_name::<A>())
            .field(&std::any::type_name::<B>())
            .finish()
    }
}

/// Which end of a pipe: the first or the second of the pair [`Pipe::duplex`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The first end (of a simplex pipe, the receiving one).
    A,
    /// The second end (of a simplex pipe, the sending one).
    B,
}

impl End {
    fn index(self) -> usize {
        match self {
            End::A => 0,
            End::B => 1,
        }
    }
}

/// How long a receive waits.
#[derive(Debug, Clone, Copy)]
enum Wait {
    No,
    Until(Instant),
    Forever,
}

fn deadline(timeout: Duration) -> Wait {
    Instant::now()
        .checked_add(timeout)
        .map_or(Wait::Forever, Wait::Until)
}

/// The fingerprint of a pipe whose first end sends `A` and second sends `B`.
fn pipe_type<A, B>() -> TypeInfo {
    TypeInfo::of_channel::<PipeState, A, B>()
}

impl<A, B> Pipe<A, B> {
    /// A new two-way pipe: both ends send and receive (Python's `Pipe()`). This process holds
    /// both ends until it hands one to another process.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the shared segments cannot be created.
    #[doc(alias = "Pipe")]
    pub fn duplex() -> Result<(Connection<A, B>, Connection<B, A>)> {
        Self::make(None, true)
    }

    /// A new one-way pipe: the first end only receives and the second only sends (Python's
    /// `Pipe(duplex=False)` returns `(r, w)`): what travels is a `B`.
    ///
    /// # Errors
    /// As [`duplex`](Self::duplex).
    pub fn simplex() -> Result<(Connection<A, B>, Connection<B, A>)> {
        Self::make(None, false)
    }

    /// As [`duplex`](Self::duplex), with a name: another process opens an end with
    /// [`Connection::open`]. This process owns the name (and its queues `<name>-to0`,
    /// `<name>-to1`) and removes them when its last handle is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create_duplex(name: &str) -> Result<(Connection<A, B>, Connection<B, A>)> {
        Self::make(Some(name), true)
    }

    /// As [`simplex`](Self::simplex), with a name (see [`create_duplex`](Self::create_duplex)).
    ///
    /// # Errors
    /// As [`create_duplex`](Self::create_duplex).
    pub fn create_simplex(name: &str) -> Result<(Connection<A, B>, Connection<B, A>)> {
        Self::make(Some(name), false)
    }

    fn make(name: Option<&str>, duplex: bool) -> Result<(Connection<A, B>, Connection<B, A>)> {
        let end = || EndState {
            pid: AtomicU32::new(0),
            closed: AtomicU32::new(0),
            start: AtomicU64::new(0),
        };
        let state = Shared::create_typed(
            name,
            Kind::Pipe,
            PipeState {
                ends: [end(), end()],
            },
            pipe_type::<A, B>(),
        )?;
        let queue = |to: usize| match name {
            Some(n) => {
                Queue::<Vec<u8>>::create(&format!("{n}-to{to}"), 0, crate::queue::DEFAULT_CAPACITY)
            }
            None => Queue::<Vec<u8>>::new(0),
        };
        let to0 = queue(0)?;
        let to1 = if duplex { Some(queue(1)?) } else { None };
        let a = Connection::claimed(Arc::clone(&state), 0, Some(to0.clone()), to1.clone());
        let b = Connection::claimed(state, 1, to1, Some(to0));
        Ok((a, b))
    }
}

struct Inner {
    /// When `send` last asked whether the other end's process is alive (µs since `epoch()`).
    last_liveness_check: AtomicU64,
    /// `close()` was called in this process on an end another process holds (or one in
    /// transit): this process's use of it ends, the holder's does not.
    closed_here: AtomicBool,
    state: Arc<Shared<PipeState>>,
    end: usize,
    /// Messages to this end.
    rx: Option<Queue<Vec<u8>>>,
    /// Messages to the other end.
    tx: Option<Queue<Vec<u8>>>,
}

/// One end of a [`Pipe`]: Python's `multiprocessing.connection.Connection`, sending `S` and
/// receiving `R` (see [`Pipe`] for the types). `Send + Sync + Clone`; serialises as names, so it
/// can be handed to another process (which then holds this end). `send_bytes` and
/// `recv_bytes` move raw bytes whatever the types.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// use std::time::Duration;
/// use shmkit::{Connection, End, Pipe, RecvError};
///
/// let name = format!("doc-conn-{}", shmkit::current_pid());
/// let (mine, _theirs) = Pipe::<u8, [u8; 3]>::create_duplex(&name)?;
/// // As another process would; the types are checked:
/// let other: Connection<[u8; 3], u8> = Connection::open(&name, End::B)?;
/// assert!(Connection::<String, u8>::open(&name, End::B).is_err());
/// other.send(&[1, 2, 3])?;
/// assert_eq!(mine.recv_timeout(Duration::from_secs(1))?, [1, 2, 3]);
/// other.close();
/// assert!(matches!(mine.recv(), Err(RecvError::Eof)));
/// # Ok(()) }
/// ```
pub struct Connection<S = Vec<u8>, R = S> {
    inner: Arc<Inner>,
    _types: PhantomData<fn(S) -> R>,
}

impl<S, R> Clone for Connection<S, R> {
    fn clone(&self) -> Self {
        Connection {
            inner: Arc::clone(&self.inner),
            _types: PhantomData,
        }
    }
}

/// A fixed instant to measure `last_liveness_check` from.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn me() -> (u32, u64) {
    let pid = sys::current_pid();
    (pid, sys::process_start_time(pid).unwrap_or(0))
}

impl<S, R> Connection<S, R> {
    /// The pipe fingerprint an end `end` of this type expects.
    fn expected_type(end: usize) -> TypeInfo {
        if end == 0 {
            pipe_type::<S, R>()
        } else {
            pipe_type::<R, S>()
        }
    }

    /// Opens end `end` of the named pipe `name` (made by [`Pipe::create_duplex`] or
    /// [`Pipe::create_simplex`]); this process then holds that end.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch),
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) if the pipe carries other types, ...
    pub fn open(name: &str, end: End) -> Result<Self> {
        let end = end.index();
        let state = Shared::open_typed(name, Kind::Pipe, Self::expected_type(end))?;
        let open = |to: usize| match Queue::<Vec<u8>>::open(&format!("{name}-to{to}")) {
            Ok(q) => Ok(Some(q)),
            Err(Error::NotFound { .. }) if to == 1 => Ok(None), // a one-way pipe
            Err(e) => Err(e),
        };
        let (to0, to1) = (open(0)?, open(1)?);
        let (rx, tx) = if end == 0 { (to0, to1) } else { (to1, to0) };
        Ok(Connection::claimed(state, end, rx, tx))
    }

    /// The pipe's name ([`Connection::open`] takes it, with the end).
    pub fn name(&self) -> &str {
        self.inner.state.name()
    }

    fn claimed(
        state: Arc<Shared<PipeState>>,
        end: usize,
        rx: Option<Queue<Vec<u8>>>,
        tx: Option<Queue<Vec<u8>>>,
    ) -> Self {
        let (pid, start) = me();
        let e = &state.get().ends[end];
        e.start.store(start, Ordering::Relaxed);
        e.pid.store(pid, Ordering::Release);
        Connection {
            inner: Arc::new(Inner {
                last_liveness_check: AtomicU64::new(0),
                closed_here: AtomicBool::new(false),
                state,
                end,
                rx,
                tx,
            }),
            _types: PhantomData,
        }
    }

    fn ends(&self) -> &[EndState; 2] {
        &self.inner.state.get().ends
    }

    /// For `send`: whether the other end is closed (every time: one load), or its process has
    /// died (asked of `/proc` at most once per [`DEATH_CHECK`], not on every message).
    fn peer_gone_cheap(&self) -> bool {
        if self.ends()[1 - self.inner.end]
            .closed
            .load(Ordering::Acquire)
            != 0
        {
            return true;
        }
        let now = epoch().elapsed().as_micros() as u64;
        let last = self.inner.last_liveness_check.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < DEATH_CHECK.as_micros() as u64 {
            return false;
        }
        self.inner
            .last_liveness_check
            .store(now.max(1), Ordering::Relaxed);
        self.peer_gone()
    }

    /// Whether the other end is closed, or held by a process that has died.
    fn peer_gone(&self) -> bool {
        let peer = &self.ends()[1 - self.inner.end];
        if peer.closed.load(Ordering::Acquire) != 0 {
            return true;
        }
        let pid = peer.pid.load(Ordering::Acquire);
        let start = peer.start.load(Ordering::Relaxed);
        pid != 0 && !sys::process_alive(pid, (start != 0).then_some(start))
    }

    fn this_end_closed(&self) -> bool {
        self.ends()[self.inner.end].closed.load(Ordering::Relaxed) != 0
            || self.inner.closed_here.load(Ordering::Relaxed)
    }

    /// Sends a byte string.
    ///
    /// # Errors
    /// [`SendError::BrokenPipe`] if either end is closed or the other end's process has died,
    /// or this end cannot send (the receiving end of a one-way pipe); [`SendError::Failed`].
    pub fn send_bytes(&self, bytes: &[u8]) -> std::result::Result<(), SendError> {
        let tx = match &self.inner.tx {
            Some(tx) if !self.this_end_closed() => tx,
            _ => return Err(SendError::BrokenPipe),
        };
        if self.peer_gone_cheap() {
            return Err(SendError::BrokenPipe);
        }
        tx.put_bytes(bytes).map_err(|e| match e {
            PutError::Closed(()) => SendError::BrokenPipe,
            e => SendError::Failed(e.into()),
        })
    }

    /// Sends a serde value.
    ///
    /// # Errors
    /// [`SendError::Serialize`] if it does not serialise (nothing is sent), or as
    /// [`send_bytes`](Self::send_bytes).
    ///
    /// `value` is an `S`, or anything `S` borrows as that serialises the same (`&str` for a
    /// `String`, `&[T]` for a `Vec<T>`), as `HashMap::get` takes keys.
    pub fn send<Q>(&self, value: &Q) -> std::result::Result<(), SendError>
    where
        S: std::borrow::Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        // Handles in the value are handed over just before the receiver can see them (see
        // `shm::by_name`), and taken back if the message is not sent.
        let (result, sent) = crate::shm::by_name::capture(|| {
            let bytes =
                postcard::to_allocvec(value).map_err(|e| SendError::Serialize(e.to_string()))?;
            crate::shm::by_name::send_noted();
            self.send_bytes(&bytes)
        });
        if result.is_err() {
            sent.abandon();
        }
        result
    }

    /// Receives a byte string into `buf` (cleared first) and returns its length.
    ///
    /// # Errors
    /// [`RecvError::Eof`] once nothing is left and the other end is closed or gone;
    /// [`RecvError::Closed`] if this end is closed or cannot receive; [`RecvError::Failed`].
    pub fn recv_bytes_into(&self, buf: &mut Vec<u8>) -> std::result::Result<usize, RecvError> {
        self.recv_raw(buf, Wait::Forever)
            .map_err(RecvError::from_fail)
    }

    /// Receives a byte string.
    ///
    /// # Errors
    /// As [`recv_bytes_into`](Self::recv_bytes_into).
    pub fn recv_bytes(&self) -> std::result::Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.recv_bytes_into(&mut buf)?;
        Ok(buf)
    }

    /// Receives a byte string into `buf` if one has arrived.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or as [`recv_bytes_into`](Self::recv_bytes_into).
    pub fn try_recv_bytes_into(
        &self,
        buf: &mut Vec<u8>,
    ) -> std::result::Result<usize, TryRecvError> {
        self.recv_raw(buf, Wait::No)
            .map_err(TryRecvError::from_fail)
    }

    /// Receives a byte string into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], or as [`recv_bytes_into`](Self::recv_bytes_into).
    pub fn recv_bytes_timeout_into(
        &self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> std::result::Result<usize, RecvTimeoutError> {
        self.recv_raw(buf, deadline(timeout))
            .map_err(RecvTimeoutError::from_fail)
    }

    /// Receives a serde value, waiting as long as it takes.
    ///
    /// # Errors
    /// [`RecvError::Deserialize`] for bytes that are not a `T` (that message is consumed), or
    /// as [`recv_bytes_into`](Self::recv_bytes_into).
    pub fn recv(&self) -> std::result::Result<R, RecvError>
    where
        R: DeserializeOwned,
    {
        self.recv_value(Wait::Forever).map_err(RecvError::from_fail)
    }

    /// Receives a serde value if one has arrived (Python's `poll()` then `recv()`).
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or as [`recv`](Self::recv).
    pub fn try_recv(&self) -> std::result::Result<R, TryRecvError>
    where
        R: DeserializeOwned,
    {
        self.recv_value(Wait::No).map_err(TryRecvError::from_fail)
    }

    /// Receives a serde value, waiting at most `timeout` (Python's `poll(timeout)` then
    /// `recv()`).
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], or as [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> std::result::Result<R, RecvTimeoutError>
    where
        R: DeserializeOwned,
    {
        self.recv_value(deadline(timeout))
            .map_err(RecvTimeoutError::from_fail)
    }

    fn recv_value(&self, wait: Wait) -> std::result::Result<R, RecvFail>
    where
        R: DeserializeOwned,
    {
        let mut buf = Vec::new();
        self.recv_raw(&mut buf, wait)?;
        postcard::from_bytes(&buf).map_err(|e| RecvFail::Deserialize(e.to_string()))
    }

    fn recv_raw(&self, buf: &mut Vec<u8>, wait: Wait) -> std::result::Result<usize, RecvFail> {
        let rx = match &self.inner.rx {
            Some(rx) if !self.this_end_closed() => rx,
            _ => return Err(RecvFail::Closed),
        };
        loop {
            let slice = match wait {
                Wait::No => Duration::ZERO,
                Wait::Until(d) => d.saturating_duration_since(Instant::now()).min(DEATH_CHECK),
                Wait::Forever => DEATH_CHECK,
            };
            match rx.get_bytes_timeout_into(buf, slice) {
                Ok(n) => return Ok(n),
                Err(GetTimeoutError::Closed) => return Err(RecvFail::Eof),
                Err(GetTimeoutError::Timeout) => {}
                Err(e) => return Err(RecvFail::Failed(e.into())),
            }
            if self.peer_gone() {
                // Deliver what the other end sent before it went.
                return rx
                    .get_bytes_timeout_into(buf, Duration::ZERO)
                    .map_err(|_| RecvFail::Eof);
            }
            match wait {
                Wait::No => return Err(RecvFail::NotYet),
                Wait::Until(d) if Instant::now() >= d => return Err(RecvFail::NotYet),
                _ => {}
            }
        }
    }

    /// Waits at most `timeout` until there is something to receive, or end-of-file; returns
    /// whether `recv` would now return at once. `false` for an end that cannot receive.
    pub fn poll(&self, timeout: Duration) -> bool {
        let rx = match &self.inner.rx {
            Some(rx) if !self.this_end_closed() => rx,
            _ => return false,
        };
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(50);
        loop {
            if !rx.is_empty() || rx.is_closed() || self.peer_gone() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Gives up holding this end without closing it, so that dropping this handle does not
    /// close it: for handing the end to a process that has not claimed it yet.
    #[cfg(feature = "process")]
    pub(crate) fn disown(self) {
        let e = &self.ends()[self.inner.end];
        let (pid, start) = me();
        if e.pid.load(Ordering::Relaxed) == pid && e.start.load(Ordering::Relaxed) == start {
            e.pid.store(0, Ordering::Release);
        }
    }

    /// Closes this end: the other end's `recv` returns end-of-file once it has read what was
    /// sent. Dropping the last handle to an end in the process that holds it closes it too.
    /// In a process that handed this end to another one (which now holds it), `close` ends only
    /// this process's use of it, as closing a copied file descriptor does in Python.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether this end is closed.
    pub fn is_closed(&self) -> bool {
        self.this_end_closed()
    }
}

impl Inner {
    /// Whether this process holds this end.
    fn held_here(&self) -> bool {
        let e = &self.state.get().ends[self.end];
        let (pid, start) = me();
        e.pid.load(Ordering::Relaxed) == pid && e.start.load(Ordering::Relaxed) == start
    }

    fn close(&self) {
        if !self.held_here() {
            self.closed_here.store(true, Ordering::Relaxed);
            return;
        }
        self.state.get().ends[self.end]
            .closed
            .store(1, Ordering::Release);
        if let Some(tx) = &self.tx {
            let _ = tx.close(); // wakes the other end's blocked recv
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.held_here() {
            self.close();
        }
    }
}

impl<S, R> std::fmt::Debug for Connection<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("pipe", &self.inner.state.name())
            .field("end", &self.inner.end)
            .field("sends", &std::any::type_name::<S>())
            .field("receives", &std::any::type_name::<R>())
            .finish()
    }
}
