//! `Queue<T>`: the typed, blocking face of [`QueueCore`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::core::{Fail, QueueCore, Wait};
use super::error::{
    GetError, GetTimeoutError, PutError, PutTimeoutError, TryGetError, TryPutError,
};
use crate::error::{Error, Result};
use crate::shm::{DEFAULT_OPEN_WAIT, Kind, SegmentName, TypeInfo, by_name};

/// The ring size of a queue made without [`Queue::with_capacity`]: 1 MiB.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// A bounded, multi-producer multi-consumer queue of serde values in shared memory: Python's
/// `multiprocessing.Queue`, without its trap.
///
/// In Python, `put` only hands the item to a feeder thread that writes it into a pipe; a child
/// that put something large cannot exit until someone reads it, so joining it before `get`
/// hangs. Here, once `put` returns, the item is in shared memory that the queue owns (in its
/// ring, or, if it does not fit in the ring's free space, in a segment of its own that the ring
/// refers to), and the producer may exit at once.
///
/// For work that must not be lost when a consumer dies, take items with
/// [`get_leased`](Queue::get_leased): the item stays the queue's until the [`Lease`](crate::Lease)
/// is acked, and comes back if its holder lets go or dies.
///
/// Bounded by `maxsize` items (0: no limit), as Python's. Items are delivered exactly once, in
/// the order each producer put them, across any mix of processes and threads. A process
/// killed at any moment of a `put` or `get` leaves the queue usable: its item is either
/// entirely in the queue or entirely not (see `queue/core.rs`). Handles are `Send + Sync + Clone`
/// and serialise as the queue's name, so a queue can be handed to another process.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let q = shmkit::Queue::<(String, u32)>::new(10)?;
/// q.put(("job".into(), 1))?;
/// assert_eq!(q.get()?, ("job".to_string(), 1));
/// # Ok(()) }
/// ```
pub struct Queue<T> {
    core: Arc<QueueCore>,
    _items: PhantomData<fn(T) -> T>,
}

pub(super) fn deadline(timeout: Duration) -> Wait {
    Instant::now()
        .checked_add(timeout)
        .map_or(Wait::Forever, Wait::Until)
}

impl<T: Serialize + DeserializeOwned + 'static> Queue<T> {
    /// Creates an anonymous queue of at most `maxsize` items (0: no limit) with a 1 MiB ring.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the segment cannot be created.
    pub fn new(maxsize: usize) -> Result<Self> {
        Self::with_capacity(maxsize, DEFAULT_CAPACITY)
    }

    /// Creates an anonymous queue with a ring of `capacity` bytes (256 B to 2 GiB). Items that
    /// do not fit in the ring's free space are spilled to segments of their own.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a capacity out of range; [`Error::Io`](crate::Error::Io).
    pub fn with_capacity(maxsize: usize, capacity: usize) -> Result<Self> {
        Self::make(SegmentName::anonymous()?, Kind::Queue, maxsize, capacity)
    }

    /// Creates the queue `name`; fails if it exists. This process owns the name: when its last
    /// handle here is dropped, the queue is removed (with any items still in it).
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::InvalidArgument`](crate::Error::InvalidArgument), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, maxsize: usize, capacity: usize) -> Result<Self> {
        Self::make(SegmentName::new(name)?, Kind::Queue, maxsize, capacity)
    }

    /// Opens the existing queue `name`, checking that it is a `Queue` of this `T`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), [`Error::TypeMismatch`](crate::Error::TypeMismatch), [`Error::Corrupt`](crate::Error::Corrupt), ...
    pub fn open(name: &str) -> Result<Self> {
        Self::open_kind(name, Kind::Queue)
    }

    pub(crate) fn make(
        name: SegmentName,
        kind: Kind,
        maxsize: usize,
        capacity: usize,
    ) -> Result<Self> {
        let core = QueueCore::create(name, kind, TypeInfo::of::<T>(), maxsize, capacity)?;
        Ok(Queue {
            core: Arc::new(core),
            _items: PhantomData,
        })
    }

    pub(crate) fn open_kind(name: &str, kind: Kind) -> Result<Self> {
        let core = QueueCore::open(
            SegmentName::new(name)?,
            kind,
            TypeInfo::of::<T>(),
            DEFAULT_OPEN_WAIT,
        )?;
        Ok(Queue {
            core: Arc::new(core),
            _items: PhantomData,
        })
    }

    fn put_via<E>(
        &self,
        item: T,
        wait: Wait,
        fail: fn(Fail, T) -> E,
        serialize: fn(T, String) -> E,
    ) -> Result<(), E> {
        // Handles inside the item are handed over (see `shm::by_name`) just before it becomes
        // visible, and taken back if it is not put.
        let (put, sent) = by_name::capture(|| {
            if let Some(put) = self.put_in_ring(&item, wait) {
                return Ok(put);
            }
            codec::encode(&item, |parts| {
                self.core
                    .note_item_len(parts.iter().map(|p| p.len() as u64).sum());
                by_name::send_noted();
                self.core.put(parts, wait)
            })
        });
        match put {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => {
                sent.abandon();
                Err(fail(f, item))
            }
            Err(reason) => Err(serialize(item, reason)),
        }
    }

    /// Puts `item` serialised straight into the ring, with no buffer between (see
    /// `QueueCore::put_serialized`), while the items this handle puts are small and not byte
    /// strings (those are copied in once already). `None`, and nothing changed, if it was not
    /// put that way: the caller encodes it into a buffer, which waits for room, wraps, spills
    /// and says why an item does not serialise.
    fn put_in_ring(&self, item: &T, wait: Wait) -> Option<Result<(), Fail>> {
        if codec::is_bytes::<T>() || !self.core.items_are_small() {
            return None;
        }
        let put = self.core.put_serialized(wait, |buf| {
            let len = codec::encode_into(item, buf)?;
            by_name::send_noted();
            Some(len)
        });
        match put {
            Ok(true) => Some(Ok(())),
            Ok(false) => {
                // Handles in an item that did not fit were noted, not sent: noted again below.
                by_name::forget_noted();
                None
            }
            Err(f) => Some(Err(f)),
        }
    }

    /// Puts `item`, waiting while the queue is full. When it returns, the item is in shared
    /// memory and this process may exit.
    ///
    /// A small item (4 KiB serialised, at most) is serialised straight into the queue's ring,
    /// while the queue is locked: `T`'s `Serialize` should not use this queue itself. If it
    /// does, that nested call fails with a lock error rather than deadlocking; should the
    /// `Serialize` then fail, the item is serialised again outside the lock.
    ///
    /// # Errors
    /// [`PutError::Closed`], [`PutError::Serialize`] (the queue is unchanged), [`PutError::Failed`];
    /// each hands the item back.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_via(
            item,
            Wait::Forever,
            PutError::from_fail,
            PutError::serialize,
        )
    }

    /// Puts `item` if there is room now (Python's `put_nowait`).
    ///
    /// # Errors
    /// [`TryPutError::Full`], or as [`put`](Self::put).
    #[doc(alias = "put_nowait")]
    pub fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
        self.put_via(
            item,
            Wait::No,
            TryPutError::from_fail,
            TryPutError::serialize,
        )
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`PutTimeoutError::Timeout`], or as [`put`](Self::put).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutTimeoutError<T>> {
        self.put_via(
            item,
            deadline(timeout),
            PutTimeoutError::from_fail,
            PutTimeoutError::serialize,
        )
    }

    fn get_via<E>(&self, wait: Wait, fail: fn(Fail) -> E, de: fn(String) -> E) -> Result<T, E> {
        self.core
            .get(wait, codec::decode::<T>)
            .map_err(fail)?
            .map_err(de)
    }

    /// Takes the oldest item, waiting while the queue is empty.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the queue is closed and empty; [`GetError::Deserialize`] for an
    /// item whose bytes are not a `T` (that item is dropped; the queue stays usable);
    /// [`GetError::Failed`].
    pub fn get(&self) -> Result<T, GetError> {
        self.get_via(Wait::Forever, GetError::from_fail, GetError::Deserialize)
    }

    /// Takes the oldest item if there is one (Python's `get_nowait`).
    ///
    /// # Errors
    /// [`TryGetError::Empty`], or as [`get`](Self::get).
    #[doc(alias = "get_nowait")]
    pub fn try_get(&self) -> Result<T, TryGetError> {
        self.get_via(Wait::No, TryGetError::from_fail, TryGetError::Deserialize)
    }

    /// Takes the oldest item, waiting at most `timeout` for one.
    ///
    /// # Errors
    /// [`GetTimeoutError::Timeout`], or as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetTimeoutError> {
        self.get_via(
            deadline(timeout),
            GetTimeoutError::from_fail,
            GetTimeoutError::Deserialize,
        )
    }
}

impl Queue<Vec<u8>> {
    /// Puts a byte string without taking ownership of it: one copy, from `bytes` into shared
    /// memory. Items put this way are `Vec<u8>` items like any other.
    ///
    /// # Errors
    /// As [`put`](Self::put); the variants carry `()`.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(), PutError<()>> {
        let mut prefix = [0u8; 10];
        let n = codec::varint(bytes.len() as u64, &mut prefix);
        self.core
            .put(&[&prefix[..n], bytes], Wait::Forever)
            .map_err(|f| PutError::from_fail(f, ()))
    }

    /// Puts the concatenation of `head` and `body` as one byte string, without building it.
    #[cfg(feature = "pool")]
    pub(crate) fn put_bytes2(&self, head: &[u8], body: &[u8]) -> Result<(), PutError<()>> {
        let mut prefix = [0u8; 10];
        let n = codec::varint((head.len() + body.len()) as u64, &mut prefix);
        self.core
            .put(&[&prefix[..n], head, body], Wait::Forever)
            .map_err(|f| PutError::from_fail(f, ()))
    }

    /// Takes the oldest item into `buf` (cleared first) and returns its length: one copy, from
    /// shared memory into `buf`, and no allocation once `buf` is large enough.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<usize, GetError> {
        self.get_bytes_with(
            buf,
            Wait::Forever,
            GetError::from_fail,
            GetError::Deserialize,
        )
    }

    /// As [`get_bytes_into`](Self::get_bytes_into), waiting at most `timeout` for an item.
    ///
    /// # Errors
    /// [`GetTimeoutError::Timeout`], or as [`get`](Self::get).
    pub fn get_bytes_timeout_into(
        &self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, GetTimeoutError> {
        self.get_bytes_with(
            buf,
            deadline(timeout),
            GetTimeoutError::from_fail,
            GetTimeoutError::Deserialize,
        )
    }

    fn get_bytes_with<E>(
        &self,
        buf: &mut Vec<u8>,
        wait: Wait,
        fail: fn(Fail) -> E,
        de: fn(String) -> E,
    ) -> Result<usize, E> {
        let r = self.core.get(wait, |bytes| {
            codec::unprefix(bytes).map(|b| {
                buf.clear();
                buf.extend_from_slice(b);
                b.len()
            })
        });
        r.map_err(fail)?.map_err(de)
    }
}

impl<T> Queue<T> {
    pub(crate) fn core(&self) -> &QueueCore {
        &self.core
    }

    pub(super) fn core_arc(&self) -> &Arc<QueueCore> {
        &self.core
    }

    /// The queue's name; [`Queue::open`] with it opens this queue in another process.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// The number of items in the queue (a snapshot: other processes may change it at once).
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        self.core.len() as usize
    }

    /// Whether the queue is empty (a snapshot).
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue holds `maxsize` items (a snapshot; never, if `maxsize` is 0).
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        let max = self.core.maxsize();
        max != 0 && self.core.len() >= max
    }

    /// The most items the queue holds at once (0: no limit).
    pub fn maxsize(&self) -> usize {
        self.core.maxsize() as usize
    }

    /// The size of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.core.capacity() as usize
    }

    /// Closes the queue for every process: later puts fail with [`PutError::Closed`]; gets
    /// take what is left and then fail with [`GetError::Closed`]. Wakes every waiter.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) if the queue's state is corrupt.
    pub fn close(&self) -> Result<()> {
        self.core.close().map_err(fail_error)
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }
}

pub(crate) fn fail_error(f: Fail) -> Error {
    match f {
        Fail::Error(e) => e,
        other => Error::Op(
            format!(
                "internal error: a queue operation reported {}",
                other.what()
            )
            .into(),
        ),
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: Arc::clone(&self.core),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len())
            .field("maxsize", &self.maxsize())
            .finish()
    }
}

impl<T> crate::select::sealed::Watch for Queue<T> {
    fn is_ready(&self) -> bool {
        self.core.readable()
    }
    fn watched(&self) -> Option<&QueueCore> {
        Some(&self.core)
    }
}

impl<T> crate::shm::by_name::Handle for Queue<T> {
    fn hand_over(&self) -> std::sync::Arc<dyn crate::shm::by_name::HandOver> {
        self.core.clone()
    }
}

crate::shm::serde_by_name!(impl[T: Serialize + DeserializeOwned + 'static] Queue<T>);
